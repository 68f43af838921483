/**
 * The provider survives its database going away, under sign-in load.
 *
 * A PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl, a
 * temporary folder, its own port) and the provider as a real process
 * (`node src/main.ts`) on it. While eight browsers sign in (password, then a
 * TOTP code, a backup code, or a TOTP enrolment), the database:
 *   (a) has every backend terminated (pg_terminate_backend),
 *   (b) is restarted,
 *   (c) is stopped for FAULT_OUTAGE_SECONDS (10 unless CI shortens it).
 * Expected: the process never exits; a request caught by the fault gets 503
 * (a page for people, `server_error` JSON for the app), never a 500 or a
 * dropped connection; /readyz reports the outage and, within 2 s of the
 * database answering again, the recovery; sign-ins go on afterwards; and every
 * write the provider acknowledged (enrolments, spent TOTP steps and backup
 * codes, tokens) is there afterwards, spent codes still spent.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts';
import { startProviderProcess, type ProviderProcess } from '../helpers/provider-process.ts';
import { testConfig } from '../helpers/server.ts';
import { LOAD_REDIRECT, checkAcknowledged, seedLoadAccounts, startSignInLoad, waitFor, type LoadAccounts, type LoadReport } from '../helpers/sign-in-load.ts';
import { UserAgent } from '../helpers/user-agent.ts';
import { relyingParty } from '../helpers/relying-party.ts';
import { firstAfter, readinessOf, startProbe, waitForSample, type Readiness } from '../helpers/fault-watch.ts';

/** How long the database stays stopped in (c). The issue's figure is 10 s; CI may shorten it, never to nothing. */
const OUTAGE_MS = Math.max(1, Number(process.env.FAULT_OUTAGE_SECONDS ?? 10)) * 1000;
/** The spec: ready again at most this long after the database answers. */
const READY_WITHIN_MS = 2000;
const BROWSERS = 8;

/**
 * While the database is down, each kind of endpoint answers 503 with a Retry-After: the provider's protocol
 * endpoints `server_error` JSON, the pages for people a page. (What needs no database, discovery and the JWKS,
 * still answers.)
 */
async function expectUnavailableAnswers(
  issuer: string,
  accounts: LoadAccounts,
  accessToken: string,
  signIn: { agent: UserAgent; page: string },
): Promise<void> {
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(accounts.clientId)}:${encodeURIComponent(accounts.clientSecret)}`).toString('base64')}`;
  const form = { 'content-type': 'application/x-www-form-urlencoded', authorization: basic };
  const api = [
    await fetch(new URL('/token', issuer), {
      method: 'POST',
      headers: form,
      body: `grant_type=authorization_code&code=abc&redirect_uri=${encodeURIComponent(LOAD_REDIRECT)}&code_verifier=${'v'.repeat(43)}`,
    }),
    await fetch(new URL('/token/introspection', issuer), { method: 'POST', headers: form, body: `token=${accessToken}` }),
    await fetch(new URL('/me', issuer), { headers: { authorization: `Bearer ${accessToken}` } }),
  ];
  for (const res of api) {
    expect({ url: res.url, status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() }).toEqual({
      url: res.url,
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
      body: { error: 'server_error', error_description: expect.stringContaining('temporarily unavailable') },
    });
  }
  const auth = new URL('/auth', issuer);
  auth.search = new URLSearchParams({
    client_id: accounts.clientId,
    redirect_uri: LOAD_REDIRECT,
    response_type: 'code',
    scope: 'openid',
    code_challenge: 'x'.repeat(43),
    code_challenge_method: 'S256',
  }).toString();
  const pages = [
    await signIn.agent.request(auth.toString()),
    // A sign-in begun before the outage: its page, with its cookies.
    await signIn.agent.request(signIn.page),
  ];
  for (const hop of pages) {
    expect({
      url: hop.url,
      status: hop.status,
      type: hop.headers.get('content-type'),
      retryAfter: hop.headers.get('retry-after'),
      unavailable: hop.body.includes('Temporarily unavailable'),
    }).toEqual({
      url: hop.url,
      status: 503,
      type: expect.stringContaining('text/html'),
      retryAfter: expect.stringMatching(/^\d+$/),
      unavailable: true,
    });
  }
  expect((await fetch(new URL('/.well-known/openid-configuration', issuer))).status).toBe(200);
}

