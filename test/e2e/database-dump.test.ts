/**
 * Nothing usable in a dump (issue 13, finding 2), on every database in the
 * matrix, through the real provider over HTTP.
 *
 * A full sign-in with a refresh leaves live bearer values behind: a session, a
 * rotated refresh token and its access token (a confidential app), a refresh
 * token and an unredeemed code (a public app, which needs no secret), and a
 * sign-in stopped at its second step (an interaction). Then the database is
 * dumped (test/helpers/database-dump.ts) and every string in the dump that
 * could be a token is tried as each of them: a refresh token (as either app),
 * an access token (userinfo and introspection), an authorization code (with
 * the real PKCE verifier of the live code), a session cookie and an interaction
 * id (each cookie signed with the provider's own cookie keys, exactly as the
 * browser sends it). Every try must be refused.
 *
 * The attacker here is stronger than a real one: the apps' secrets, the PKCE
 * verifier and the cookie keys are sealed in the dump, yet the test hands them
 * over, so that only the storage of the bearer values themselves stands in the
 * way. Each kind of try is first shown to accept the real value, before the
 * dump and again after every candidate was refused, so a refusal is never a
 * broken try and the live values were live throughout.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp } from '../helpers/factors.ts';
import { candidateTokens, dumpContains, dumpDatabase } from '../helpers/database-dump.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';
const SESSION_COOKIE = 'twofold.session';
const INTERACTION_COOKIE = 'twofold.interaction';

/** What a try of one candidate came to. Anything but these two is a broken try and fails the test at once. */
type Verdict = 'accepted' | 'refused';

/**
 * fetch, once more when a kept-alive connection was closed by the server just
 * as it was reused (ECONNRESET before any answer: the request was not read).
 * Thousands of tries after a pause of seconds (the dump) meet that race on a
 * busy machine; anything else fails the test.
 */
async function send(url: string | URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'ECONNRESET') throw err;
    return fetch(url, init);
  }
}

/** How koa's cookies (keygrip, sha1) sign `name=value` with the first key: the browser sends this as `name.sig`. */
function cookieSignature(keys: string[], name: string, value: string): string {
  return crypto
    .createHmac('sha1', keys[0]!)
    .update(`${name}=${value}`)
    .digest('base64')
    .replace(/\/|\+|=/g, (c) => ({ '/': '_', '+': '-', '=': '' })[c]!);
}

