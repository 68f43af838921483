/**
 * The whole OIDC flow through the real provider, with openid-client as the app:
 * authorization code + PKCE through the login form, ID token validation,
 * refresh with rotation, userinfo, introspection, revocation, logout, and the
 * error cases, on every database in the matrix.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount, setDisabled, findAccountByLogin } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';

for (const kind of DIALECTS) {
  describe(`OIDC end to end on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;
    let publicClientId: string;
    let thirdPartyRp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
      const { db, hasher, sealer } = server.opened.services;
      await createAccount(db, hasher, { username: 'alice', email: 'alice@example.test', emailVerified: true, displayName: 'Alice Liddell', password: 'correct horse battery' });
      const bob = await createAccount(db, hasher, { username: 'bob', password: 'bob password 1' });
      await setDisabled(db, bob.id, true);
      const app = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], postLogoutRedirectUris: ['http://app.example.test/bye'], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      const spa = await createClient(db, sealer, { name: 'spa', redirectUris: [REDIRECT], public: true, firstParty: true });
      publicClientId = spa.clientId;
      const third = await createClient(db, sealer, { name: 'Third Party App', redirectUris: [REDIRECT] });
      thirdPartyRp = await relyingParty(server.issuer, third.clientId, third.clientSecret, REDIRECT);
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
      for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint', 'end_session_endpoint'] as const) {
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
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await agent.submit(formAction(confirm.body), { xsrf, logout: 'yes' });
      expect(out.location).toMatch(/^http:\/\/app\.example\.test\/bye/);
      const after = await agent.follow((await rp.authorizationUrl()).url);
      expect(after.body).toContain('name="password"');
    });

    test('wrong password, unknown user and disabled user get the same answer', async () => {
      const answers = [];
      for (const [login, password] of [['alice', 'wrong password'], ['nobody', 'whatever pass'], ['bob', 'bob password 1']]) {
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
      const token = await fetch(new URL('/token', server.issuer), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=authorization_code&code=nope' });
      expect(token.status).toBe(400);
      expect(await token.json()).toMatchObject({ error: 'invalid_request' });
      const garbage = await fetch(new URL('/interaction/nope/login', server.issuer), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.issuer }, body: '%%%' });
      expect(garbage.status).toBeLessThan(500);
      const cross = await fetch(new URL('/interaction/nope/login', server.issuer), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example.test' }, body: 'login=a' });
      expect(cross.status).toBe(403);
    });
  });
}