describe('database faults under sign-in load, on a PostgreSQL cluster of its own', () => {
  let cluster: PgCluster;
  let provider: ProviderProcess;
  let accounts: LoadAccounts;
  let databaseUrl: string;
  const exits: unknown[] = [];

  const open = async (): Promise<Opened> => openServices(testConfig(1, { DATABASE_URL: databaseUrl }), { migrate: true });

  beforeAll(async () => {
    cluster = await startPgCluster();
    await cluster.query('create database twofold');
    databaseUrl = cluster.urlFor('twofold');
    const seeding = await open();
    try {
      accounts = await seedLoadAccounts(seeding.services, { totp: 40, fresh: 150, prefix: 'db' });
    } finally {
      await seeding.close();
    }
    provider = await startProviderProcess(databaseUrl, { MFA: 'required', DATABASE_POOL_SIZE: '10' });
    void provider.exited.then((how) => exits.push(how));
  }, 120_000);

  afterAll(async () => {
    await provider?.close();
    await cluster?.destroy();
  });

  test('terminated backends, a restart and a stop: no exit, 503 meanwhile, ready within 2 s, no acknowledged write lost', async () => {
    const load = await startSignInLoad([{ issuer: provider.issuer }], accounts, { browsers: BROWSERS });
    const ready = startProbe(readinessOf(provider.issuer), 25);
    const database = startProbe(() => cluster.answers(), 25);
    const measured: Record<string, number> = {};
    let stopped: LoadReport;
    const isReady = (r: Readiness) => r.status === 200;
    /** When the database answered again after `since`: the start of the first good probe after a failed one (or `since`, if no probe failed). */
    const backAfter = async (since: number): Promise<number> => {
      const back = () => {
        const samples = database.samples.filter((s) => s.start >= since);
        const down = samples.findIndex((s) => !s.value);
        return down < 0 ? (samples.length ? since : undefined) : samples.slice(down).find((s) => s.value)?.start;
      };
      await waitFor('the database to answer again', () => back() !== undefined, 30_000);
      return back()!;
    };
    const readyAfter = async (at: number, name: string) => {
      const sample = await waitForSample(ready, at, isReady, 30_000);
      expect(sample).toBeDefined();
      measured[name] = sample!.end - at;
      return sample!.end;
    };
    const progressAfter = (at: number, name: string) =>
      waitFor(
        `sign-ins after ${name}`,
        () => {
          if (exits.length) throw new Error(`the provider exited (${JSON.stringify(exits)}) after ${name}:\n${provider.log().slice(-3000)}`);
          return load.completedSince(at) >= 3;
        },
        30_000,
      );

    try {
      await waitFor('sign-ins before any fault', () => load.completed() >= 5, 60_000);

      // (a) Every backend terminated, mid-request: the database itself never left.
      const terminatedAt = Date.now();
      expect(await cluster.terminateBackends('twofold')).toBeGreaterThan(0);
      const readyA = await readyAfter(terminatedAt, 'terminate');
      await progressAfter(readyA, '(a)');

      // (b) A restart (fast shutdown: every session ends with 57P01, as in a failover).
      const restartAt = Date.now();
      await cluster.restart('fast');
      const backB = await backAfter(restartAt);
      const readyB = await readyAfter(backB, 'restart');
      await progressAfter(readyB, '(b)');

      // (c) Stopped for OUTAGE_MS: /readyz says so, requests get 503, then it all comes back.
      const pending = new UserAgent(provider.issuer);
      const begun = await pending.follow(
        (await (await relyingParty(provider.issuer, accounts.clientId, accounts.clientSecret, LOAD_REDIRECT)).authorizationUrl()).url,
      );
      expect(begun.body).toContain('name="password"');
      const stoppedAt = Date.now();
      await cluster.stop('fast');
      const outage = await waitForSample(ready, stoppedAt, (r) => r.status === 503, 10_000);
      expect(outage?.value.body).toEqual({ status: 'database_unreachable', since: expect.any(String) });
      await expectUnavailableAnswers(provider.issuer, accounts, load.report().acknowledged.tokens[0]!.accessToken, { agent: pending, page: begun.url });
      await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + OUTAGE_MS - Date.now())));
      await cluster.start();
      const backC = await backAfter(stoppedAt);
      const readyC = await readyAfter(backC, 'stop');
      const recovered = firstAfter(ready, backC, isReady)!;
      // The recovery is reported: when the outage began and when it ended.
      expect(recovered.value.body).toEqual({
        status: 'ready',
        lastOutage: { began: expect.any(String), ended: expect.any(String), cause: expect.any(String) },
      });
      const lastOutage = recovered.value.body.lastOutage as { began: string; ended: string };
      expect(Date.parse(lastOutage.began)).toBeLessThanOrEqual(Date.parse(lastOutage.ended));
      expect(Date.parse(lastOutage.ended) - Date.parse(lastOutage.began)).toBeGreaterThanOrEqual(OUTAGE_MS - 1000);
      await progressAfter(readyC, '(c)');
      // Requests during the stop were answered 503 (not only /readyz): the load saw them.
    } finally {
      await ready.stop();
      await database.stop();
      // Stopped on failure too: a load left running would keep the test run alive.
      stopped = await load.stop();
    }
    const report = stopped;

    // The process never exited, and nothing but 503 went wrong.
    expect(exits).toEqual([]);
    expect(provider.child.exitCode).toBeNull();
    expect(report.failures).toEqual([]);
    expect(report.unavailable.length).toBeGreaterThan(0);
    for (const answer of report.unavailable) {
      if (answer.json)
        expect(JSON.parse(answer.body)).toMatchObject({ error: 'server_error', error_description: expect.stringContaining('temporarily unavailable') });
      else expect(answer.body).toContain('Temporarily unavailable');
    }
    // Ready again within 2 s of the database, after each fault.
    for (const [fault, ms] of Object.entries(measured)) expect({ fault, ms, within: ms <= READY_WITHIN_MS }).toEqual({ fault, ms, within: true });

    // Every acknowledged write is there, and every spent code still spent.
    const checking = await open();
    try {
      const check = await checkAcknowledged(checking.services, report, accounts);
      expect(check.lost).toEqual([]);
      expect(check.checked.tokens).toBeGreaterThan(0);
      expect(check.checked.enrolments).toBeGreaterThan(0);
      expect(check.checked.totpSteps).toBeGreaterThan(0);
      expect(check.checked.backupCodes).toBeGreaterThan(0);
      console.log(
        `database faults: ready again after terminate ${measured.terminate} ms, restart ${measured.restart} ms, ${OUTAGE_MS / 1000} s stop ${measured.stop} ms (after the database answered); ` +
          `process exits ${exits.length}; ${report.completed} sign-ins completed, ${report.unavailable.length} answers 503; ` +
          `checked ${check.checked.enrolments} enrolments, ${check.checked.totpSteps} TOTP steps, ${check.checked.backupCodes} backup codes, ${check.checked.tokens} token responses: ${check.lost.length} lost`,
      );
    } finally {
      await checking.close();
    }
  }, 180_000);
});
