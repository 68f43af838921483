/**
 * express-openid-connect (Express middleware, openid-client underneath) as an
 * app in-process on a free port, on every database in the matrix: password,
 * password + TOTP, per-app MFA with enrolment, essential and voluntary step-up
 * (res.oidc.login with authorizationParams), refresh (req.oidc.accessToken.refresh),
 * RP-initiated logout (idpLogout) and back-channel logout (its
 * /backchannel-logout route), key rotation. Not an API, so no introspection.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import express from 'express';
import { decodeProtectedHeader } from 'jose';
import eoc, { type ConfigParams } from 'express-openid-connect';
import { DIALECTS } from '../helpers/databases.ts';
import { freePort } from '../helpers/ports.ts';
import {
  ACR1,
  Browser,
  REFEDS_MFA,
  addUser,
  formAction,
  npmVersion,
  register,
  startProvider,
  until,
  walk,
  type Hop,
  type Provider,
  type User,
  ESSENTIAL_MFA,
} from './harness.ts';
import { signInFlows } from './sign-in-flows.ts';

const { auth, requiresAuth } = eoc;

/** The express-session-compatible store express-openid-connect keeps logout tokens in. */
type LogoutStore = NonNullable<Exclude<ConfigParams['backchannelLogout'], boolean | undefined>['store']>;
function memoryStore(): LogoutStore {
  const map = new Map<string, Parameters<LogoutStore['set']>[1]>();
  return {
    get: (id, cb) => cb(null, map.get(id) ?? null),
    set: (id, v, cb) => {
      map.set(id, v);
      cb?.();
    },
    destroy: (id, cb) => {
      map.delete(id);
      cb?.();
    },
  };
}

for (const kind of DIALECTS) {
  describe(`${npmVersion('express-openid-connect')} (openid-client 4, ${npmVersion('express')}) on ${kind}`, () => {
    let p: Provider;
    let server: http.Server;
    let origin: string;

    beforeAll(async () => {
      p = await startProvider(kind);
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      const registered = await register(p, 'express-app', [
        '--first-party',
        '--redirect-uri',
        `${origin}/callback`,
        '--post-logout-redirect-uri',
        `${origin}/bye`,
        '--backchannel-logout-uri',
        `${origin}/backchannel-logout`,
      ]);
      const app = express();
      app.use(
        auth({
          issuerBaseURL: p.issuer,
          baseURL: origin,
          clientID: registered.clientId,
          clientSecret: registered.clientSecret,
          secret: crypto.randomBytes(32).toString('hex'),
          authRequired: false,
          idpLogout: true,
          authorizationParams: { response_type: 'code', response_mode: 'query', scope: 'openid profile email' },
          routes: { postLogoutRedirect: '/bye' },
          backchannelLogout: { store: memoryStore() },
        }),
      );
      app.get('/me', requiresAuth(), (req, res) => {
        res.json({ user: req.oidc.user, claims: req.oidc.idTokenClaims, idToken: req.oidc.idToken });
      });
      app.get('/stepup', (_req, res) => res.oidc.login({ returnTo: '/me', authorizationParams: { acr_values: REFEDS_MFA } }));
      app.get('/essential', (_req, res) => res.oidc.login({ returnTo: '/me', authorizationParams: { claims: ESSENTIAL_MFA } }));
      app.get('/refresh', requiresAuth(), async (req, res) => {
        const before = req.oidc.accessToken!.access_token;
        const after = await req.oidc.accessToken!.refresh();
        res.json({ before, after: after.access_token });
      });
      app.get('/bye', (_req, res) => {
        res.send('signed out');
      });
      server = http.createServer(app);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      expect((server.address() as AddressInfo).port).toBe(port);
    });

    afterAll(async () => {
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await p?.close();
    });

    const browser = () => new Browser([p.issuer, origin]);

    async function visit(b: Browser, path: string, user: User, options: { skip?: boolean } = {}) {
      const walked = await walk(p, b, await b.request(`${origin}${path}`), user, options);
      const me =
        walked.hop.url === `${origin}/me` && walked.hop.status === 200
          ? (JSON.parse(walked.hop.body) as { user: Record<string, unknown>; claims: Record<string, unknown>; idToken: string })
          : undefined;
      if (!me)
        throw new Error(
          `did not reach /me: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.location} ${walked.hop.body.slice(0, 300)}`,
        );
      return { ...walked, me };
    }

    // First, before the app has fetched the JWKS: openid-client 4 refetches it for an unknown kid at most once a
    // minute of real time, and the test crosses KEY_PUBLISH_DELAY on the provider's clock only. An app that fetched
    // the JWKS during the delay (as here) verifies the new keys' tokens without fetching again.
    test('key rotation: an app that fetched the JWKS during the delay signs in before and after the next keys sign', async () => {
      const user = await addUser(p);
      expect((await p.run('keys', 'rotate')).code).toBe(0);
      expect(await p.server.holder.refresh()).toBe(true);
      const oldKid = decodeProtectedHeader((await visit(browser(), '/me', user)).me.idToken).kid;
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await visit(browser(), '/me', user);
      expect(after.me.user.sub).toBe(user.id);
      expect(decodeProtectedHeader(after.me.idToken).kid).not.toBe(oldKid);
    });

    test('password: req.oidc.user carries the profile from the ID token', async () => {
      const user = await addUser(p);
      const { me, pages } = await visit(browser(), '/me', user);
      expect(pages).toEqual(['login']);
      expect(me.user).toMatchObject({ sub: user.id, preferred_username: user.username, acr: ACR1, amr: ['pwd'] });
    });

    signInFlows({
      provider: () => p,
      client: 'express-app',
      browser,
      async signIn(b, user, ask, options) {
        const { me, pages } = await visit(b, { plain: '/me', essential: '/essential', voluntary: '/stepup' }[ask], user, options);
        return { pages, acr: me.claims.acr };
      },
    });

    test('refresh: req.oidc.accessToken.refresh() gets a new access token', async () => {
      const b = browser();
      await visit(b, '/me', await addUser(p));
      const hop = await b.request(`${origin}/refresh`);
      expect(hop.status).toBe(200);
      const { before, after } = JSON.parse(hop.body) as { before: string; after: string };
      expect(after).toBeTruthy();
      expect(after).not.toBe(before);
    });

    async function confirmLogout(b: Browser, confirm: Hop): Promise<Hop> {
      expect(confirm.url.startsWith(`${p.issuer}/session/end`)).toBe(true);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      return b.follow(await b.request(new URL(formAction(confirm.body), confirm.url).toString(), { form: { xsrf, logout: 'yes' } }));
    }

    test('logout: /logout (idpLogout) ends both sessions', async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/me', user);
      const out = await confirmLogout(b, await b.get(`${origin}/logout`));
      expect(out.url).toBe(`${origin}/bye`);
      const again = await visit(b, '/me', user);
      expect(again.pages).toEqual(['login']);
    });

    test("logout: back-channel, the session ended at the provider ends the app's", async () => {
      const b = browser();
      await visit(b, '/me', await addUser(p));
      expect((await b.request(`${origin}/me`)).status).toBe(200);
      await confirmLogout(b, await b.get(`${p.issuer}/session/end`));
      await until('the app to forget the session', async () => {
        const hop = await b.request(`${origin}/me`);
        // requiresAuth() sends the browser to sign in again.
        return hop.status === 302 && hop.location!.startsWith(`${p.issuer}/auth`);
      });
    });
  });
}
