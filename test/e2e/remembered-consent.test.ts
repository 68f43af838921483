/**
 * A third-party app's consent is remembered per account and app until revoked,
 * not per browser session: a fresh browser is not asked again for what was
 * allowed, a request for more asks only for the rest, signing out keeps it,
 * and `twofold user revoke-consent`, the revocation endpoint or the grant's
 * expiry end it (and the app's tokens with it). On every database in the matrix.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { sql } from 'kysely';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { storedPayloadId } from '../../src/oidc/adapter.ts';
import { listAudit } from '../../src/security/audit.ts';

const REDIRECT = 'http://gallery.example.test/callback';
const PASSWORD = 'a long enough password';
const GRANT_TTL = 14 * 86400;

/** The scopes a consent page lists, as the person reads them. */
function listedScopes(html: string): string[] {
  const list = /<ul class="scopes">([\s\S]*?)<\/ul>/.exec(html)?.[1] ?? '';
  return [...list.matchAll(/<li>([^<]*)<\/li>/g)].map((m) => m[1]!);
}

for (const kind of DIALECTS) {
  describe(`remembered consent on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let gallery: RelyingParty;
    let galleryId: string;
    let users = 0;
    const cli = cliRunner(() => server.opened.services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { GRANT_TTL: String(GRANT_TTL) });
      const app = await createClient(server.opened.services.db, server.opened.services.sealer, {
        name: 'Gallery',
        redirectUris: [REDIRECT],
        postLogoutRedirectUris: ['http://gallery.example.test/bye'],
      });
      galleryId = app.clientId;
      gallery = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function person() {
      const username = `consent${++users}`;
      const { db, hasher } = server.opened.services;
      const account = await createAccount(db, hasher, {
        username,
        email: `${username}@example.test`,
        emailVerified: true,
        displayName: `Person ${users}`,
        password: PASSWORD,
      });
      return { username, account };
    }

    /** Signs in with the password in `agent`; the answer is the consent page or the redirect back to the app. */
    async function signIn(agent: UserAgent, username: string, scope = 'openid profile email') {
      const auth = await gallery.authorizationUrl({ scope });
      const page = await agent.follow(auth.url);
      // A browser with a session goes straight on; a fresh one gets the sign-in form.
      const result =
        page.status === 200 && page.body.includes('name="password"')
          ? await agent.submit(formAction(page.body), { login: username, password: PASSWORD })
          : page;
      return { auth, result };
    }

    const isConsentPage = (hop: { status: number; body: string }) => hop.status === 200 && hop.body.includes('/consent"');

    /** Signs in and allows whatever the consent page asks; returns the app's tokens. */
    async function consent(agent: UserAgent, username: string, scope?: string) {
      const { auth, result } = await signIn(agent, username, scope);
      expect(isConsentPage(result)).toBe(true);
      const done = await agent.submit(formAction(result.body), {});
      expect(done.location).toMatch(/^http:\/\/gallery\.example\.test\/callback\?code=/);
      return gallery.redeem(done.location!, auth);
    }

    /** Signs in and expects to go straight back to the app with a code; returns the app's tokens. */
    async function noConsent(agent: UserAgent, username: string, scope?: string) {
      const { auth, result } = await signIn(agent, username, scope);
      expect(isConsentPage(result)).toBe(false);
      expect(result.location).toMatch(/^http:\/\/gallery\.example\.test\/callback\?code=/);
      return gallery.redeem(result.location!, auth);
    }

    async function rememberedGrant(accountId: string) {
      return server.opened.services.db
        .selectFrom('consents')
        .selectAll()
        .where('account_id', '=', accountId)
        .where('client_id', '=', galleryId)
        .executeTakeFirst();
    }

    /** The grants the account's refresh tokens were issued under. */
    async function grantsOfRefreshTokens(accountId: string) {
      const rows = await server.opened.services.db
        .selectFrom('oidc_payloads')
        .select('grant_id')
        .distinct()
        .where('kind', '=', 'RefreshToken')
        .where(sql<string>`payload->>'accountId'`, '=', accountId)
        .execute();
      return rows.map((r) => r.grant_id);
    }

    /** The stored Grant's row (kind, hashed id), as the adapter keeps it. */
    function grantRow(grantId: string) {
      const { db, codeHasher } = server.opened.services;
      return db
        .selectFrom('oidc_payloads')
        .where('kind', '=', 'Grant')
        .where('id', '=', storedPayloadId(codeHasher, 'Grant', grantId));
    }

    test('asked once: a fresh browser with the same or fewer scopes goes straight back to the app', async () => {
      const { username, account } = await person();
      const first = await consent(new UserAgent(server.issuer), username);
      expect(first.claims()!.sub).toBe(account.id);

      const again = await noConsent(new UserAgent(server.issuer), username);
      expect(again.claims()).toMatchObject({ sub: account.id, email: `${username}@example.test`, name: `Person ${users}` });
      const fewer = await noConsent(new UserAgent(server.issuer), username, 'openid profile');
      expect(fewer.claims()!.email).toBeUndefined();
      // One grant holds the consent, whichever browser signed in: the remembered one.
      const remembered = await rememberedGrant(account.id);
      expect(await grantsOfRefreshTokens(account.id)).toEqual([remembered!.grant_id]);
      expect((await oidc.tokenIntrospection(gallery.config, again.access_token)).active).toBe(true);
    });

    test('a request for more scopes asks only for the new ones, then remembers them too', async () => {
      const { username } = await person();
      const agent = new UserAgent(server.issuer);
      const first = await signIn(agent, username, 'openid profile');
      expect(listedScopes(first.result.body)).toEqual(['Know who you are', 'See your name and username']);
      expect((await agent.submit(formAction(first.result.body), {})).location).toMatch(/callback\?code=/);

      const more = await signIn(new UserAgent(server.issuer), username, 'openid profile email');
      expect(isConsentPage(more.result)).toBe(true);
      expect(listedScopes(more.result.body)).toEqual(['See your email address']);
    });

    test('allowing the extra scope keeps the earlier ones in the same grant', async () => {
      const { username, account } = await person();
      await consent(new UserAgent(server.issuer), username, 'openid profile');
      const before = await rememberedGrant(account.id);
      const agent = new UserAgent(server.issuer);
      const tokens = await consent(agent, username, 'openid profile email');
      expect(tokens.claims()).toMatchObject({ email: `${username}@example.test`, name: `Person ${users}` });
      expect((await rememberedGrant(account.id))!.grant_id).toBe(before!.grant_id);
      await noConsent(new UserAgent(server.issuer), username, 'openid profile email');
    });

    test('another account signing in to the same app is still asked', async () => {
      const alice = await person();
      const carol = await person();
      await consent(new UserAgent(server.issuer), alice.username);
      const { result } = await signIn(new UserAgent(server.issuer), carol.username);
      expect(isConsentPage(result)).toBe(true);
      expect(result.body).toContain(carol.username);
    });

    test('revoke-consent: the old refresh token stops working and the next sign-in asks again', async () => {
      const { username, account } = await person();
      const agent = new UserAgent(server.issuer);
      const tokens = await consent(agent, username);
      const rotated = await oidc.refreshTokenGrant(gallery.config, tokens.refresh_token!);
      expect(rotated.refresh_token).toBeTruthy();

      const listed = await cli('user', 'consents', username, '--json');
      expect(listed.code).toBe(0);
      const [entry] = JSON.parse(listed.out) as Array<{ client_id: string; client_name: string; scopes: string[] }>;
      expect(entry).toMatchObject({ client_id: galleryId, client_name: 'Gallery', scopes: ['openid', 'profile', 'email'] });

      const revoked = await cli('user', 'revoke-consent', username, 'Gallery');
      expect(revoked).toMatchObject({ code: 0, err: '' });
      expect(revoked.out).toContain(`revoked ${username}'s consent to Gallery`);

      await expect(oidc.refreshTokenGrant(gallery.config, rotated.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await oidc.tokenIntrospection(gallery.config, rotated.access_token)).active).toBe(false);
      expect(await rememberedGrant(account.id)).toBeUndefined();
      expect((await listAudit(server.opened.services.db, { accountId: account.id, type: 'consent.revoked' })).map((e) => [e.client_id, e.actor])).toEqual([
        [galleryId, 'admin:test'],
      ]);

      // The same browser (its session still names the grant) and a fresh one are both asked again.
      expect(isConsentPage((await signIn(agent, username)).result)).toBe(true);
      expect(isConsentPage((await signIn(new UserAgent(server.issuer), username)).result)).toBe(true);
    });

    test('two browsers consenting at once: revoke-consent ends both grants', async () => {
      const { username, account } = await person();
      const one = new UserAgent(server.issuer);
      const two = new UserAgent(server.issuer);
      // Both reach the consent page before either allows: each gets a grant of its own.
      const pages = [await signIn(one, username), await signIn(two, username)];
      const tokens = [];
      for (const [i, agent] of [one, two].entries()) {
        const { auth, result } = pages[i]!;
        expect(isConsentPage(result)).toBe(true);
        const done = await agent.submit(formAction(result.body), {});
        tokens.push(await gallery.redeem(done.location!, auth));
      }
      expect(await grantsOfRefreshTokens(account.id)).toHaveLength(2);

      expect((await cli('user', 'revoke-consent', username, galleryId)).code).toBe(0);
      for (const t of tokens) await expect(oidc.refreshTokenGrant(gallery.config, t.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(isConsentPage((await signIn(one, username)).result)).toBe(true);
    });

    test("signing out of one browser keeps the consent and the other browsers' tokens", async () => {
      const { username } = await person();
      const first = await consent(new UserAgent(server.issuer), username);
      const second = new UserAgent(server.issuer);
      const tokens = await noConsent(second, username);

      const logout = oidc.buildEndSessionUrl(gallery.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://gallery.example.test/bye' });
      const confirm = await second.follow(logout.toString());
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await second.submit(formAction(confirm.body), { xsrf, logout: 'yes' });
      expect(out.location).toMatch(/^http:\/\/gallery\.example\.test\/bye/);
      // The signed-out browser's tokens end with its session.
      await expect(oidc.refreshTokenGrant(gallery.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

      // The first browser's session, and its tokens from the same grant, are untouched.
      expect((await oidc.refreshTokenGrant(gallery.config, first.refresh_token!)).access_token).toBeTruthy();
      await noConsent(second, username);
    });

    test('a grant revoked at the revocation endpoint is not brought back by the remembered consent', async () => {
      const { username, account } = await person();
      const tokens = await consent(new UserAgent(server.issuer), username);
      await oidc.tokenRevocation(gallery.config, tokens.refresh_token!);
      expect(isConsentPage((await signIn(new UserAgent(server.issuer), username)).result)).toBe(true);
      // The library told us the grant was revoked, or the lookup found it gone: either way the pointer is gone.
      expect(await rememberedGrant(account.id)).toBeUndefined();
    });

    test("each sign-in moves the remembered grant's expiry to GRANT_TTL from then; an expired one asks again", async () => {
      const { username, account } = await person();
      await consent(new UserAgent(server.issuer), username);
      const { grant_id: grantId } = (await rememberedGrant(account.id))!;
      const { db } = server.opened.services;
      // As if the consent was given almost GRANT_TTL ago: a minute left.
      const soon = Math.floor(Date.now() / 1000) + 60;
      const age = (exp: number) =>
        db
          .updateTable('oidc_payloads')
          .set({ payload: sql`jsonb_set(payload, '{exp}', to_jsonb(${exp}::bigint))`, expires_at: new Date(exp * 1000) })
          .where('kind', '=', 'Grant')
          .where('id', '=', storedPayloadId(server.opened.services.codeHasher, 'Grant', grantId))
          .execute();
      await age(soon);
      await noConsent(new UserAgent(server.issuer), username);
      const moved = await grantRow(grantId).select('expires_at').executeTakeFirstOrThrow();
      expect(moved.expires_at!.getTime() / 1000).toBeGreaterThan(Date.now() / 1000 + GRANT_TTL - 60);

      await age(Math.floor(Date.now() / 1000) - 1);
      expect(isConsentPage((await signIn(new UserAgent(server.issuer), username)).result)).toBe(true);
      expect(await rememberedGrant(account.id)).toBeUndefined();
    });
  });
}
