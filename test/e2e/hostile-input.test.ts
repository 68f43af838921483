/**
 * Issue 13, findings 3, 4 and 5, each as it was reported, on every database in the matrix:
 * - a NUL byte (or a lone surrogate, or malformed UTF-8) in a parameter, a form field, a JSON body or Basic
 *   credentials is refused at the edge with 400 (invalid_request JSON for the endpoints, a page in the person's
 *   language for the sign-in pages), never a 500, and nothing downstream loses the body it reads itself;
 * - a malformed claims parameter is invalid_request back to the app, at sign-in and for a signed-in browser;
 * - an essential acr in userinfo is honoured next to one in id_token, and `values: []` is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { Catalogue } from '../../src/i18n/catalogue.ts';

const CATALOGUE = new Catalogue();

const REDIRECT = 'http://app.example.test/callback';
const A1 = 'urn:twofold:acr:1';
const A2 = 'urn:twofold:acr:2';
const A3 = 'urn:twofold:acr:3';

for (const kind of DIALECTS) {
  describe(`hostile input on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;
    let clientId: string;
    let basic: string;
    let totpSecret: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      // MFA off: only the request's essential acr asks for a second factor (finding 5).
      server = await startTestServer(database, { MFA: 'off' });
      const { db, hasher, sealer } = server.opened.services;
      const alice = await createAccount(db, hasher, { username: 'alice', password: 'correct horse battery' });
      totpSecret = await enrolTotp(server.opened.services, alice.id);
      const app = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      clientId = app.clientId;
      basic = `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}`;
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(new URL(path, server.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, ...headers },
        body,
        redirect: 'manual',
      });
    const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, server.issuer), { headers, redirect: 'manual' });

    async function expectInvalidRequest(res: Response, mentions?: string) {
      const text = await res.text();
      expect({ status: res.status, text }).toMatchObject({ status: 400 });
      const body = JSON.parse(text) as { error: string; error_description: string };
      expect(body.error).toBe('invalid_request');
      if (mentions) expect(body.error_description).toContain(mentions);
    }

    test('finding 3: NUL in client_id, code, refresh_token or token is invalid_request at /auth, /token and introspection', async () => {
      const auth = (extra: string) => get(`/auth?response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}&${extra}`);
      await expectInvalidRequest(await auth('client_id=web%00'), '"client_id"');
      await expectInvalidRequest(await auth(`client_id=${clientId}&state=a%00b`), '"state"');
      await expectInvalidRequest(await post('/token', 'grant_type=authorization_code&code=abc%00&redirect_uri=x'), '"code"');
      await expectInvalidRequest(await post('/token', 'grant_type=refresh_token&refresh_token=abc%00'), '"refresh_token"');
      await expectInvalidRequest(
        await post('/token', 'grant_type=refresh_token&refresh_token=x&client_id=a%00&client_secret=s', { authorization: '' }),
        '"client_id"',
      );
      await expectInvalidRequest(await post('/token/introspection', 'token=abc%00'), '"token"');
      await expectInvalidRequest(await post('/token/revocation', 'token=abc%00'), '"token"');
      await expectInvalidRequest(await post('/request', `client_id=${clientId}&response_type=code&scope=openid&nonce=%00`), '"nonce"');
      // Basic credentials are decoded and looked up like a parameter.
      await expectInvalidRequest(
        await post('/token/introspection', 'token=abc', { authorization: `Basic ${Buffer.from('web%00:secret').toString('base64')}` }),
        'Authorization',
      );
      // The same requests without the NUL reach the provider and get its own answers.
      expect((await post('/token', 'grant_type=refresh_token&refresh_token=abc')).status).toBe(400);
      expect(await (await post('/token/introspection', 'token=abc')).json()).toEqual({ active: false });
    });

    test('lone surrogates and malformed UTF-8 are refused too, in the query, a form, a JSON body and the path', async () => {
      await expectInvalidRequest(await get(`/auth?client_id=${clientId}&state=%ED%A0%80`), '"state"');
      await expectInvalidRequest(await get(`/auth?client_id=${clientId}&state=%FF`), '"state"');
      await expectInvalidRequest(await post('/token/introspection', 'token=%C3'), '"token"');
      await expectInvalidRequest(
        await post('/token', JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'a\u0000' }), { 'content-type': 'application/json' }),
        '"refresh_token"',
      );
      // JSON.stringify writes a lone surrogate as the escape PostgreSQL's jsonb refuses.
      await expectInvalidRequest(
        await post('/token', JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'a\ud800' }), { 'content-type': 'application/json' }),
        '"refresh_token"',
      );
      await expectInvalidRequest(
        await post('/token', `grant_type=refresh_token&refresh_token=${Buffer.from('a\0', 'utf16le').toString('latin1')}`, {
          'content-type': 'application/x-www-form-urlencoded; charset=utf-16le',
        }),
      );
      await expectInvalidRequest(await get('/interaction/abc%00', { accept: 'application/json' }), 'path');
    });

    test("finding 3 at the sign-in form: login=name%00 is a page in the person's language; the form still works after", async () => {
      for (const [language, header] of [
        ['en', 'en-GB,en;q=0.9'],
        ['de', 'de-DE,de;q=0.9,en;q=0.5'],
      ] as const) {
        const agent = new UserAgent(server.issuer);
        const auth = await rp.authorizationUrl();
        const page = await agent.follow(auth.url);
        expect(page.status).toBe(200);
        const refused = await agent.request(formAction(page.body), {
          form: { login: 'alice\0', password: 'correct horse battery' },
          headers: { 'accept-language': header },
        });
        expect(refused.status).toBe(400);
        expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
        expect(refused.body).toContain(`<html lang="${language}">`);
        expect(refused.body).toContain(CATALOGUE.text(language, 'input.refused.title'));
        expect(refused.body).toContain(CATALOGUE.text(language, 'input.refused.message'));
        // The guard read the body and handed it on: the same form, clean, signs in (MFA is off: the password is enough).
        const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
        expect(done.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
        // …and the provider still reads the token and introspection bodies after the guard.
        const tokens = await rp.redeem(done.location!, auth);
        expect((await oidc.tokenIntrospection(rp.config, tokens.access_token)).active).toBe(true);
      }
    });

    test('a browser at /auth asking for HTML gets the page, in the ui_locales language', async () => {
      const res = await get(`/auth?client_id=${clientId}&state=%00&ui_locales=de`, { accept: 'text/html' });
      expect(res.status).toBe(400);
      const html = await res.text();
      expect(html).toContain('<html lang="de">');
      expect(html).toContain(CATALOGUE.text('de', 'input.refused.title'));
    });

    test('found by the fuzz suite: a device verification link without its browser session is an expired page, not a 500', async () => {
      for (const path of ['/device/confirm', '/device/abc?xsrf=x']) {
        const res = await get(path, { accept: 'text/html' });
        expect(res.status).toBe(400);
        expect(await res.text()).toContain('This page has expired');
      }
      // POST /device/ is the verification form to the library's router (not strict): answered, and counted, the same.
      const slash = await post('/device/', 'user_code=BCDF-GHJK&xsrf=x', { accept: 'text/html', authorization: '' });
      expect(slash.status).toBe(400);
      expect(await slash.text()).toContain('This page has expired');
    });

    /** The error the provider sends back to the app, from the redirect. */
    async function appError(agent: UserAgent, claims: unknown, extra: Record<string, string> = {}) {
      const auth = await rp.authorizationUrl({ claims: JSON.stringify(claims), ...extra });
      const hop = await agent.follow(auth.url);
      expect(hop.location).toMatch(/^http:\/\/app\.example\.test\/callback\?/);
      const params = new URL(hop.location!).searchParams;
      return { error: params.get('error'), description: params.get('error_description'), state: params.get('state'), expectedState: auth.state };
    }

    async function signedIn(): Promise<UserAgent> {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      expect(done.location).toMatch(/callback\?code=/);
      return agent;
    }

    test('finding 4: acr values as a string is invalid_request back to the app, signed in or not, prompt=none included', async () => {
      const malformed = { id_token: { acr: { essential: true, values: A3 } } };
      const fresh = await appError(new UserAgent(server.issuer), malformed);
      expect(fresh).toMatchObject({ error: 'invalid_request', description: expect.stringContaining('claims.id_token.acr.values') });
      expect(fresh.state).toBe(fresh.expectedState);
      const agent = await signedIn();
      expect(await appError(agent, malformed)).toMatchObject({ error: 'invalid_request' });
      expect(await appError(agent, malformed, { prompt: 'none' })).toMatchObject({ error: 'invalid_request' });
      expect(await appError(agent, { userinfo: { acr: { essential: true, values: [2] } } }, { prompt: 'none' })).toMatchObject({ error: 'invalid_request' });
      // Pushed (PAR) the same way: the library's own invalid_request, as JSON.
      const pushed = await post(
        '/request',
        new URLSearchParams({
          client_id: clientId,
          response_type: 'code',
          scope: 'openid',
          redirect_uri: REDIRECT,
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          claims: JSON.stringify(malformed),
        }).toString(),
      );
      await expectInvalidRequest(pushed, 'claims.id_token.acr.values');
    });

    test('finding 5: essential values: [] is invalid_request, in id_token and in userinfo', async () => {
      const agent = await signedIn();
      for (const member of ['id_token', 'userinfo']) {
        const out = await appError(agent, { [member]: { acr: { essential: true, values: [] } } }, { prompt: 'none' });
        expect(out).toMatchObject({ error: 'invalid_request', description: `claims.${member}.acr.values: must list at least one value` });
      }
    });

    test('finding 5: an essential acr in userinfo is honoured next to one in id_token (the higher level is asked)', async () => {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl({
        claims: JSON.stringify({ id_token: { acr: { essential: true, values: [A1] } }, userinfo: { acr: { essential: true, values: [A2] } } }),
      });
      const page = await agent.follow(auth.url);
      const next = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      // The password alone met the ID token's level 1, not userinfo's level 2: the second factor is asked.
      expect(next.location).toBeUndefined();
      expect(formAction(next.body)).toMatch(/\/factor\/totp$/);
      const done = await agent.submit(formAction(next.body), { code: totpCode(totpSecret, 1) });
      const claims = (await rp.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      // The ID token carries the value its own request asked for (met, and more).
      expect(claims.acr).toBe(A1);
    });
  });
}
