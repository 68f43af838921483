/**
 * A factor's browser return route (/interaction/:uid/factor/:id/return), end
 * to end over HTTP, with a factor proved at another site as Duo's is
 * (test/fixtures/factors/relay-back): the page links to the vendor with a
 * state and the return URL, the browser comes back with a code, the factor
 * checks the state and redeems the code at the vendor's API (a stand-in
 * transport). The factor receives a plain request: the query and the headers
 * it declared, never the cookies. What the browser brings is counted as a
 * guess unless it proves.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import relayBack, { returns } from '../fixtures/factors/relay-back/index.ts';
import type { HttpTransport } from '../../src/mfa/factor-http.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import type { Services } from '../../src/services.ts';
import type { Account } from '../../src/db/schema.ts';

const REDIRECT = 'http://app.example.test/callback';
const GOOD = 'good-code-1234';
let userCount = 0;

/** Example Verify's API: a code it issued is confirmed, any other refused. */
const vendor: HttpTransport = async ({ method, url, body }) => {
  const ok = method === 'POST' && url.toString() === 'https://verify.example.test/token';
  const code = ok ? (JSON.parse(body ?? '{}') as { code?: string }).code : undefined;
  return {
    status: ok ? 200 : 404,
    headers: { 'content-type': 'application/json' },
    body: [Buffer.from(JSON.stringify({ result: code === GOOD ? 'allow' : 'deny' }))],
  };
};

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/\s+/g, ' ');

for (const kind of DIALECTS) {
  describe(`a factor's browser return on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'required' }, { httpTransport: vendor, extraFactors: [relayBack] });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'Ledger', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<{ account: Account; username: string }> {
      const username = `returner${++userCount}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      await services.factors.store.insert(account.id, 'relay-back', { label: 'Example Verify', data: { user: username } });
      return { account, username };
    }

    async function signIn(agent: UserAgent, username: string) {
      const auth = await rp.authorizationUrl();
      const login = await agent.follow(auth.url);
      const page = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      return { auth, page };
    }

    /** Where the challenge page sends the browser: the vendor's URL, with the state and the return URL. */
    function vendorLink(page: Hop): { state: string; back: string } {
      const href = /href="(https:\/\/verify\.example\.test\/authorize\?[^"]+)"/
        .exec(page.body)![1]!
        .replace(/&#x3D;/g, '=')
        .replace(/&amp;/g, '&');
      const url = new URL(href);
      return { state: url.searchParams.get('state')!, back: url.searchParams.get('redirect_uri')! };
    }

    const failures = async (account: Account) =>
      Number(
        (await services.db.selectFrom('rate_limits').select('points').where('key', '=', `mfa:acct:5m:${account.id}:relay-back`).executeTakeFirst())?.points ??
          0,
      );

    test('the browser comes back with a code: the factor checks it through the engine, and the sign-in finishes', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { auth, page } = await signIn(agent, username);
      const { state, back } = vendorLink(page);
      const uid = /\/interaction\/([^/]+)\//.exec(new URL(back).pathname + '/')![1]!;
      expect(back).toBe(`${server.issuer}/interaction/${uid}/factor/relay-back/return`);
      // A reload shows the same challenge (the same state).
      expect(vendorLink(await agent.follow(`/interaction/${uid}`)).state).toBe(state);

      const returned = await agent.request(`${back}?state=${state}&code=${GOOD}`, {
        headers: { 'user-agent': 'Browser/1.0', 'x-vendor-trace': 'trace-7', 'x-other': 'not declared' },
      });
      const hop = await agent.follow(returned.location!);
      expect(hop.location).toMatch(/callback\?code=/);
      const claims = (await rp.redeem(hop.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(await failures(account)).toBe(0);

      // What the factor was handed: the query and the headers it declared; no cookie, nothing else.
      const seen = returns.at(-1)!;
      expect(seen).toEqual({
        method: 'GET',
        query: { state, code: GOOD },
        form: {},
        body: '',
        headers: { 'user-agent': 'Browser/1.0', 'x-vendor-trace': 'trace-7' },
      });
      // The sign-in is over: the same return again finds no interaction.
      expect((await agent.request(`${back}?state=${state}&code=${GOOD}`)).status).toBe(400);
    });

    test('a return with the wrong state, or a code the vendor refuses, fails with a clear page and counts a failure each', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { auth, page } = await signIn(agent, username);
      const { state, back } = vendorLink(page);
      const forged = await agent.request(`${back}?state=${state.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}&code=${GOOD}`);
      expect(forged.status).toBe(401);
      expect(textOf(forged.body)).toContain('That answer was not for this sign-in. Start again.');
      expect(await failures(account)).toBe(1);
      // A new challenge (a new state) is shown with the failure.
      const fresh = vendorLink(forged);
      expect(fresh.state).not.toBe(state);
      const refused = await agent.request(`${fresh.back}?state=${fresh.state}&code=bad-code-9999`);
      expect(refused.status).toBe(401);
      expect(textOf(refused.body)).toContain('Example Verify did not confirm it was you.');
      expect(await failures(account)).toBe(2);
      const malformed = await agent.request(`${vendorLink(refused).back}?state=x&code=${'y'.repeat(5000)}`);
      expect(malformed.status).toBe(400);
      // The audit says what happened and where the vendor was called, never the code.
      const audit = await services.db.selectFrom('audit_events').select(['type', 'details']).where('account_id', '=', account.id).execute();
      expect(audit.filter((e) => e.type === 'factor.http').map((e) => e.details)).toEqual(
        expect.arrayContaining([expect.objectContaining({ host: 'verify.example.test', path: '/token', status: 200 })]),
      );
      expect(JSON.stringify(audit)).not.toContain('bad-code-9999');

      // Then the genuine return goes through.
      const last = vendorLink(await agent.follow(`/interaction/${/\/interaction\/([^/]+)\//.exec(new URL(fresh.back).pathname)![1]}`));
      const done = await agent.follow(`${last.back}?state=${last.state}&code=${GOOD}`);
      expect(done.location).toMatch(/callback\?code=/);
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['otp']));
    });

    test('another browser cannot use the return route of this sign-in', async () => {
      const { username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { page } = await signIn(agent, username);
      const { state, back } = vendorLink(page);
      const stranger = new UserAgent(server.issuer);
      expect((await stranger.request(`${back}?state=${state}&code=${GOOD}`)).status).toBe(400);
      // The owner's return still works afterwards.
      expect((await agent.follow(`${back}?state=${state}&code=${GOOD}`)).location).toMatch(/callback\?code=/);
    });
  });
}