for (const kind of DIALECTS) {
  describe(`a database dump on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let web: { id: string; secret: string; rp: RelyingParty };
    let spa: { id: string; rp: RelyingParty };
    let endpoints: { token: string; userinfo: string; introspection: string; authorization: string };
    /** Strings in a dump taken before any sign-in: none of them can be a bearer value the sign-in issued. */
    let before: Set<string>;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      // The live code must outlive every try (thousands of requests on a busy machine): the longest lifetime allowed.
      server = await startTestServer(database, { AUTHORIZATION_CODE_TTL: '600' });
      const { services } = server.opened;
      await createAccount(services.db, services.hasher, { username: 'alice', email: 'alice@example.test', password: 'correct horse battery' });
      const bob = await createAccount(services.db, services.hasher, { username: 'bob', password: 'bob password one' });
      await enrolTotp(services, bob.id);
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      const pub = await createClient(services.db, services.sealer, { name: 'spa', redirectUris: [REDIRECT], public: true, firstParty: true });
      // Before the apps' first requests, so no kept-alive connection idles through the dump's seconds.
      before = candidateTokens(await dumpDatabase(database));
      web = { id: app.clientId, secret: app.clientSecret!, rp: await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT) };
      spa = { id: pub.clientId, rp: await relyingParty(server.issuer, pub.clientId, null, REDIRECT) };
      const meta = web.rp.config.serverMetadata();
      endpoints = {
        token: meta.token_endpoint!,
        userinfo: meta.userinfo_endpoint!,
        introspection: meta.introspection_endpoint!,
        authorization: meta.authorization_endpoint!,
      };
      // A database, a provider and a dump (PGlite: copied, then started as a copy of its own) take long on a busy machine.
    }, 180_000);

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    function unexpected(what: string, status: number, body: string): never {
      throw new Error(`${what}: unexpected answer ${status} ${body.slice(0, 300)}`);
    }

    const basic = () => `Basic ${Buffer.from(`${encodeURIComponent(web.id)}:${encodeURIComponent(web.secret)}`).toString('base64')}`;

    async function tokenRequest(form: Record<string, string>, confidential: boolean): Promise<{ status: number; body: string }> {
      const res = await send(endpoints.token, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(confidential ? { authorization: basic() } : {}) },
        body: new URLSearchParams(confidential ? form : { ...form, client_id: spa.id }).toString(),
      });
      return { status: res.status, body: await res.text() };
    }

    /** 200 with tokens, or the protocol's refusal (400 invalid_grant); nothing else. */
    function grantVerdict(what: string, answer: { status: number; body: string }): Verdict {
      if (answer.status === 200 && JSON.parse(answer.body).access_token) return 'accepted';
      if (answer.status === 400 && JSON.parse(answer.body).error === 'invalid_grant') return 'refused';
      return unexpected(what, answer.status, answer.body);
    }

    const tries = {
      async refreshWeb(value: string): Promise<Verdict> {
        return grantVerdict('refresh (web)', await tokenRequest({ grant_type: 'refresh_token', refresh_token: value }, true));
      },
      async refreshSpa(value: string): Promise<Verdict> {
        return grantVerdict('refresh (spa)', await tokenRequest({ grant_type: 'refresh_token', refresh_token: value }, false));
      },
      async userinfo(value: string): Promise<Verdict> {
        const res = await send(endpoints.userinfo, { headers: { authorization: `Bearer ${value}` } });
        const body = await res.text();
        if (res.status === 200) return 'accepted';
        if (res.status === 401 || (res.status === 400 && JSON.parse(body).error === 'invalid_request')) return 'refused';
        return unexpected('userinfo', res.status, body);
      },
      async introspect(value: string): Promise<Verdict> {
        const res = await send(endpoints.introspection, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
          body: new URLSearchParams({ token: value }).toString(),
        });
        const body = await res.text();
        if (res.status !== 200) return unexpected('introspection', res.status, body);
        return (JSON.parse(body) as { active: boolean }).active ? 'accepted' : 'refused';
      },
      /** Redeemed with the live code's own verifier and redirect URI: only the code itself can be wrong. */
      async code(value: string): Promise<Verdict> {
        return grantVerdict(
          'code',
          await tokenRequest({ grant_type: 'authorization_code', code: value, redirect_uri: REDIRECT, code_verifier: live.codeVerifier }, false),
        );
      },
      /** A silent authorization (prompt=none) with the candidate as the session cookie: a code means a session was found. */
      async session(value: string): Promise<Verdict> {
        const verifier = oidc.randomPKCECodeVerifier();
        const url = new URL(endpoints.authorization);
        const params = {
          client_id: web.id,
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: 'openid',
          prompt: 'none',
          state: 'dump',
          code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
        };
        for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
        const keys = server.holder.cookieKeys;
        const cookie = `${SESSION_COOKIE}=${value}; ${SESSION_COOKIE}.sig=${cookieSignature(keys, SESSION_COOKIE, value)}`;
        const res = await send(url, { headers: { cookie }, redirect: 'manual' });
        const location = res.headers.get('location') ?? '';
        await res.text();
        if (res.status === 303 && location.startsWith(REDIRECT)) {
          const answer = new URL(location).searchParams;
          if (answer.get('code')) return 'accepted';
          if (answer.get('error') === 'login_required') return 'refused';
        }
        return unexpected('session', res.status, location);
      },
      /** The interaction page with the candidate as its id and as its (signed) cookie: the page itself means it was found. */
      async interaction(value: string): Promise<Verdict> {
        const keys = server.holder.cookieKeys;
        const cookie = `${INTERACTION_COOKIE}=${value}; ${INTERACTION_COOKIE}.sig=${cookieSignature(keys, INTERACTION_COOKIE, value)}`;
        const res = await send(new URL(`/interaction/${encodeURIComponent(value)}`, server.issuer), {
          headers: { cookie, accept: 'text/html' },
          redirect: 'manual',
        });
        const body = await res.text();
        if (res.status === 200) return 'accepted';
        if (res.status === 400 && /Sign-in expired/.test(body)) return 'refused';
        return unexpected('interaction', res.status, body);
      },
    };
    type TryName = keyof typeof tries;

    /** The live bearer values, as the browser and the apps hold them. */
    const live = { sessionCookie: '', sessionSig: '', webRefresh: '', webAccess: '', spaRefresh: '', code: '', codeVerifier: '', interaction: '' };

    async function signIn(agent: UserAgent, party: RelyingParty, login: string, password: string) {
      const auth = await party.authorizationUrl();
      const page = await agent.follow(auth.url);
      expect(page.status).toBe(200);
      return { auth, result: await agent.submit(formAction(page.body), { login, password }) };
    }

    /** An authorization answered from the session alone (single sign-on): a code, not yet redeemed. */
    async function silentCode(agent: UserAgent, party: RelyingParty) {
      const auth = await party.authorizationUrl();
      const hop = await agent.follow(auth.url);
      expect(hop.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      return { auth, location: hop.location! };
    }

    async function expectEveryTryAcceptsTheLiveValues(): Promise<void> {
      expect(await tries.userinfo(live.webAccess)).toBe('accepted');
      expect(await tries.introspect(live.webAccess)).toBe('accepted');
      expect(await tries.introspect(live.webRefresh)).toBe('accepted');
      expect(await tries.session(live.sessionCookie)).toBe('accepted');
      expect(await tries.interaction(live.interaction)).toBe('accepted');
    }

    test('a full sign-in with a refresh, then every string in the dump is refused as every kind of bearer value', async () => {
      // The confidential app: sign-in, code, tokens, one refresh (rotation).
      const alice = new UserAgent(server.issuer);
      const { auth, result } = await signIn(alice, web.rp, 'alice', 'correct horse battery');
      const first = await web.rp.redeem(result.location!, auth);
      const refreshed = await oidc.refreshTokenGrant(web.rp.config, first.refresh_token!);
      expect(refreshed.refresh_token).not.toBe(first.refresh_token);
      live.webRefresh = refreshed.refresh_token!;
      live.webAccess = refreshed.access_token;
      live.sessionCookie = alice.cookies.get(SESSION_COOKIE)!;
      live.sessionSig = alice.cookies.get(`${SESSION_COOKIE}.sig`)!;
      // The cookie is signed exactly as the provider signs it, so a forged one differs only in its value.
      expect(cookieSignature(server.holder.cookieKeys, SESSION_COOKIE, live.sessionCookie)).toBe(live.sessionSig);

      // The public app, by single sign-on: one code redeemed (its refresh token stays live), one left unredeemed.
      const redeemed = await silentCode(alice, spa.rp);
      live.spaRefresh = (await spa.rp.redeem(redeemed.location, redeemed.auth)).refresh_token!;
      expect(live.spaRefresh).toBeTruthy();
      const pending = await silentCode(alice, spa.rp);
      live.code = new URL(pending.location).searchParams.get('code')!;
      live.codeVerifier = pending.auth.verifier;

      // A sign-in stopped at its second step: a live interaction with server-side state.
      const bob = new UserAgent(server.issuer);
      const stopped = await signIn(bob, web.rp, 'bob', 'bob password one');
      expect(stopped.result.status).toBe(200);
      live.interaction = bob.cookies.get(INTERACTION_COOKIE)!;
      expect(stopped.result.url).toContain(`/interaction/${live.interaction}`);
      expect(cookieSignature(server.holder.cookieKeys, INTERACTION_COOKIE, live.interaction)).toBe(bob.cookies.get(`${INTERACTION_COOKIE}.sig`));

      await expectEveryTryAcceptsTheLiveValues();

      const dump = await dumpDatabase(database);
      const found = candidateTokens(dump);
      // The dump is real: it holds the accounts and the apps.
      expect(dump.logical).toContain('alice@example.test');
      expect(found).toContain(web.id);
      // Every string the sign-ins brought into it (the catalogs' names and the rows written before are not tokens they issued).
      const candidates = [...found].filter((s) => !before.has(s));

      // Non-destructive tries first; then those that consume (a refresh rotates, a code is spent), the likeliest first,
      // as an attacker would order them: a refresh token seen active at introspection.
      const accepted: string[] = [];
      const run = async (name: TryName, values: string[]) => {
        const queue = [...values];
        const worker = async () => {
          for (let value = queue.shift(); value !== undefined; value = queue.shift()) {
            if ((await tries[name](value)) === 'accepted') accepted.push(`${name}: ${value}`);
          }
        };
        await Promise.all(Array.from({ length: 4 }, worker));
      };
      for (const name of ['userinfo', 'introspect', 'session', 'interaction'] as const) await run(name, candidates);
      const active = new Set(accepted.filter((a) => a.startsWith('introspect: ')).map((a) => a.slice('introspect: '.length)));
      const likeliestFirst = [...candidates].sort((a, b) => Number(active.has(b)) - Number(active.has(a)));
      for (const name of ['refreshWeb', 'refreshSpa', 'code'] as const) await run(name, likeliestFirst);

      expect({ dump: dump.description, tried: candidates.length, accepted }).toEqual({ dump: dump.description, tried: candidates.length, accepted: [] });
      // Nor is any live value anywhere in it, as a try could miss one kept where no endpoint looks (the state of a sign-in in progress).
      const liveValues = {
        webRefresh: live.webRefresh,
        webAccess: live.webAccess,
        spaRefresh: live.spaRefresh,
        code: live.code,
        session: live.sessionCookie,
        interaction: live.interaction,
      };
      const inDump = Object.entries(liveValues).filter(([, value]) => dumpContains(dump, value));
      expect(inDump).toEqual([]);

      // The live values were live all along: each try still accepts the real one.
      await expectEveryTryAcceptsTheLiveValues();
      expect(await tries.code(live.code)).toBe('accepted');
      expect(await tries.refreshSpa(live.spaRefresh)).toBe('accepted');
      expect(await tries.refreshWeb(live.webRefresh)).toBe('accepted');
    }, 300_000);
  });
}
