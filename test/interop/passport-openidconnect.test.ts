/**
 * passport-openidconnect (Passport's OpenID Connect strategy, as Express apps
 * use it) in-process on a free port, on every database in the matrix. It sends
 * no PKCE, so the app is registered with `--pkce optional` (confidential apps
 * only). Its options fix acr_values and claims per strategy, so step-up is a
 * second and third strategy. Flows: password, password + TOTP, per-app MFA with
 * enrolment, essential and voluntary step-up, key rotation. It has no refresh,
 * no RP-initiated or back-channel logout, and does not verify the ID token's
 * signature (it trusts the TLS channel to the token endpoint): those flows are
 * not its to run.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import { Strategy, type Profile, type VerifyCallback } from 'passport-openidconnect';
import { DIALECTS } from '../helpers/databases.ts';
import { freePort } from '../helpers/ports.ts';
import { ACR1, Browser, REFEDS_MFA, addUser, npmVersion, register, startProvider, walk, type Provider, type User } from './harness.ts';
import { signInFlows } from './sign-in-flows.ts';

interface Signed {
  profile: Profile;
  claims: Record<string, unknown>;
}

for (const kind of DIALECTS) {
  describe(`${npmVersion('passport-openidconnect')} (${npmVersion('passport')}) on ${kind}`, () => {
    let p: Provider;
    let server: http.Server;
    let origin: string;

    beforeAll(async () => {
      p = await startProvider(kind);
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      const registered = await register(p, 'passport-app', [
        '--first-party',
        '--pkce',
        'optional',
        '--redirect-uri',
        `${origin}/cb/plain`,
        '--redirect-uri',
        `${origin}/cb/stepup`,
        '--redirect-uri',
        `${origin}/cb/essential`,
      ]);
      const authenticator = new passport.Passport();
      const strategy = (name: string, extra: Record<string, unknown>) =>
        authenticator.use(
          name,
          new Strategy(
            {
              issuer: p.issuer,
              authorizationURL: `${p.issuer}/auth`,
              tokenURL: `${p.issuer}/token`,
              userInfoURL: `${p.issuer}/me`,
              clientID: registered.clientId,
              clientSecret: registered.clientSecret,
              callbackURL: `${origin}/cb/${name}`,
              scope: ['profile', 'email'],
              ...extra,
            },
            ((
              _issuer: string,
              profile: Profile,
              context: object,
              idToken: string | object,
              _at: string,
              _rt: string,
              _params: unknown,
              done: VerifyCallback,
            ) => {
              const token = typeof idToken === 'string' ? idToken : '';
              const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}') as Record<string, unknown>;
              done(null, { profile, claims, context } as unknown as Express.User);
            }) as unknown as ConstructorParameters<typeof Strategy>[1],
          ),
        );
      strategy('plain', {});
      strategy('stepup', { acrValues: REFEDS_MFA });
      strategy('essential', { claims: { id_token: { acr: { essential: true, values: [REFEDS_MFA] } } } });
      authenticator.serializeUser((user, done) => done(null, user));
      authenticator.deserializeUser((user: Express.User, done) => done(null, user));
      const app = express();
      app.use(session({ secret: crypto.randomBytes(16).toString('hex'), resave: false, saveUninitialized: false }));
      app.use(authenticator.session());
      for (const name of ['plain', 'stepup', 'essential']) {
        app.get(`/login/${name}`, authenticator.authenticate(name));
        app.get(`/cb/${name}`, authenticator.authenticate(name, { failureRedirect: '/failed', failureMessage: true }), (_req, res) => res.redirect('/me'));
      }
      app.get('/me', (req, res) => {
        if (req.user) res.json(req.user);
        else res.status(401).json({ error: 'not signed in' });
      });
      app.get('/failed', (req, res) => {
        res.status(403).json({ messages: (req.session as unknown as { messages?: string[] }).messages });
      });
      server = http.createServer(app);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await p?.close();
    });

    const browser = () => new Browser([p.issuer, origin]);

    async function visit(b: Browser, name: string, user: User, options: { skip?: boolean } = {}) {
      const walked = await walk(p, b, await b.request(`${origin}/login/${name}`), user, options);
      if (walked.hop.url !== `${origin}/me` || walked.hop.status !== 200)
        throw new Error(`did not reach /me: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.body.slice(0, 400)}`);
      return { ...walked, me: JSON.parse(walked.hop.body) as Signed };
    }

    test('password without PKCE (--pkce optional): the profile, acr level 1', async () => {
      const user = await addUser(p);
      const { me, pages } = await visit(browser(), 'plain', user);
      expect(pages).toEqual(['login']);
      expect(me.profile).toMatchObject({ id: user.id, username: user.username });
      expect(me.claims).toMatchObject({ sub: user.id, acr: ACR1, amr: ['pwd'] });
    });

    signInFlows({
      provider: () => p,
      client: 'passport-app',
      browser,
      async signIn(b, user, ask, options) {
        const { me, pages } = await visit(b, { plain: 'plain', essential: 'essential', voluntary: 'stepup' }[ask], user, options);
        return { pages, acr: me.claims.acr };
      },
    });

    test('key rotation: sign-ins work before and after the next keys sign', async () => {
      const user = await addUser(p);
      await visit(browser(), 'plain', user);
      expect((await p.run('keys', 'rotate')).code).toBe(0);
      expect(await p.server.holder.refresh()).toBe(true);
      await visit(browser(), 'plain', user);
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      expect((await visit(browser(), 'plain', user)).me.claims.sub).toBe(user.id);
    });
  });
}
