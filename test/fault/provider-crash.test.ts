/**
 * A provider killed with SIGKILL under sign-in load (no shutdown, no flush,
 * transactions cut in the middle) loses nothing it acknowledged.
 *
 * - On PGlite: the process is started again on the same data folder (taking
 *   over the dead process's lock); it serves, and every enrolment, spent code
 *   and token acknowledged before the kill is there, nothing stored half.
 * - On PostgreSQL (a cluster of the test's own): a second provider process on
 *   the same database serves throughout, without one failed request; the
 *   killed one is started again and serves too; nothing acknowledged is lost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts';
import { startProviderProcess, type ProviderProcess } from '../helpers/provider-process.ts';
import { freePort, testConfig } from '../helpers/server.ts';
import { checkAcknowledged, checkStoredWrites, checkTokens, seedLoadAccounts, startSignInLoad, waitFor, type LoadReport } from '../helpers/sign-in-load.ts';

const BROWSERS = 6;

/** Failures of the load on one issuer: none before the kill, and after it only refused or dropped connections. */
function expectOnlyConnectionFailuresAfter(report: LoadReport, issuer: string, killedAt: number): void {
  const mine = report.failures.filter((f) => f.issuer === issuer);
  expect(mine.filter((f) => f.at < killedAt)).toEqual([]);
  expect(mine.filter((f) => !f.what.startsWith(`no answer from ${issuer}`))).toEqual([]);
}

describe('kill -9 of a provider under sign-in load, on PGlite', () => {
  let dataDir: string;
  let provider: ProviderProcess | undefined;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-crash-'));
  });

  afterAll(async () => {
    await provider?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('started again on the same data folder, it serves, and every acknowledged write is there', async () => {
    const open = (): Promise<Opened> => openServices(testConfig(1, { DATA_DIR: dataDir }), { migrate: true });
    const seeding = await open();
    const accounts = await seedLoadAccounts(seeding.services, { totp: 24, fresh: 60, prefix: 'pgl' }).finally(() => seeding.close());
    const port = await freePort();
    const env = { MFA: 'required' };
    provider = await startProviderProcess(undefined, env, { dataDir, port });

    const load = await startSignInLoad([{ issuer: provider.issuer }], accounts, { browsers: BROWSERS });
    let report: LoadReport;
    let killedAt: number;
    try {
      await waitFor('sign-ins before the kill', () => load.completed() >= 8, 60_000);
      killedAt = Date.now();
      provider.child.kill('SIGKILL');
      expect(await provider.exited).toEqual({ code: null, signal: 'SIGKILL' });
    } finally {
      report = await load.stop();
    }
    expectOnlyConnectionFailuresAfter(report, provider.issuer, killedAt!);

    // Same folder, same port (so the same issuer): the dead process's lock is taken over.
    provider = await startProviderProcess(undefined, env, { dataDir, port });
    const again = await startSignInLoad([{ issuer: provider.issuer }], accounts, { browsers: 2 });
    let after: LoadReport;
    try {
      await waitFor('sign-ins after the restart', () => again.completed() >= 3, 60_000);
    } finally {
      after = await again.stop();
    }
    expect(after.failures).toEqual([]);
    const tokens = await checkTokens(report, accounts);
    expect(tokens.lost).toEqual([]);

    // The stored writes, read with the provider stopped (PGlite is one process per folder).
    await provider.close();
    provider = undefined;
    const checking = await open();
    try {
      const stored = await checkStoredWrites(checking.services, report);
      expect(stored.lost).toEqual([]);
      expect(stored.checked.enrolments + stored.checked.totpSteps + stored.checked.backupCodes).toBeGreaterThan(0);
      console.log(
        `kill -9 on PGlite: ${report.completed} sign-ins before the kill, ${after.completed} after the restart; ` +
          `checked ${stored.checked.enrolments} enrolments, ${stored.checked.totpSteps} TOTP steps, ${stored.checked.backupCodes} backup codes, ${tokens.checked.tokens} token responses: ${stored.lost.length + tokens.lost.length} lost`,
      );
    } finally {
      await checking.close();
    }
  }, 180_000);
});

describe('kill -9 of one of two provider processes under sign-in load, on PostgreSQL', () => {
  let cluster: PgCluster;
  let first: ProviderProcess | undefined;
  let second: ProviderProcess | undefined;

  beforeAll(async () => {
    cluster = await startPgCluster();
    await cluster.query('create database twofold');
  }, 60_000);

  afterAll(async () => {
    await first?.close();
    await second?.close();
    await cluster?.destroy();
  });

  test('the other process serves throughout; the killed one serves again; every acknowledged write is there', async () => {
    const url = cluster.urlFor('twofold');
    const open = (): Promise<Opened> => openServices(testConfig(1, { DATABASE_URL: url }), { migrate: true });
    const seeding = await open();
    const accounts = await seedLoadAccounts(seeding.services, { totp: 30, fresh: 80, prefix: 'pg' }).finally(() => seeding.close());
    const env = { MFA: 'required' };
    const port = await freePort();
    first = await startProviderProcess(url, env, { port });
    second = await startProviderProcess(url, env);
    const secondExits: unknown[] = [];
    void second.exited.then((how) => secondExits.push(how));

    const load = await startSignInLoad([{ issuer: first.issuer }, { issuer: second.issuer }], accounts, { browsers: BROWSERS });
    let report: LoadReport;
    let killedAt: number;
    let secondWhileDown = 0;
    let firstAfterRestart = 0;
    try {
      await waitFor('sign-ins on both', () => load.completedSince(0, first!.issuer) >= 3 && load.completedSince(0, second!.issuer) >= 3, 60_000);
      killedAt = Date.now();
      first.child.kill('SIGKILL');
      expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
      // The other process goes on while the first one is down.
      await waitFor('sign-ins on the second process', () => load.completedSince(killedAt, second!.issuer) >= 3, 60_000);
      first = await startProviderProcess(url, env, { port });
      const restartedAt = Date.now();
      secondWhileDown = load.completedSince(killedAt, second.issuer) - load.completedSince(restartedAt, second.issuer);
      await waitFor('sign-ins on the restarted process', () => load.completedSince(restartedAt, first!.issuer) >= 3, 60_000);
      firstAfterRestart = load.completedSince(restartedAt, first.issuer);
    } finally {
      report = await load.stop();
    }

    // The second process never failed a request, and never exited.
    expect(report.failures.filter((f) => f.issuer === second!.issuer)).toEqual([]);
    expect(report.unavailable.filter((u) => u.issuer === second!.issuer)).toEqual([]);
    expect(secondExits).toEqual([]);
    expectOnlyConnectionFailuresAfter(report, first.issuer, killedAt!);

    const checking = await open();
    try {
      const check = await checkAcknowledged(checking.services, report, accounts);
      expect(check.lost).toEqual([]);
      expect(check.checked.tokens).toBeGreaterThan(0);
      console.log(
        `kill -9 on PostgreSQL: ${report.completed} sign-ins in all, ${secondWhileDown} by the other process while the first was down, ${firstAfterRestart} by the first after its restart; ` +
          `checked ${check.checked.enrolments} enrolments, ${check.checked.totpSteps} TOTP steps, ${check.checked.backupCodes} backup codes, ${check.checked.tokens} token responses: ${check.lost.length} lost`,
      );
    } finally {
      await checking.close();
    }
  }, 180_000);
});
