/**
 * The push example (examples/factor-push) end to end, over HTTP, with
 * openid-client as the app. The test plays the phone: it pairs from what the
 * enrolment page shows, receives requests through the push relay (the
 * factor's http transport), and answers with signed calls to the factor's
 * callback, sent to a second provider on the same database (as another
 * process behind a load balancer would get it). The browser has no script:
 * it polls the JSON endpoint as the page's script does, and uses "Check
 * again" and "Start again" as a person without script would.
 *
 * The factor is loaded only through FACTORS, by its path, as an operator
 * adds a factor of their own: nothing of Twofold's names it.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { ManualClock } from '../helpers/clock.ts';
import { PUSH_FACTORS, PushPhone, RELAY_TOKEN, RELAY_URL } from '../helpers/push-phone.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Services } from '../../src/services.ts';
import type { Account } from '../../src/db/schema.ts';

const REDIRECT = 'http://app.example.test/callback';
let userCount = 0;

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&quot;|&#34;/g, '"')
    .replace(/\s+/g, ' ');
const uidOf = (page: Hop) => /\/interaction\/([^/?"]+)/.exec(page.body)![1]!;

for (const kind of DIALECTS) {
  describe(`push approval (examples/factor-push) on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    /** Another provider on the same database: where the phone's calls land. */
    let other: TestServer;
    let services: Services;
    let rp: RelyingParty;
    const phone = new PushPhone();
    const clock = new ManualClock();

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      // Loaded the way an operator adds it: named in FACTORS, by its path, after the built-in ones.
      const env = {
        MFA: 'required',
        FACTORS: PUSH_FACTORS,
        FACTOR_SETTINGS: JSON.stringify({ push: { notifyUrl: RELAY_URL, notifyToken: RELAY_TOKEN, ttl: 60 } }),
      };
      const options = { httpTransport: phone.transport, clock };
      server = await startTestServer(database, env, options);
      other = await startTestServer(database, env, options);
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'Ledger', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await other?.close();
      await database?.close();
    });

    async function newUser(): Promise<{ account: Account; username: string }> {
      const username = `pusher${++userCount}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      return { account, username };
    }

    /** A phone paired directly (as an admin import would), for the tests about signing in. */
    async function paired(account: Account): Promise<{ key: string; device: string }> {
      const device = `dev${userCount}${kind}`;
      const key = Buffer.alloc(32, userCount).toString('base64url');
      await services.factors.store.insert(account.id, 'push', { label: 'Work phone', secret: key, lookupKey: `push:${device}`, data: { device } });
      return { key, device };
    }

    async function password(agent: UserAgent, username: string) {
      const auth = await rp.authorizationUrl();
      const login = await agent.follow(auth.url);
      const page = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      return { auth, page };
    }

    /** The phone's signed answer, posted to the other provider. */
    async function answer(key: string, device: string, request: string, decision: 'approve' | 'deny', at = clock.now()) {
      const { body, headers } = phone.answer(key, device, request, decision, at);
      return fetch(`${other.issuer}/factor/push/callback`, { method: 'POST', headers, body });
    }

    async function poll(agent: UserAgent, uid: string): Promise<{ status: string; next?: string }> {
      const hop = await agent.request(`/interaction/${uid}/factor/push/status`, { headers: { accept: 'application/json' } });
      expect(hop.status).toBe(200);
      expect(hop.headers.get('cache-control')).toBe('no-store');
      return JSON.parse(hop.body) as { status: string; next?: string };
    }

    async function counters(account: Account): Promise<Array<{ key: string; points: number }>> {
      const rows = await services.db.selectFrom('rate_limits').select(['key', 'points']).where('key', 'like', `mfa:%${account.id}%`).orderBy('key').execute();
      return rows.map((r) => ({ key: r.key, points: Number(r.points) }));
    }

    test('a phone is paired inside the sign-in; the next sign-in waits, the approval arrives, and amr says what the factor declared', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, username);
      const uid = uidOf(first.page);
      const setup = await agent.follow(`/interaction/${uid}?factor=push`);
      expect(setup.status).toBe(200);
      expect(textOf(setup.body)).toContain('In the app on your phone, choose to add an account');
      const device = /Device name: <code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!;
      const key = /Key: <code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!;
      // A reload shows the same pairing.
      expect((await agent.follow(`/interaction/${uid}?factor=push`)).body).toContain(key);
      const pairing = phone.pair({ key, device });
      const wrong = await agent.submit(formAction(setup.body), { code: pairing.slice(0, -1) + String((Number(pairing.at(-1)) + 1) % 10), label: 'Pocket' });
      expect(textOf(wrong.body)).toContain('That pairing code did not match');
      const codes = await agent.submit(formAction(wrong.body), { code: pairing, label: 'Pocket' });
      expect(codes.body).toContain('Save your backup codes');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      expect(done.location).toMatch(/callback\?code=/);
      const enrolled = (await rp.redeem(done.location!, first.auth)).claims()!;
      expect(enrolled.amr).toEqual(expect.arrayContaining(['pwd', 'swk', 'mfa']));
      // The key is stored sealed: the row holds neither it nor its bytes.
      const row = await services.db
        .selectFrom('credentials')
        .selectAll()
        .where('account_id', '=', account.id)
        .where('factor_id', '=', 'push')
        .executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(key);
      expect(JSON.stringify(row)).not.toContain(Buffer.from(key, 'base64url').toString('hex'));

      // Signing in again: the page waits for the phone.
      const browser = new UserAgent(server.issuer);
      const again = await password(browser, username);
      expect(again.page.status).toBe(200);
      expect(again.page.body).toContain('data-wait=');
      expect(textOf(again.page.body)).toContain('We sent a request to Pocket');
      const note = phone.delivered(device)!;
      expect(note).toMatchObject({ device, issuer: server.issuer });
      expect(textOf(again.page.body)).toContain(`the number ${note.number}`);
      const waiting = uidOf(again.page);
      for (let i = 0; i < 3; i++) expect(await poll(browser, waiting)).toEqual({ status: 'pending', expiresAt: note.expiresAt });

      const approved = await answer(key, device, note.request, 'approve');
      expect(approved.status).toBe(200);
      expect(await approved.json()).toEqual({ recorded: 'approve' });
      const decided = await poll(browser, waiting);
      expect(decided).toEqual({ status: 'done', next: `/interaction/${waiting}` });
      const back = await browser.follow(decided.next!);
      expect(back.location).toMatch(/callback\?code=/);
      const claims = (await rp.redeem(back.location!, again.auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'swk', 'mca', 'mfa']));
      expect(claims.acr).toBe('urn:twofold:acr:2');

      // The relay call was audited by host and path, never with its token or what it carried.
      const audited = (await listAudit(services.db, { accountId: account.id })).filter((e) => e.type === 'factor.http');
      expect(audited.length).toBeGreaterThan(0);
      expect(audited[0]!.details).toMatchObject({ factor: 'push', method: 'POST', host: 'relay.example.test', path: '/v1/notify', status: 202 });
      const raw = JSON.stringify(audited);
      for (const secret of [RELAY_TOKEN, note.request, key]) expect(raw).not.toContain(secret);
      expect((await listAudit(services.db, { accountId: account.id })).map((e) => e.type)).toEqual(expect.arrayContaining(['factor.callback', 'factor.used']));
    });

    test('100 polls and "Check again" cost no guesses; a reload asks the phone once', async () => {
      const { account, username } = await newUser();
      const { key, device } = await paired(account);
      const browser = new UserAgent(server.issuer);
      const { auth, page } = await password(browser, username);
      const uid = uidOf(page);
      const asked = phone.notifications.length;
      // Reloading the page shows the same request: the phone is not asked again.
      const reload = await browser.follow(`/interaction/${uid}`);
      expect(reload.body).toContain('data-wait=');
      expect(phone.notifications.length).toBe(asked);
      const before = await counters(account);
      for (let i = 0; i < 100; i++) expect((await poll(browser, uid)).status).toBe('pending');
      // Without script: "Check again" shows the waiting page again.
      const check = await browser.submit(`/interaction/${uid}/factor/push/status`, {});
      expect(check.status).toBe(200);
      expect(check.body).toContain('data-wait=');
      expect(await counters(account)).toEqual(before);
      expect(phone.notifications.length).toBe(asked);

      // Still waiting and still answerable: approved, then "Check again" finishes the sign-in.
      expect((await answer(key, device, phone.delivered(device)!.request, 'approve')).status).toBe(200);
      const done = await browser.submit(`/interaction/${uid}/factor/push/status`, {});
      expect(done.location).toMatch(/callback\?code=/);
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['swk', 'mca']));
      // The approval was counted and given back, as every proof is: no failure stands.
      expect((await counters(account)).filter((c) => c.points > 0)).toEqual([]);
    });

    test('a denied request fails cleanly and counts one failure; "Start again" asks anew', async () => {
      const { account, username } = await newUser();
      const { key, device } = await paired(account);
      const browser = new UserAgent(server.issuer);
      const { auth, page } = await password(browser, username);
      const uid = uidOf(page);
      const denied = await answer(key, device, phone.delivered(device)!.request, 'deny');
      expect(await denied.json()).toEqual({ recorded: 'deny' });
      const decided = await poll(browser, uid);
      expect(decided).toEqual({ status: 'failed', next: `/interaction/${uid}?factor=push` });
      const shown = await browser.follow(decided.next!);
      expect(shown.status).toBe(200);
      expect(textOf(shown.body)).toContain('The request was denied on your phone.');
      expect(shown.body).not.toContain('data-wait=');
      expect(shown.body).toContain(`action="/interaction/${uid}/factor/push/restart"`);
      expect((await counters(account)).find((c) => c.key.startsWith('mfa:acct:5m:'))?.points).toBe(1);
      expect((await listAudit(services.db, { accountId: account.id })).some((e) => e.type === 'factor.failed' && e.details.reason === 'wrong')).toBe(true);
      // Shown again, still denied: nothing is sent until the person asks.
      const asked = phone.notifications.length;
      expect(textOf((await browser.follow(`/interaction/${uid}`)).body)).toContain('The request was denied on your phone.');
      expect(phone.notifications.length).toBe(asked);

      const restarted = await browser.submit(`/interaction/${uid}/factor/push/restart`, {});
      expect(restarted.body).toContain('data-wait=');
      expect(phone.notifications.length).toBe(asked + 1);
      expect((await answer(key, device, phone.delivered(device)!.request, 'approve')).status).toBe(200);
      const done = await poll(browser, uid);
      expect(done.status).toBe('done');
      const back = await browser.follow(done.next!);
      expect((await rp.redeem(back.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['swk', 'mca']));
    });

    test('an unanswered request expires cleanly: "expired, start again", at no cost', async () => {
      const { account, username } = await newUser();
      const { key, device } = await paired(account);
      const browser = new UserAgent(server.issuer);
      const { page } = await password(browser, username);
      const uid = uidOf(page);
      const note = phone.delivered(device)!;
      const before = await counters(account);
      clock.advance(61);
      const decided = await poll(browser, uid);
      expect(decided).toEqual({ status: 'expired', next: `/interaction/${uid}?factor=push` });
      const shown = await browser.follow(decided.next!);
      expect(textOf(shown.body)).toContain('The request expired before it was answered. Start again to send a new one.');
      expect(shown.body).toContain(`action="/interaction/${uid}/factor/push/restart"`);
      expect(await counters(account)).toEqual(before);
      // The phone answering late changes nothing.
      expect((await answer(key, device, note.request, 'approve')).status).toBe(410);
      expect((await poll(browser, uid)).status).toBe('expired');
    });

    test('forged, replayed, stale and malformed callbacks are refused, and none decides the sign-in', async () => {
      const { account, username } = await newUser();
      const { key, device } = await paired(account);
      const browser = new UserAgent(server.issuer);
      const { page } = await password(browser, username);
      const uid = uidOf(page);
      const { request } = phone.delivered(device)!;
      const url = `${other.issuer}/factor/push/callback`;
      const post = (body: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers, body });

      const genuine = phone.answer(key, device, request, 'approve');
      const wrongKey = phone.answer(Buffer.alloc(32, 7).toString('base64url'), device, request, 'approve');
      expect((await post(wrongKey.body, wrongKey.headers)).status).toBe(401);
      const tampered = genuine.body.replace('"approve"', '"deny"');
      expect((await post(tampered, genuine.headers)).status).toBe(401);
      const stale = phone.answer(key, device, request, 'approve', new Date(clock.now().getTime() - 10 * 60_000));
      expect((await post(stale.body, stale.headers)).status).toBe(410);
      const unknown = phone.answer(key, device, 'no-such-request', 'approve');
      expect((await post(unknown.body, unknown.headers)).status).toBe(410);
      expect((await post('not json', genuine.headers)).status).toBe(400);
      expect((await post(genuine.body.padEnd(20_000, ' '), genuine.headers)).status).toBe(400);
      expect((await fetch(url)).status).toBe(405);
      expect((await fetch(`${other.issuer}/factor/totp/callback`, { method: 'POST', headers: genuine.headers, body: genuine.body })).status).toBe(404);
      // The refusals are audited, and the sign-in still waits.
      expect((await listAudit(services.db, { accountId: account.id })).filter((e) => e.type === 'factor.callback_refused').length).toBeGreaterThanOrEqual(2);
      expect((await poll(browser, uid)).status).toBe('pending');

      const accepted = await post(genuine.body, genuine.headers);
      expect(accepted.status).toBe(200);
      // The same call again, to either provider: its nonce was seen.
      const replayed = await post(genuine.body, genuine.headers);
      expect(replayed.status).toBe(409);
      expect(await replayed.json()).toEqual({ error: 'already_used' });
      expect((await fetch(`${server.issuer}/factor/push/callback`, { method: 'POST', headers: genuine.headers, body: genuine.body })).status).toBe(409);
      // A new call answering the same request is refused too: a request is answered once.
      const late = phone.answer(key, device, request, 'deny');
      expect((await post(late.body, late.headers)).status).toBe(409);
      expect((await poll(browser, uid)).status).toBe('done');
    });

    test('the status and restart routes refuse what is not a waiting step', async () => {
      const { account, username } = await newUser();
      await paired(account);
      const browser = new UserAgent(server.issuer);
      const { page } = await password(browser, username);
      const uid = uidOf(page);
      // Not a factor of this step, not a factor at all: the JSON says where to go, a form post goes back to the step.
      expect(await poll(browser, uid)).toMatchObject({ status: 'pending' });
      const totp = await browser.request(`/interaction/${uid}/factor/totp/status`, { headers: { accept: 'application/json' } });
      expect(JSON.parse(totp.body)).toEqual({ status: 'moved', next: `/interaction/${uid}` });
      expect((await browser.request(`/interaction/${uid}/factor/nope/restart`, { form: {} })).location).toBe(`${server.issuer}/interaction/${uid}?factor=nope`);
      // The push factor has no browser return.
      expect((await browser.request(`/interaction/${uid}/factor/push/return?state=x`)).location).toBe(`${server.issuer}/interaction/${uid}`);
      // Another browser cannot poll this sign-in.
      const stranger = new UserAgent(server.issuer);
      const gone = await stranger.request(`/interaction/${uid}/factor/push/status`, { headers: { accept: 'application/json' } });
      expect(gone.status).toBe(400);
    });
  });
}
