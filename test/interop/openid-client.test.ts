/**
 * openid-client (and, through it, oauth4webapi) as an app and as an API, on
 * every database in the matrix: password, password + TOTP, per-app MFA with
 * enrolment, essential and voluntary step-up, refresh, RP-initiated and
 * back-channel logout, introspection by a resource server, key rotation with
 * the app's JWKS cached. The app is registered with the command
 * docs/connecting-apps.md shows.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { DIALECTS } from '../helpers/databases.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import {
  ACR1,
  ACR2,
  Browser,
  REFEDS_MFA,
  addUser,
  formAction,
  logoutReceiver,
  npmVersion,
  register,
  startProvider,
  until,
  walk,
  type Provider,
  type Registered,
  type User,
  ESSENTIAL_MFA,
} from './harness.ts';

const REDIRECT = 'http://app.example.test/callback';
const BYE = 'http://app.example.test/bye';
const API = 'https://api.example.test';

for (const kind of DIALECTS) {
  describe(`${npmVersion('openid-client')} (${npmVersion('oauth4webapi')}) on ${kind}`, () => {
    let p: Provider;
    let app: Registered;
    let mfaApp: Registered;
    let api: Registered;
    let config: oidc.Configuration;
    let mfaConfig: oidc.Configuration;
    let receiver: Awaited<ReturnType<typeof logoutReceiver>>;
    const jwksFetches = { count: 0 };

    async function configure(r: Registered): Promise<oidc.Configuration> {
      const c = await oidc.discovery(new URL(p.issuer), r.clientId, r.clientSecret, oidc.ClientSecretBasic(r.clientSecret), {
        execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
      });
      // Count JWKS fetches: key rotation must not need one more.
      c[oidc.customFetch] = (url, options) => {
        if (new URL(url).pathname === '/jwks') jwksFetches.count += 1;
        return fetch(url, options as RequestInit);
      };
      return c;
    }

    beforeAll(async () => {
      p = await startProvider(kind);
      receiver = await logoutReceiver();
      app = await register(p, 'web', [
        '--first-party',
        '--redirect-uri',
        REDIRECT,
        '--post-logout-redirect-uri',
        BYE,
        '--backchannel-logout-uri',
        receiver.url,
      ]);
      mfaApp = await register(p, 'payroll', ['--first-party', '--redirect-uri', REDIRECT, '--mfa', 'required']);
      api = await register(p, 'orders-api', ['--resource-server', API, '--resource-scopes', 'orders:read']);
      config = await configure(app);
      mfaConfig = await configure(mfaApp);
    });

    afterAll(async () => {
      await receiver?.close();
      await p?.close();
    });

    async function signIn(user: User, options: { c?: oidc.Configuration; browser?: Browser; params?: Record<string, string>; skip?: boolean } = {}) {
      const c = options.c ?? config;
      const browser = options.browser ?? new Browser([p.issuer]);
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(c, {
        redirect_uri: REDIRECT,
        scope: 'openid profile email',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...options.params,
      });
      const walked = await walk(p, browser, await browser.request(url.toString()), user, { skip: options.skip });
      if (!walked.hop.location?.startsWith(REDIRECT))
        throw new Error(
          `sign-in did not return to the app: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.location} ${walked.hop.body.slice(0, 600)}`,
        );
      const tokens = await oidc.authorizationCodeGrant(c, new URL(walked.hop.location!), {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      return { tokens, claims: tokens.claims()!, pages: walked.pages, browser };
    }

    test('password: acr level 1, amr pwd, profile claims in the ID token', async () => {
      const user = await addUser(p);
      const { claims, pages } = await signIn(user);
      expect(pages).toEqual(['login']);
      expect(claims).toMatchObject({ sub: user.id, acr: ACR1, amr: ['pwd'], preferred_username: user.username });
    });

    test('password + TOTP: acr level 2, amr pwd otp mfa', async () => {
      const user = await addUser(p, { totp: true });
      const { claims, pages } = await signIn(user);
      expect(pages).toEqual(['login', 'code']);
      expect(claims.acr).toBe(ACR2);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('per-app MFA (--mfa required): an account without a factor enrols during sign-in', async () => {
      const user = await addUser(p);
      const { claims, pages } = await signIn(user, { c: mfaConfig });
      expect(pages).toEqual(['login', 'enrol', 'backup-codes']);
      expect(claims.acr).toBe(ACR2);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('essential step-up: a level-1 session is asked for its TOTP, not skippable', async () => {
      await savePolicy(p.services.db, GLOBAL, { mfa: 'off' }, 'test');
      try {
        const user = await addUser(p, { totp: true });
        const first = await signIn(user);
        expect(first.pages).toEqual(['login']);
        expect(first.claims.acr).toBe(ACR1);
        const stepped = await signIn(user, { browser: first.browser, params: { claims: ESSENTIAL_MFA }, skip: true });
        expect(stepped.pages).toEqual(['code']);
        expect(stepped.claims.acr).toBe(REFEDS_MFA);
        expect(stepped.claims.sub).toBe(user.id);
      } finally {
        await savePolicy(p.services.db, GLOBAL, { mfa: 'optional' }, 'test');
      }
    });

    test('voluntary step-up (acr_values): skipped, the truthful level 1; taken, the requested acr', async () => {
      await savePolicy(p.services.db, GLOBAL, { mfa: 'off' }, 'test');
      try {
        const user = await addUser(p, { totp: true });
        const first = await signIn(user);
        const skipped = await signIn(user, { browser: first.browser, params: { acr_values: REFEDS_MFA }, skip: true });
        expect(skipped.pages).toEqual(['code']);
        expect(skipped.claims.acr).toBe(ACR1);
        const taken = await signIn(user, { browser: first.browser, params: { acr_values: REFEDS_MFA } });
        expect(taken.pages).toEqual(['code']);
        expect(taken.claims.acr).toBe(REFEDS_MFA);
      } finally {
        await savePolicy(p.services.db, GLOBAL, { mfa: 'optional' }, 'test');
      }
    });

    test('refresh: a new access token, the refresh token rotates, the used one is refused', async () => {
      const user = await addUser(p);
      const { tokens } = await signIn(user);
      expect(tokens.refresh_token).toBeTruthy();
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      expect(refreshed.access_token).toBeTruthy();
      expect(refreshed.access_token).not.toBe(tokens.access_token);
      expect(await oidc.fetchUserInfo(config, refreshed.access_token, user.id)).toMatchObject({ sub: user.id, preferred_username: user.username });
      await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    test('logout: RP-initiated ends the session and tells the app by back-channel', async () => {
      const user = await addUser(p);
      const { tokens, claims, browser } = await signIn(user);
      const before = receiver.tokens.length;
      const confirm = await browser.get(oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: BYE }).toString());
      expect(confirm.status).toBe(200);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await browser.follow(await browser.request(new URL(formAction(confirm.body), confirm.url).toString(), { form: { xsrf, logout: 'yes' } }));
      expect(out.location).toMatch(/^http:\/\/app\.example\.test\/bye/);
      const token = await until('the logout token', () => receiver.tokens.slice(before).find(Boolean));
      const jwks = createRemoteJWKSet(new URL('/jwks', p.issuer));
      const { payload } = await jwtVerify(token, jwks, { issuer: p.issuer, audience: app.clientId, typ: 'logout+jwt' });
      expect(payload.sub).toBe(claims.sub);
      // The session is gone: the next request shows the password form.
      const again = await signIn(user, { browser });
      expect(again.pages).toEqual(['login']);
    });

    test('introspection: the API reads acr/amr of a token for it; an unrelated client and a revoked token get active:false', async () => {
      const user = await addUser(p, { totp: true });
      const { tokens } = await signIn(user, { params: { scope: 'openid orders:read', resource: API } });
      const apiConfig = new oidc.Configuration(config.serverMetadata(), api.clientId, api.clientSecret, oidc.ClientSecretBasic(api.clientSecret));
      oidc.allowInsecureRequests(apiConfig);
      const seen = await oidc.tokenIntrospection(apiConfig, tokens.access_token);
      expect(seen).toMatchObject({ active: true, sub: user.id, acr: ACR2, client_id: app.clientId, aud: API, scope: 'orders:read' });
      expect(seen.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
      expect(typeof seen.auth_time).toBe('number');
      const other = new oidc.Configuration(config.serverMetadata(), mfaApp.clientId, mfaApp.clientSecret, oidc.ClientSecretBasic(mfaApp.clientSecret));
      oidc.allowInsecureRequests(other);
      expect((await oidc.tokenIntrospection(other, tokens.access_token)).active).toBe(false);
      await oidc.tokenRevocation(config, tokens.access_token);
      expect((await oidc.tokenIntrospection(apiConfig, tokens.access_token)).active).toBe(false);
    });

    test('key rotation: the next keys are published first; the app verifies tokens of both keys with its cached JWKS', async () => {
      const user = await addUser(p);
      const before = (await signIn(user)).tokens.id_token!;
      const oldKid = decodeProtectedHeader(before).kid;
      const rotated = await p.run('keys', 'rotate');
      expect(rotated.code).toBe(0);
      // What the provider's periodic look at the key table does (the CLI ran in another "process").
      expect(await p.server.holder.refresh()).toBe(true);
      // The app's JWKS is fetched after the rotation was scheduled (new keys published, not yet signing).
      const fresh = await configure(app);
      const first = await signIn(user, { c: fresh });
      expect(decodeProtectedHeader(first.tokens.id_token!).kid).toBe(oldKid);
      const fetches = jwksFetches.count;
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await signIn(user, { c: fresh });
      expect(decodeProtectedHeader(after.tokens.id_token!).kid).not.toBe(oldKid);
      // Verified (enableNonRepudiationChecks) with the JWKS it had: no fetch.
      expect(jwksFetches.count).toBe(fetches);
    });
  });
}
