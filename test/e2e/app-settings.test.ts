/**
 * Per-app settings that mainstream relying parties need (issue 11):
 *   - PKCE per app (failure 3: passport-openidconnect sends none): required by
 *     default for every client; an admin may make it optional for one
 *     confidential app (audited, shown); never for a public one; S256 only.
 *   - Profile claims in the ID token (failure 4: Auth.js and
 *     express-openid-connect build their user from it): by default the granted
 *     profile and email claims are in the ID token as in userinfo; an app set
 *     to minimal gets only what it asks for by name.
 * openid-client and plain fetch as the apps, on every database in the matrix.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';

interface Registered {
  client_id: string;
  client_secret: string | null;
}

for (const kind of DIALECTS) {
  describe(`per-app PKCE and ID token claims on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    const run = cliRunner(() => services);

    async function add(...argv: string[]): Promise<Registered> {
      const r = await run('client', 'add', ...argv, '--json');
      expect(r).toMatchObject({ code: 0, err: '' });
      return JSON.parse(r.out) as Registered;
    }

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' });
      services = server.opened.services;
      await createAccount(services.db, services.hasher, {
        username: 'alice',
        email: 'alice@example.test',
        emailVerified: true,
        displayName: 'Alice Liddell',
        password: 'a long password',
      });
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    /** An authorization request by hand (as passport-openidconnect makes it): no PKCE unless given. */
    async function authorize(clientId: string, extra: Record<string, string> = {}) {
      const url = new URL('/auth', server.issuer);
      url.search = new URLSearchParams({
        client_id: clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid profile email',
        state: 'st',
        nonce: 'nn',
        ...extra,
      }).toString();
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow(url.toString());
      if (!page.body.includes('name="password"')) return page;
      return agent.submit(formAction(page.body), { login: 'alice', password: 'a long password' });
    }

    /** Redeems a code with client_secret_basic and plain fetch, with or without a code_verifier. */
    async function redeem(client: Registered, location: string, verifier?: string) {
      const code = new URL(location).searchParams.get('code')!;
      const res = await fetch(new URL('/token', server.issuer), {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, ...(verifier ? { code_verifier: verifier } : {}) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    }

    const errorOf = (hop: { location?: string }) => {
      const params = new URL(hop.location!).searchParams;
      return { error: params.get('error'), description: params.get('error_description') };
    };

    test('PKCE is required by default: a confidential app without it is refused', async () => {
      const app = await add('strict-app', '--redirect-uri', REDIRECT, '--first-party');
      expect(JSON.parse((await run('client', 'show', 'strict-app', '--json')).out)).toMatchObject({ pkce: 'required' });
      expect(errorOf(await authorize(app.client_id))).toMatchObject({ error: 'invalid_request', description: expect.stringMatching(/PKCE/) });
      // --pkce required says the same explicitly.
      const explicit = await add('explicit-app', '--redirect-uri', REDIRECT, '--first-party', '--pkce', 'required');
      expect(errorOf(await authorize(explicit.client_id))).toMatchObject({ error: 'invalid_request' });
    });

    test('--pkce optional lets one confidential app sign in without PKCE (audited, shown); with PKCE it is still verified', async () => {
      const app = await add('passport-app', '--redirect-uri', REDIRECT, '--first-party');
      const updated = await run('client', 'update', 'passport-app', '--pkce', 'optional');
      expect(updated).toMatchObject({ code: 0, err: '', out: 'updated passport-app: pkce optional\n' });
      expect(JSON.parse((await run('client', 'show', 'passport-app', '--json')).out)).toMatchObject({ pkce: 'optional' });
      const events = await listAudit(services.db, { type: 'client.updated' });
      expect(events.find((e) => e.client_id === app.client_id)).toMatchObject({ actor: 'admin:test', details: { pkce: 'optional' } });

      const done = await authorize(app.client_id);
      expect(done.location).toMatch(/code=/);
      const tokens = await redeem(app, done.location!);
      expect(tokens.status).toBe(200);
      expect(tokens.body.id_token).toBeTruthy();

      // An app that does send PKCE is held to it: a wrong verifier is refused.
      const verifier = oidc.randomPKCECodeVerifier();
      const withPkce = await authorize(app.client_id, { code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      expect((await redeem(app, withPkce.location!, `${verifier}x`)).body).toMatchObject({ error: 'invalid_grant' });
      // Back to required: refused again.
      expect((await run('client', 'update', 'passport-app', '--pkce', 'required')).code).toBe(0);
      expect(errorOf(await authorize(app.client_id))).toMatchObject({ error: 'invalid_request' });
      // Set at registration too.
      const born = await add('passport-2', '--redirect-uri', REDIRECT, '--first-party', '--pkce', 'optional');
      expect((await authorize(born.client_id)).location).toMatch(/code=/);
    });

    test('a public app can never relax PKCE: refused with a clear message, and nothing changes', async () => {
      const addPublic = await run('client', 'add', 'spa', '--redirect-uri', REDIRECT, '--public', '--pkce', 'optional');
      expect(addPublic).toMatchObject({ code: 1, out: '' });
      expect(addPublic.err).toBe('twofold: --pkce: a public client always uses PKCE: without a secret, PKCE is what protects its authorization codes\n');
      const spa = await add('spa', '--redirect-uri', REDIRECT, '--public', '--first-party');
      const relax = await run('client', 'update', 'spa', '--pkce', 'optional');
      expect(relax).toMatchObject({ code: 1, out: '' });
      expect(relax.err).toMatch(/^twofold: --pkce: a public client always uses PKCE/);
      expect(JSON.parse((await run('client', 'show', 'spa', '--json')).out)).toMatchObject({ pkce: 'required' });
      expect(errorOf(await authorize(spa.client_id))).toMatchObject({ error: 'invalid_request', description: expect.stringMatching(/PKCE/) });
      // Even a stored setting cannot relax it for a public client (the provider checks the client's type first).
      const row = await services.db.selectFrom('clients').selectAll().where('client_id', '=', spa.client_id).executeTakeFirstOrThrow();
      await services.db
        .updateTable('clients')
        .set({ metadata: JSON.stringify({ ...row.metadata, twofold_pkce: 'optional' }) })
        .where('client_id', '=', spa.client_id)
        .execute();
      expect(errorOf(await authorize(spa.client_id))).toMatchObject({ error: 'invalid_request', description: expect.stringMatching(/PKCE/) });
    });

    test('S256 only: plain, or a challenge without its method, is refused', async () => {
      const app = await add('pkce-methods', '--redirect-uri', REDIRECT, '--first-party', '--pkce', 'optional');
      const verifier = oidc.randomPKCECodeVerifier();
      expect(errorOf(await authorize(app.client_id, { code_challenge: verifier, code_challenge_method: 'plain' }))).toMatchObject({
        error: 'invalid_request',
        description: expect.stringMatching(/code_challenge_method/),
      });
      expect(errorOf(await authorize(app.client_id, { code_challenge: verifier }))).toMatchObject({
        error: 'invalid_request',
        description: expect.stringMatching(/code_challenge_method/),
      });
    });

    async function idTokenClaims(party: RelyingParty, extra: Record<string, string> = {}) {
      const auth = await party.authorizationUrl(extra);
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'a long password' });
      const tokens = await party.redeem(done.location!, auth);
      return { claims: tokens.claims()!, tokens };
    }

    test('by default the ID token carries the granted profile and email claims, as userinfo does', async () => {
      const app = await add('authjs-app', '--redirect-uri', REDIRECT, '--first-party');
      const party = await relyingParty(server.issuer, app.client_id, app.client_secret, REDIRECT);
      const { claims, tokens } = await idTokenClaims(party);
      expect(claims).toMatchObject({
        name: 'Alice Liddell',
        preferred_username: 'alice',
        email: 'alice@example.test',
        email_verified: true,
        amr: ['pwd'],
        acr: 'urn:twofold:acr:1',
      });
      expect(JSON.parse((await run('client', 'show', 'authjs-app', '--json')).out)).toMatchObject({ id_token_claims: 'full' });
      expect(typeof claims.updated_at).toBe('number');
      const info = await oidc.fetchUserInfo(party.config, tokens.access_token, claims.sub);
      for (const claim of ['name', 'preferred_username', 'email', 'email_verified', 'updated_at']) expect(claims[claim]).toEqual(info[claim]);
      // Only the granted scopes: profile without email.
      const { claims: profileOnly } = await idTokenClaims(party, { scope: 'openid profile' });
      expect(profileOnly).toMatchObject({ name: 'Alice Liddell', preferred_username: 'alice' });
      expect(profileOnly).not.toHaveProperty('email');
    });

    test('--id-token-claims minimal keeps them in userinfo only, except what the app asks for by name', async () => {
      const app = await add('minimal-app', '--redirect-uri', REDIRECT, '--first-party', '--id-token-claims', 'minimal');
      const party = await relyingParty(server.issuer, app.client_id, app.client_secret, REDIRECT);
      const { claims, tokens } = await idTokenClaims(party);
      for (const claim of ['name', 'preferred_username', 'email', 'email_verified', 'updated_at']) expect(claims).not.toHaveProperty(claim);
      expect(claims).toMatchObject({ acr: 'urn:twofold:acr:1', amr: ['pwd'] });
      expect(typeof claims.auth_time).toBe('number');
      expect(await oidc.fetchUserInfo(party.config, tokens.access_token, claims.sub)).toMatchObject({ name: 'Alice Liddell', email: 'alice@example.test' });
      const { claims: asked } = await idTokenClaims(party, { claims: JSON.stringify({ id_token: { email: null } }) });
      expect(asked).toMatchObject({ email: 'alice@example.test' });
      expect(asked).not.toHaveProperty('name');
      // Switched back to full (audited) for the next sign-in.
      expect((await run('client', 'update', 'minimal-app', '--id-token-claims', 'full')).out).toBe('updated minimal-app: id_token_claims full\n');
      expect((await idTokenClaims(party)).claims).toMatchObject({ name: 'Alice Liddell' });
      expect((await run('client', 'add', 'x', '--redirect-uri', REDIRECT, '--id-token-claims', 'some')).err).toMatch(/^twofold: --id-token-claims: /);
    });
  });
}
