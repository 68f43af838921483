/**
 * oauth4webapi's own low-level API as the app, and jose as an API verifying
 * RFC 9068 JWT access tokens, on every database in the matrix. oauth4webapi
 * keeps its strict defaults: the only relaxation is allowInsecureRequests,
 * because the test provider listens on http://127.0.0.1; the ID token is
 * required and checked against the nonce, PKCE is S256. The app and the APIs
 * are registered with the commands docs/connecting-apps.md shows.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { DIALECTS } from '../helpers/databases.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import {
  ACR1,
  ACR2,
  Browser,
  REFEDS_MFA,
  addUser,
  npmVersion,
  register,
  startProvider,
  walk,
  type Provider,
  type Registered,
  type User,
  ESSENTIAL_MFA,
} from './harness.ts';

const REDIRECT = 'http://app.example.test/callback';
const ORDERS = 'https://orders.example.test';
const BILLING = 'https://billing.example.test';
// The one relaxation of oauth4webapi's defaults: the provider under test is plain http on loopback.
const insecure = { [oauth.allowInsecureRequests]: true } as const;

for (const kind of DIALECTS) {
  describe(`${npmVersion('oauth4webapi')} and ${npmVersion('jose')} on ${kind}`, () => {
    let p: Provider;
    let app: Registered;
    let as: oauth.AuthorizationServer;
    let client: oauth.Client;
    let auth: oauth.ClientAuth;

    beforeAll(async () => {
      p = await startProvider(kind);
      app = await register(p, 'web', ['--first-party', '--redirect-uri', REDIRECT]);
      await register(p, 'orders-api', ['--resource-server', ORDERS, '--resource-scopes', 'orders:read']);
      await register(p, 'billing-api', ['--resource-server', BILLING, '--resource-scopes', 'billing:read']);
      const issuer = new URL(p.issuer);
      as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
      client = { client_id: app.clientId };
      auth = oauth.ClientSecretBasic(app.clientSecret);
    });

    afterAll(async () => {
      await p?.close();
    });

    async function signIn(user: User, options: { browser?: Browser; params?: Record<string, string>; skip?: boolean } = {}) {
      const browser = options.browser ?? new Browser([p.issuer]);
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      const url = new URL(as.authorization_endpoint!);
      url.search = new URLSearchParams({
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid profile email',
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...options.params,
      }).toString();
      const walked = await walk(p, browser, await browser.request(url.toString()), user, { skip: options.skip });
      if (!walked.hop.location?.startsWith(REDIRECT))
        throw new Error(
          `sign-in did not return to the app: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.body.slice(0, 600)}`,
        );
      const callback = oauth.validateAuthResponse(as, client, new URL(walked.hop.location), state);
      const response = await oauth.authorizationCodeGrantRequest(as, client, auth, callback, REDIRECT, verifier, insecure);
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
      return { tokens, claims: oauth.getValidatedIdTokenClaims(tokens)!, pages: walked.pages, browser, response };
    }

    /** The API's side: jose against the provider's JWKS, as docs/connecting-apps.md shows. */
    function verifyAsApi(token: string, audience: string) {
      return jwtVerify(token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: as.issuer, audience, typ: 'at+jwt' });
    }

    test('discovery: the issuer matches, code flow with PKCE S256 and ES256 ID tokens are offered', () => {
      expect(new URL(as.issuer).href).toBe(new URL(p.issuer).href);
      expect(as.response_types_supported).toEqual(['code']);
      expect(as.code_challenge_methods_supported).toContain('S256');
      expect(as.id_token_signing_alg_values_supported).toContain('ES256');
      expect(as.revocation_endpoint).toBeTruthy();
      expect(as.userinfo_endpoint).toBeTruthy();
    });

    test('password: acr level 1, amr pwd, the ID token required and its nonce checked', async () => {
      const user = await addUser(p);
      const { claims, pages, tokens } = await signIn(user);
      expect(pages).toEqual(['login']);
      expect(claims).toMatchObject({ iss: as.issuer, aud: app.clientId, sub: user.id, acr: ACR1, amr: ['pwd'], preferred_username: user.username });
      expect(tokens.token_type).toBe('bearer');
    });

    test('password + TOTP: acr the MFA level, amr contains otp', async () => {
      const user = await addUser(p, { totp: true });
      const { claims, pages } = await signIn(user);
      expect(pages).toEqual(['login', 'code']);
      expect(claims.acr).toBe(ACR2);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    });

    test('step-up: an essential acr (claims) asks a level-1 session for its TOTP; acr_values taken gives the requested acr', async () => {
      await savePolicy(p.services.db, GLOBAL, { mfa: 'off' }, 'test');
      try {
        const user = await addUser(p, { totp: true });
        const first = await signIn(user);
        expect(first.pages).toEqual(['login']);
        expect(first.claims.acr).toBe(ACR1);
        const stepped = await signIn(user, { browser: first.browser, params: { claims: ESSENTIAL_MFA }, skip: true });
        expect(stepped.pages).toEqual(['code']);
        expect(stepped.claims).toMatchObject({ sub: user.id, acr: REFEDS_MFA });
        expect(stepped.claims.amr).toEqual(expect.arrayContaining(['otp']));
        const other = await addUser(p, { totp: true });
        const session = await signIn(other);
        const taken = await signIn(other, { browser: session.browser, params: { acr_values: REFEDS_MFA } });
        expect(taken.pages).toEqual(['code']);
        expect(taken.claims.acr).toBe(REFEDS_MFA);
      } finally {
        await savePolicy(p.services.db, GLOBAL, { mfa: 'optional' }, 'test');
      }
    });

    test('refresh rotates the refresh token; userinfo checks sub; revocation ends the access and the refresh token', async () => {
      const user = await addUser(p);
      const { tokens } = await signIn(user);
      expect(tokens.refresh_token).toBeTruthy();
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure),
      );
      expect(refreshed.access_token).not.toBe(tokens.access_token);
      expect(refreshed.refresh_token).toBeTruthy();
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);

      const info = await oauth.processUserInfoResponse(as, client, user.id, await oauth.userInfoRequest(as, client, refreshed.access_token, insecure));
      expect(info).toMatchObject({ sub: user.id, preferred_username: user.username });
      // oauth4webapi refuses a userinfo answer about someone else.
      const mismatch = await oauth.userInfoRequest(as, client, refreshed.access_token, insecure);
      await expect(oauth.processUserInfoResponse(as, client, 'someone-else', mismatch)).rejects.toMatchObject({ code: oauth.JSON_ATTRIBUTE_COMPARISON });

      await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, refreshed.access_token, insecure));
      const gone = await oauth.userInfoRequest(as, client, refreshed.access_token, insecure);
      await expect(oauth.processUserInfoResponse(as, client, user.id, gone)).rejects.toMatchObject({ code: oauth.WWW_AUTHENTICATE_CHALLENGE, status: 401 });
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, refreshed.refresh_token!, insecure));
      const revoked = await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token!, insecure);
      await expect(oauth.processRefreshTokenResponse(as, client, revoked)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    test('refresh token reuse: the used one is refused and the grant ends, the rotated token with it', async () => {
      const user = await addUser(p);
      const { tokens } = await signIn(user);
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure),
      );
      const reused = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure);
      await expect(oauth.processRefreshTokenResponse(as, client, reused)).rejects.toMatchObject({ error: 'invalid_grant' });
      const rotated = await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token!, insecure);
      await expect(oauth.processRefreshTokenResponse(as, client, rotated)).rejects.toMatchObject({ error: 'invalid_grant' });
      const access = await oauth.userInfoRequest(as, client, refreshed.access_token, insecure);
      await expect(oauth.processUserInfoResponse(as, client, user.id, access)).rejects.toMatchObject({ code: oauth.WWW_AUTHENTICATE_CHALLENGE, status: 401 });
    });

    test("jose as the API: a resource= token is an at+jwt for it with acr/amr; another API's token and a tampered one are refused", async () => {
      const user = await addUser(p, { totp: true });
      const { tokens, browser } = await signIn(user, { params: { scope: 'openid orders:read', resource: ORDERS } });
      const { payload, protectedHeader } = await verifyAsApi(tokens.access_token, ORDERS);
      expect(protectedHeader.typ).toBe('at+jwt');
      expect(payload).toMatchObject({ iss: as.issuer, aud: ORDERS, sub: user.id, client_id: app.clientId, scope: 'orders:read', acr: ACR2 });
      expect(payload.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
      expect(typeof payload.auth_time).toBe('number');

      // The same browser: the session already holds the TOTP (a second code in the same period would be a replay).
      const billing = await signIn(user, { browser, params: { scope: 'openid billing:read', resource: BILLING } });
      expect((await verifyAsApi(billing.tokens.access_token, BILLING)).payload.aud).toBe(BILLING);
      await expect(verifyAsApi(billing.tokens.access_token, ORDERS)).rejects.toMatchObject({ code: errors.JWTClaimValidationFailed.code, claim: 'aud' });

      // The orders token with a wider scope written into it: its signature no longer matches.
      const [header, , signature] = tokens.access_token.split('.');
      const widened = Buffer.from(JSON.stringify({ ...payload, scope: 'orders:read orders:write' })).toString('base64url');
      await expect(verifyAsApi(`${header}.${widened}.${signature}`, ORDERS)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
    });

    // Last: it moves the provider's clock forward.
    test('key rotation: after `twofold keys rotate` the ID token of the next key verifies with the JWKS fetched once', async () => {
      const user = await addUser(p);
      const before = await signIn(user);
      const oldKid = decodeProtectedHeader(before.tokens.id_token!).kid;
      const rotated = await p.run('keys', 'rotate');
      expect(rotated.code).toBe(0);
      // What the provider's periodic look at the key table does (the CLI ran in another "process").
      expect(await p.server.holder.refresh()).toBe(true);

      let fetches = 0;
      const cache: oauth.JWKSCacheInput = {};
      const options = {
        ...insecure,
        [oauth.jwksCache]: cache,
        [oauth.customFetch]: (url: string, init: RequestInit) => {
          fetches += 1;
          return fetch(url, init);
        },
      };
      const published = await signIn(user);
      expect(decodeProtectedHeader(published.tokens.id_token!).kid).toBe(oldKid);
      await oauth.validateApplicationLevelSignature(as, published.response, options);
      expect(fetches).toBe(1);

      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await signIn(user);
      expect(decodeProtectedHeader(after.tokens.id_token!).kid).not.toBe(oldKid);
      // The next key was in the JWKS the app already holds: its signature verifies without a fetch.
      await oauth.validateApplicationLevelSignature(as, after.response, options);
      // And the token of the previous key still verifies (it stays published while its tokens live).
      await oauth.validateApplicationLevelSignature(as, before.response, options);
      expect(fetches).toBe(1);
    });
  });
}
