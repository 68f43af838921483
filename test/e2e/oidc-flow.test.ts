/**
 * The whole OIDC flow through the real provider, with openid-client as the app:
 * authorization code + PKCE through the login form, ID token validation,
 * refresh with rotation, userinfo, introspection, revocation, logout, and the
 * error cases, on every database in the matrix. The app verifies ID token
 * signatures (see test/helpers/relying-party.ts) and authenticates at /token
 * with client_secret_basic, client_secret_post and private_key_jwt.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import crypto, { webcrypto } from 'node:crypto';
import { SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { sql } from 'kysely';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount, setDisabled, findAccountByLogin } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { storedPayloadId } from '../../src/oidc/adapter.ts';

const REDIRECT = 'http://app.example.test/callback';

/**
 * Jest's node environment hands the test's vm context Node's own structuredClone, whose copies belong to the
 * outer realm: there `copy.constructor === Object` is false, so oidc-provider's isPlainObject refuses a client's
 * inline JWKS once it has passed through the request memo (src/db/request-memo.ts clones what it hands out).
 * Outside jest there is one realm. Copy within this realm instead: the memo holds database rows (JSON values,
 * dates, bytes).
 */
const outerClone = globalThis.structuredClone;
function realmClone<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(realmClone) as T;
  if (value instanceof Date) return new Date(value.getTime()) as T;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return outerClone(value);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, realmClone(v)])) as T;
}
globalThis.structuredClone = realmClone as typeof structuredClone;

/** An ECDSA P-256 key pair for private_key_jwt, its public half as a JWK. */
async function clientKey(kid: string) {
  const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
  return { privateKey: pair.privateKey, publicJwk: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y!, kid, alg: 'ES256', use: 'sig' } };
}

/** Flips one bit of a JWS signature: same header and payload, signature no longer valid. */
function tamperSignature(jws: string): string {
  const [header, payload, signature] = jws.split('.');
  const bytes = Buffer.from(signature!, 'base64url');
  bytes[bytes.length >> 1]! ^= 0x01;
  return [header, payload, bytes.toString('base64url')].join('.');
}

