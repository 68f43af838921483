/**
 * Apache httpd + Debian's mod_auth_openidc, untouched, as an app (AuthType
 * openid-connect) and as an API (AuthType oauth20 with introspection), on every
 * database in the matrix: password, password + TOTP, per-app MFA with
 * enrolment, essential step-up (`claims`) and voluntary step-up (`acr_values`)
 * behind `Require claim acr:…` with `OIDCUnAutzAction auth`, refresh (the info
 * hook's access_token_refresh), RP-initiated and back-channel logout, an API
 * introspecting the app's token, and key rotation. Registered and configured
 * exactly as docs/connecting-apps.md shows.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { decodeProtectedHeader } from 'jose';
import { DIALECTS } from '../helpers/databases.ts';
import { freePort } from '../helpers/ports.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import {
  ACR1,
  ACR2,
  Browser,
  REFEDS_MFA,
  addUser,
  formAction,
  register,
  startProvider,
  until,
  walk,
  type Hop,
  type Provider,
  type Registered,
  type User,
  ESSENTIAL_MFA,
} from './harness.ts';
import { apacheVersions, startApache, tlsProxy, type Apache } from './apache.ts';

/** The variables the app page printed (OIDC_CLAIM_acr=…, REMOTE_USER=…). */
function shown(hop: Hop): Record<string, string> {
  expect(hop.status).toBe(200);
  return Object.fromEntries(
    hop.body
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

for (const kind of DIALECTS) {
  describe(`${apacheVersions()} on ${kind}`, () => {
    let p: Provider;
    let apache: Apache;
    let app: Registered;
    let api: Registered;
    let tls: Awaited<ReturnType<typeof tlsProxy>>;

    beforeAll(async () => {
      p = await startProvider(kind);
      const port = await freePort();
      const origin = `http://127.0.0.1:${port}`;
      const redirect = `${origin}/protected/redirect_uri`;
      app = await register(p, 'apache', [
        '--first-party',
        '--redirect-uri',
        redirect,
        '--post-logout-redirect-uri',
        `${origin}/loggedout`,
        '--backchannel-logout-uri',
        `${redirect}?logout=backchannel`,
      ]);
      api = await register(p, 'orders-api', ['--resource-server', 'https://api.example.test']);
      tls = await tlsProxy(p.issuer);
      apache = await startApache(
        port,
        `
OIDCProviderMetadataURL ${p.issuer}/.well-known/openid-configuration
OIDCClientID ${app.clientId}
OIDCClientSecret ${app.clientSecret}
OIDCRedirectURI ${redirect}
OIDCCryptoPassphrase ${crypto.randomBytes(16).toString('hex')}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs environment
OIDCPassIDTokenAs claims serialized
OIDCInfoHook access_token refresh_token id_token
OIDCOAuthIntrospectionEndpoint ${tls.origin}/token/introspection
OIDCOAuthSSLValidateServer Off
OIDCOAuthIntrospectionEndpointAuth client_secret_basic
OIDCOAuthClientID ${api.clientId}
OIDCOAuthClientSecret ${api.clientSecret}
OIDCOAuthRemoteUserClaim sub
<Location /protected>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /stepup>
  AuthType openid-connect
  OIDCPathAuthRequestParams acr_values=${encodeURIComponent(REFEDS_MFA)}
  OIDCUnAutzAction auth
  Require claim acr:${REFEDS_MFA}
</Location>
<Location /mfa>
  AuthType openid-connect
  OIDCPathAuthRequestParams claims=${encodeURIComponent(ESSENTIAL_MFA)}
  OIDCUnAutzAction auth
  Require claim acr:${REFEDS_MFA}
</Location>
<Location /api>
  AuthType oauth20
  OIDCOAuthTokenIntrospectionInterval -1
  Require valid-user
</Location>
`,
      );
    });

    afterAll(async () => {
      if (apache) {
        const log = apache.errorLog();
        if (/\[auth_openidc:error\]/.test(log))
          console.log(
            `mod_auth_openidc errors:\n${log
              .split('\n')
              .filter((l) => l.includes('auth_openidc:error'))
              .slice(-10)
              .join('\n')}`,
          );
        await apache.close();
      }
      await tls?.close();
      await p?.close();
    });

    const browser = () => new Browser([p.issuer, apache.origin]);

    async function visit(b: Browser, path: string, user: User, options: { skip?: boolean } = {}) {
      const walked = await walk(p, b, await b.request(`${apache.origin}${path}`), user, options);
      return { ...walked, env: walked.hop.url.startsWith(apache.origin) && walked.hop.status === 200 ? shown(walked.hop) : undefined };
    }

    async function info(b: Browser): Promise<{ access_token: string; refresh_token?: string; id_token: Record<string, unknown> }> {
      const hop = await b.request(`${apache.origin}/protected/redirect_uri?info=json`);
      expect(hop.status).toBe(200);
      return JSON.parse(hop.body);
    }

    test('password: REMOTE_USER and the ID token claims, acr level 1', async () => {
      const user = await addUser(p);
      const { env, pages, hop } = await visit(browser(), '/protected/', user);
      if (!pages.length) throw new Error(`${hop.status} ${hop.url} ${hop.location} ${hop.body.slice(0, 500)}\n${apache.errorLog().slice(-3000)}`);
      expect(pages).toEqual(['login']);
      expect(env).toMatchObject({
        REMOTE_USER: user.username,
        OIDC_CLAIM_sub: user.id,
        OIDC_CLAIM_acr: ACR1,
        OIDC_CLAIM_amr: 'pwd',
        OIDC_CLAIM_preferred_username: user.username,
      });
    });

    test('password + TOTP: acr level 2', async () => {
      const user = await addUser(p, { totp: true });
      const { env, pages } = await visit(browser(), '/protected/', user);
      expect(pages).toEqual(['login', 'code']);
      expect(env!.OIDC_CLAIM_acr).toBe(ACR2);
      expect(env!.OIDC_CLAIM_amr!.split(',')).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('per-app MFA (client update apache --mfa required): enrolment during sign-in', async () => {
      expect((await p.run('client', 'update', 'apache', '--mfa', 'required')).code).toBe(0);
      try {
        const user = await addUser(p);
        const { env, pages } = await visit(browser(), '/protected/', user);
        expect(pages).toEqual(['login', 'enrol', 'backup-codes']);
        expect(env!.OIDC_CLAIM_acr).toBe(ACR2);
      } finally {
        expect((await p.run('client', 'update', 'apache', '--clear-policy')).code).toBe(0);
      }
    });

    describe('with the global policy at mfa off (sessions at level 1 for accounts with TOTP)', () => {
      beforeAll(() => savePolicy(p.services.db, GLOBAL, { mfa: 'off' }, 'test'));
      afterAll(() => savePolicy(p.services.db, GLOBAL, { mfa: 'optional' }, 'test'));

      test('essential step-up (claims, Require claim acr): the TOTP step, then the page', async () => {
        const user = await addUser(p, { totp: true });
        const b = browser();
        const first = await visit(b, '/protected/', user);
        expect(first.env!.OIDC_CLAIM_acr).toBe(ACR1);
        const stepped = await visit(b, '/mfa/', user);
        expect(stepped.pages).toEqual(['code']);
        expect(stepped.env).toMatchObject({ OIDC_CLAIM_acr: REFEDS_MFA, OIDC_CLAIM_sub: user.id });
      });

      test('voluntary step-up (acr_values, Require claim acr): skipping shows the step again (no silent loop); taking it opens the page', async () => {
        const user = await addUser(p, { totp: true });
        const b = browser();
        await visit(b, '/protected/', user);
        const skipped = await walk(p, b, await b.request(`${apache.origin}/stepup/`), user, { skip: true });
        // Each time Apache sends the browser back, the person sees the step again.
        expect(skipped.pages.length).toBeGreaterThanOrEqual(2);
        expect(new Set(skipped.pages)).toEqual(new Set(['code']));
        expect(skipped.hop.url.startsWith(p.issuer)).toBe(true);
        const taken = await visit(b, '/stepup/', user);
        expect(taken.pages).toEqual(['code']);
        expect(taken.env!.OIDC_CLAIM_acr).toBe(REFEDS_MFA);
      });
    });

    test('refresh: the refresh hook redeems the refresh token for a new access token', async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/protected/', user);
      const before = await info(b);
      expect(before.refresh_token).toBeTruthy();
      const refreshed = await b.request(
        `${apache.origin}/protected/redirect_uri?refresh=${encodeURIComponent('/protected/')}&access_token=${before.access_token}`,
      );
      expect(refreshed.status).toBe(302);
      expect(refreshed.location).toBe(`${apache.origin}/protected/`);
      const after = await info(b);
      expect(after.access_token).toBeTruthy();
      expect(after.access_token).not.toBe(before.access_token);
      expect(after.refresh_token).not.toBe(before.refresh_token);
    });

    test("API (AuthType oauth20): introspects the app's opaque token only when granted --introspect-any; a revoked token is refused", async () => {
      const user = await addUser(p, { totp: true });
      const b = browser();
      await visit(b, '/protected/', user);
      const { access_token } = await info(b);
      const call = () => fetch(`${apache.origin}/api/`, { headers: { authorization: `Bearer ${access_token}` } });
      expect((await call()).status).toBe(401);
      expect((await p.run('client', 'update', 'orders-api', '--introspect-any')).code).toBe(0);
      const ok = await call();
      expect(ok.status).toBe(200);
      const env = Object.fromEntries(
        (await ok.text())
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      expect(env).toMatchObject({ REMOTE_USER: user.id, OIDC_CLAIM_acr: ACR2, OIDC_CLAIM_client_id: app.clientId });
      // Sign out at Apache: mod_auth_openidc revokes the session's tokens, and the API refuses this one.
      await logout(b);
      expect((await call()).status).toBe(401);
    });

    async function logout(b: Browser): Promise<Hop> {
      const confirm = await b.get(`${apache.origin}/protected/redirect_uri?logout=${encodeURIComponent(`${apache.origin}/loggedout`)}`);
      expect(confirm.url.startsWith(`${p.issuer}/session/end`)).toBe(true);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      return b.follow(await b.request(new URL(formAction(confirm.body), confirm.url).toString(), { form: { xsrf, logout: 'yes' } }));
    }

    test('logout: RP-initiated from Apache ends both sessions', async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/protected/', user);
      const out = await logout(b);
      expect(out.url).toBe(`${apache.origin}/loggedout`);
      const again = await visit(b, '/protected/', user);
      expect(again.pages).toEqual(['login']);
    });

    test("logout: back-channel, when the session ends at the provider Apache's session ends too", async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/protected/', user);
      const confirm = await b.get(`${p.issuer}/session/end`);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      await b.follow(await b.request(new URL(formAction(confirm.body), confirm.url).toString(), { form: { xsrf, logout: 'yes' } }));
      // Delivered in the background: Apache's next answer is a redirect to the provider.
      await until('Apache to drop its session', async () => {
        const hop = await b.request(`${apache.origin}/protected/`);
        return hop.status === 302 && hop.location!.startsWith(`${p.issuer}/auth`);
      });
    });

    test('key rotation: sign-ins keep working before and after the next keys sign', async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/protected/', user);
      const oldKid = decodeProtectedHeader(shown(await b.get(`${apache.origin}/protected/`)).OIDC_id_token!).kid;
      expect((await p.run('keys', 'rotate')).code).toBe(0);
      expect(await p.server.holder.refresh()).toBe(true);
      const during = await visit(browser(), '/protected/', user);
      expect(decodeProtectedHeader(during.env!.OIDC_id_token!).kid).toBe(oldKid);
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await visit(browser(), '/protected/', user);
      expect(decodeProtectedHeader(after.env!.OIDC_id_token!).kid).not.toBe(oldKid);
      expect(after.env!.REMOTE_USER).toBe(user.username);
    });
  });
}