/** Routes the app's token requests through `edit`, which may rewrite the ID token of the answer. */
function editTokenResponses(party: RelyingParty, edit: (idToken: string) => string) {
  party.config[oidc.customFetch] = async (url, init) => {
    const res = await fetch(url, init as RequestInit);
    if (!url.endsWith('/token') || res.status !== 200) return res;
    const body = (await res.json()) as { id_token?: string };
    if (body.id_token) body.id_token = edit(body.id_token);
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
}

for (const kind of DIALECTS) {
  describe(`OIDC end to end on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;
    let publicClientId: string;
    let thirdPartyRp: RelyingParty;
    let confidentialId: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
      const { db, hasher, sealer } = server.opened.services;
      await createAccount(db, hasher, {
        username: 'alice',
        email: 'alice@example.test',
        emailVerified: true,
        displayName: 'Alice Liddell',
        password: 'correct horse battery',
      });
      const bob = await createAccount(db, hasher, { username: 'bob', password: 'bob password 1' });
      await setDisabled(db, bob.id, true);
      const app = await createClient(db, sealer, {
        name: 'web',
        redirectUris: [REDIRECT],
        postLogoutRedirectUris: ['http://app.example.test/bye'],
        firstParty: true,
      });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      const spa = await createClient(db, sealer, { name: 'spa', redirectUris: [REDIRECT], public: true, firstParty: true });
      publicClientId = spa.clientId;
      const third = await createClient(db, sealer, { name: 'Third Party App', redirectUris: [REDIRECT] });
      thirdPartyRp = await relyingParty(server.issuer, third.clientId, third.clientSecret, REDIRECT);
      confidentialId = app.clientId;
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function signIn(agent: UserAgent, party: RelyingParty, login = 'alice', password = 'correct horse battery', extra: Record<string, string> = {}) {
      const auth = await party.authorizationUrl(extra);
      const page = await agent.follow(auth.url);
      expect(page.status).toBe(200);
      const result = await agent.submit(formAction(page.body), { login, password });
      return { auth, result };
    }

    test('discovery names every endpoint and no development defaults', async () => {
      const meta = rp.config.serverMetadata();
      expect(meta.issuer).toBe(server.issuer);
      for (const key of [
        'authorization_endpoint',
        'token_endpoint',
        'userinfo_endpoint',
        'jwks_uri',
        'introspection_endpoint',
        'revocation_endpoint',
        'end_session_endpoint',
      ] as const) {
        expect(meta[key]).toMatch(/^http:\/\/localhost:/);
      }
      expect(meta.code_challenge_methods_supported).toEqual(['S256']);
      const jwks = (await (await fetch(meta.jwks_uri!)).json()) as { keys: Array<{ alg: string; d?: string }> };
      expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
      expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
    });

    test('code + PKCE through the login form; ID token, userinfo, refresh rotation, introspection, revocation', async () => {
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, rp);
      expect(result.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      const tokens = await rp.redeem(result.location!, auth);
      const claims = tokens.claims()!;
      expect(claims.iss).toBe(server.issuer);
      expect(claims.amr).toEqual(['pwd']);
      expect(typeof claims.auth_time).toBe('number');
      const alice = await findAccountByLogin(server.opened.services.db, 'alice');
      expect(claims.sub).toBe(alice!.id);

      const info = await oidc.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
      expect(info).toMatchObject({ sub: alice!.id, preferred_username: 'alice', name: 'Alice Liddell', email: 'alice@example.test', email_verified: true });

      expect(tokens.refresh_token).toBeTruthy();
      const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
      expect(refreshed.refresh_token).toBeTruthy();
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
      const live = await oidc.tokenIntrospection(rp.config, refreshed.access_token);
      expect(live.active).toBe(true);
      expect(live.sub).toBe(alice!.id);
      await oidc.tokenRevocation(rp.config, refreshed.access_token);
      const dead = await oidc.tokenIntrospection(rp.config, refreshed.access_token);
      expect(dead.active).toBe(false);

      // The rotated-out refresh token is dead, and replaying it revokes the whole family.
      await expect(oidc.refreshTokenGrant(rp.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(oidc.refreshTokenGrant(rp.config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    test('an expired authorization code gets invalid_grant, not a 500', async () => {
      const { db, codeHasher } = server.opened.services;
      const rowId = (code: string) => storedPayloadId(codeHasher, 'AuthorizationCode', code);
      // Expired in storage (the row's expires_at), and expired by the provider's own clock check (the payload's exp).
      for (const expire of [
        (code: string) =>
          db
            .updateTable('oidc_payloads')
            .set({ expires_at: new Date(Date.now() - 60_000) })
            .where('kind', '=', 'AuthorizationCode')
            .where('id', '=', rowId(code))
            .execute(),
        (code: string) =>
          db
            .updateTable('oidc_payloads')
            .set({ payload: sql`jsonb_set(payload, '{exp}', to_jsonb(${Math.floor(Date.now() / 1000) - 60}::bigint))` })
            .where('kind', '=', 'AuthorizationCode')
            .where('id', '=', rowId(code))
            .execute(),
      ]) {
        const agent = new UserAgent(server.issuer);
        const { auth, result } = await signIn(agent, rp);
        const code = new URL(result.location!).searchParams.get('code')!;
        const [updated] = await expire(code);
        expect(Number(updated!.numUpdatedRows)).toBe(1);
        await expect(rp.redeem(result.location!, auth)).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
      }
    });

    test('the app verifies ID token signatures (RS256): a tampered signature is refused', async () => {
      const { db, sealer } = server.opened.services;
      const created = await createClient(db, sealer, { name: 'rs256 app', redirectUris: [REDIRECT], firstParty: true });
      const party = await relyingParty(server.issuer, created.clientId, created.clientSecret, REDIRECT);
      // The same route with nothing changed passes, so only the signature can make the second fail.
      editTokenResponses(party, (t) => t);
      let agent = new UserAgent(server.issuer);
      let { auth, result } = await signIn(agent, party);
      const tokens = await party.redeem(result.location!, auth);
      expect(JSON.parse(Buffer.from(tokens.id_token!.split('.')[0]!, 'base64url').toString())).toMatchObject({ alg: 'RS256' });

      editTokenResponses(party, tamperSignature);
      agent = new UserAgent(server.issuer);
      ({ auth, result } = await signIn(agent, party));
      await expect(party.redeem(result.location!, auth)).rejects.toMatchObject({ cause: { message: 'JWT signature verification failed' } });
    });

    test('an app registered for ES256 ID tokens gets them, verified against the published ES256 key', async () => {
      const { db, sealer } = server.opened.services;
      // What `twofold client add … --id-token-alg ES256` registers.
      const created = await createClient(db, sealer, { name: 'es256 app', redirectUris: [REDIRECT], firstParty: true, idTokenAlg: 'ES256' });
      expect(created.metadata.id_token_signed_response_alg).toBe('ES256');
      const party = await relyingParty(server.issuer, created.clientId, created.clientSecret, REDIRECT, {
        metadata: { id_token_signed_response_alg: 'ES256' },
      });
      editTokenResponses(party, (t) => t);
      let agent = new UserAgent(server.issuer);
      let { auth, result } = await signIn(agent, party);
      const tokens = await party.redeem(result.location!, auth);
      const header = JSON.parse(Buffer.from(tokens.id_token!.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string };
      expect(header.alg).toBe('ES256');
      const jwks = (await (await fetch(party.config.serverMetadata().jwks_uri!)).json()) as { keys: Array<{ kid: string; alg: string }> };
      expect(jwks.keys.find((k) => k.kid === header.kid)?.alg).toBe('ES256');
      expect(tokens.claims()!.sub).toBeTruthy();

      editTokenResponses(party, tamperSignature);
      agent = new UserAgent(server.issuer);
      ({ auth, result } = await signIn(agent, party));
      await expect(party.redeem(result.location!, auth)).rejects.toMatchObject({ cause: { message: 'JWT signature verification failed' } });
    });

    test('client_secret_post: the app authenticates with its secret in the body; a wrong secret is invalid_client', async () => {
      const { db, sealer } = server.opened.services;
      const created = await createClient(db, sealer, { name: 'post app', redirectUris: [REDIRECT], firstParty: true, authMethod: 'client_secret_post' });
      const party = await relyingParty(server.issuer, created.clientId, created.clientSecret, REDIRECT, { auth: oidc.ClientSecretPost(created.clientSecret!) });
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, party);
      const tokens = await party.redeem(result.location!, auth);
      expect(tokens.access_token).toBeTruthy();
      expect((await oidc.refreshTokenGrant(party.config, tokens.refresh_token!)).access_token).toBeTruthy();

      const wrong = await relyingParty(server.issuer, created.clientId, created.clientSecret, REDIRECT, {
        auth: oidc.ClientSecretPost(`${created.clientSecret}x`),
      });
      const again = await signIn(new UserAgent(server.issuer), wrong);
      await expect(wrong.redeem(again.result.location!, again.auth)).rejects.toMatchObject({ error: 'invalid_client', status: 401 });
    });

    test('private_key_jwt: an assertion signed with the registered key is accepted; a replayed one, or one signed with another key, is invalid_client', async () => {
      const { db, sealer } = server.opened.services;
      const registered = await clientKey('app-key-1');
      const created = await createClient(db, sealer, {
        name: 'jwt app',
        redirectUris: [REDIRECT],
        firstParty: true,
        authMethod: 'private_key_jwt',
        jwks: { keys: [registered.publicJwk] },
      });
      expect(created.clientSecret).toBeNull();
      const party = await relyingParty(server.issuer, created.clientId, null, REDIRECT, {
        auth: oidc.PrivateKeyJwt({ key: registered.privateKey, kid: 'app-key-1' }),
      });
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, party);
      const tokens = await party.redeem(result.location!, auth);
      expect(tokens.claims()!.iss).toBe(server.issuer);
      expect((await oidc.tokenIntrospection(party.config, tokens.access_token)).active).toBe(true);

      // One assertion of our own (RFC 7523), used twice: accepted once, then refused (its jti is remembered in the database).
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'app-key-1' })
        .setIssuer(created.clientId)
        .setSubject(created.clientId)
        .setAudience(server.issuer)
        .setJti(crypto.randomUUID())
        .setIssuedAt()
        .setExpirationTime('2m')
        .sign(registered.privateKey);
      const redeemWith = async (clientAssertion: string) => {
        const next = await signIn(new UserAgent(server.issuer), party);
        return fetch(new URL('/token', server.issuer), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: new URL(next.result.location!).searchParams.get('code')!,
            redirect_uri: REDIRECT,
            code_verifier: next.auth.verifier,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: clientAssertion,
          }),
        });
      };
      const first = await redeemWith(assertion);
      expect(first.status).toBe(200);
      expect(await first.json()).toHaveProperty('id_token');
      const replay = await redeemWith(assertion);
      expect(replay.status).toBe(401);
      expect(await replay.json()).toMatchObject({ error: 'invalid_client' });

      // Same kid, different key: the signature does not verify.
      const impostor = await clientKey('app-key-1');
      const forged = await relyingParty(server.issuer, created.clientId, null, REDIRECT, {
        auth: oidc.PrivateKeyJwt({ key: impostor.privateKey, kid: 'app-key-1' }),
      });
      const again = await signIn(new UserAgent(server.issuer), forged);
      await expect(forged.redeem(again.result.location!, again.auth)).rejects.toMatchObject({ error: 'invalid_client', status: 401 });
    });

    test('scope=openid alone: no profile or email claims in the ID token or from userinfo', async () => {
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, rp, 'alice', 'correct horse battery', { scope: 'openid' });
      const tokens = await rp.redeem(result.location!, auth);
      const claims = tokens.claims()!;
      for (const claim of ['email', 'email_verified', 'name', 'preferred_username', 'updated_at']) expect(claims).not.toHaveProperty(claim);
      expect(claims.sub).toBeTruthy();
      const info = await oidc.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
      expect(Object.keys(info)).toEqual(['sub']);
    });

    test('under PKCE_REQUIRED=all a confidential client without PKCE is refused too', async () => {
      const agent = new UserAgent(server.issuer);
      const url = new URL('/auth', server.issuer);
      url.search = new URLSearchParams({ client_id: confidentialId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's1' }).toString();
      const hop = await agent.follow(url.toString());
      const params = new URL(hop.location!).searchParams;
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/PKCE/);
    });

    test('an authorization code works once', async () => {
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, rp);
      await rp.redeem(result.location!, auth);
      await expect(rp.redeem(result.location!, auth)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    test('the session signs the user in again without a form; RP-initiated logout ends it', async () => {
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, rp);
      const tokens = await rp.redeem(result.location!, auth);
      const again = await rp.authorizationUrl();
      const hop = await agent.follow(again.url);
      expect(hop.location).toMatch(/callback\?code=/);

      const logoutUrl = oidc.buildEndSessionUrl(rp.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://app.example.test/bye' });
      const confirm = await agent.follow(logoutUrl.toString());
      expect(confirm.status).toBe(200);
      // Leaving, not continuing: the page names the app in its question, not under the brand.
      expect(confirm.body).toMatch(/Do you want to sign out of .+ and Twofold\?/);
      expect(confirm.body).not.toContain('to continue to');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await agent.submit(formAction(confirm.body), { xsrf, logout: 'yes' });
      expect(out.location).toMatch(/^http:\/\/app\.example\.test\/bye/);
      const after = await agent.follow((await rp.authorizationUrl()).url);
      expect(after.body).toContain('name="password"');
    });

    test('wrong password, unknown user and disabled user get the same answer', async () => {
      const answers = [];
      for (const [login, password] of [
        ['alice', 'wrong password'],
        ['nobody', 'whatever pass'],
        ['bob', 'bob password 1'],
      ]) {
        const agent = new UserAgent(server.issuer);
        const { result } = await signIn(agent, rp, login, password);
        expect(result.status).toBe(401);
        answers.push(/<p class="alert"[^>]*>([^<]*)</.exec(result.body)![1]);
      }
      expect(new Set(answers).size).toBe(1);
      expect(answers[0]).toBe('Incorrect username or password.');
    });

    test('user input is HTML-escaped on the login page', async () => {
      const agent = new UserAgent(server.issuer);
      const { result } = await signIn(agent, rp, '<script>alert(1)</script>', 'x');
      expect(result.body).not.toContain('<script>alert(1)</script>');
      expect(result.body).toContain('&lt;script&gt;');
      expect(result.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(result.headers.get('cache-control')).toBe('no-store');
    });

    test('cancel returns access_denied to the app', async () => {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const uid = /\/interaction\/([^/]+)\/login/.exec(page.body)![1]!;
      const out = await agent.follow(`/interaction/${uid}/abort`);
      const params = new URL(out.location!).searchParams;
      expect(params.get('error')).toBe('access_denied');
      expect(params.get('state')).toBe(auth.state);
    });

    test('a third-party app gets a consent page; first-party apps do not', async () => {
      const agent = new UserAgent(server.issuer);
      const { auth, result } = await signIn(agent, thirdPartyRp);
      expect(result.status).toBe(200);
      expect(result.body).toContain('Third Party App');
      expect(result.body).toContain('Allow');
      const done = await agent.submit(formAction(result.body), {});
      expect(done.location).toMatch(/callback\?code=/);
      await thirdPartyRp.redeem(done.location!, auth);
    });

    test('an unregistered redirect_uri is refused with a page, not a redirect', async () => {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl({ redirect_uri: 'http://evil.example.test/cb' });
      const hop = await agent.follow(auth.url);
      expect(hop.status).toBe(400);
      expect(hop.location).toBeUndefined();
      expect(hop.body).toContain('redirect_uri');
    });

    test('a public client without PKCE is refused', async () => {
      const agent = new UserAgent(server.issuer);
      const url = new URL('/auth', server.issuer);
      url.search = new URLSearchParams({ client_id: publicClientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's1' }).toString();
      const hop = await agent.follow(url.toString());
      const params = new URL(hop.location!).searchParams;
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/PKCE/);
    });

    test('bad requests to the API get JSON errors, never a 500', async () => {
      const token = await fetch(new URL('/token', server.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=authorization_code&code=nope',
      });
      expect(token.status).toBe(400);
      expect(await token.json()).toMatchObject({ error: 'invalid_request' });
      const garbage = await fetch(new URL('/interaction/nope/login', server.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.issuer },
        body: '%%%',
      });
      expect(garbage.status).toBeLessThan(500);
      const cross = await fetch(new URL('/interaction/nope/login', server.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example.test' },
        body: 'login=a',
      });
      expect(cross.status).toBe(403);
    });
  });

  describe(`PKCE_REQUIRED=public on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { PKCE_REQUIRED: 'public' });
      await createAccount(server.opened.services.db, server.opened.services.hasher, { username: 'alice', password: 'correct horse battery' });
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('a confidential client may skip PKCE; a public client may not', async () => {
      const { db, sealer } = server.opened.services;
      const web = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      const party = await relyingParty(server.issuer, web.clientId, web.clientSecret, REDIRECT, { withoutPkce: true });
      const auth = await party.authorizationUrl();
      expect(new URL(auth.url).searchParams.has('code_challenge')).toBe(false);
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow(auth.url);
      expect(page.status).toBe(200);
      const result = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      const tokens = await party.redeem(result.location!, auth);
      expect(tokens.claims()!.iss).toBe(server.issuer);

      const spa = await createClient(db, sealer, { name: 'spa', redirectUris: [REDIRECT], public: true, firstParty: true });
      const url = new URL('/auth', server.issuer);
      url.search = new URLSearchParams({ client_id: spa.clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's1' }).toString();
      const hop = await new UserAgent(server.issuer).follow(url.toString());
      const params = new URL(hop.location!).searchParams;
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/PKCE/);
    });
  });
}
