/**
 * Proves the database-backed rate limiter on every database in the matrix:
 * under 200 simultaneous attempts (from separate pools on PostgreSQL, as from
 * separate processes) exactly `points` are allowed and every attempt is
 * counted once; a window that has passed starts counting afresh; reset()
 * clears one subject only; consumeAll() counts several counters in one
 * statement exactly as consume() would, without deadlocks between requests
 * that share counters. Rolling windows (on an injected clock) never let more
 * than the limit through in any span of the window, where fixed windows let
 * twice through across their edge; backoffs make each guess after the free
 * ones wait, doubling; giveBack() undoes exactly what was counted. Then the
 * second-factor throttle built on them: refused guesses given back, waits
 * after the burst, every factor and every known browser with a brake of its
 * own, a daily ceiling per factor that no policy can raise above 100 a day
 * and of which unknown browsers get only a share; guesses before any factor
 * is proved never on the account's counters. The password throttle: per
 * account, known browsers apart, the cap over all; clearing an account's
 * counters. Last, the policy's throttle section: defaults equal to the
 * built-in numbers, old documents carried over, bad values refused with their
 * path.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { clearCounters, consume, consumeAll, giveBack, reset, type LimitRule } from '../../src/security/rate-limit.ts';
import {
  FIRST_FACTOR_PER_CREDENTIAL,
  MFA_KNOWN_BROWSER_BURST,
  MFA_PER_ACCOUNT_BURST,
  MFA_PER_ACCOUNT_DAY,
  MFA_PER_ADDRESS,
  MFA_UNKNOWN_BROWSERS_DAY,
  mfaCounters,
  refundAttempt,
  takeAttempt,
  takeFirstFactorAttempt,
} from '../../src/mfa/throttle.ts';
import { SEND_PER_ACCOUNT, SEND_PER_ADDRESS, SEND_PER_DESTINATION } from '../../src/mfa/out-of-band.ts';
import {
  clearPasswordCounters,
  PASSWORD_KNOWN_BROWSER,
  PASSWORD_PER_ACCOUNT_DAY,
  PASSWORD_PER_ADDRESS,
  PASSWORD_UNKNOWN_BROWSERS,
  passwordSucceeded,
  takePasswordAttempt,
} from '../../src/security/password-throttle.ts';
import { globalPolicySchema, parsePolicy } from '../../src/policy/documents.ts';

const rule = (points: number, windowSeconds: number): LimitRule => ({ name: `test:${crypto.randomBytes(4).toString('hex')}`, points, windowSeconds });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of DIALECTS) {
  describe(`rate limits on ${kind}`, () => {
    let database: TestDatabase;
    const extra: DatabaseHandle[] = [];

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      if (kind === 'postgres') {
        for (let i = 0; i < 3; i++) extra.push(await openDatabase({ url: database.url!, poolSize: 10 }));
      }
    });

    afterAll(async () => {
      await Promise.all(extra.map((h) => h.close()));
      await database?.close();
    });

    /** The database handles that attempts are spread over. */
    const handles = () => [database, ...extra];

    test('200 simultaneous attempts with 10 points: exactly 10 allowed, each counted once', async () => {
      const r = rule(10, 60);
      const all = handles();
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => consume(all[i % all.length]!.db, r, 'subject')));
      expect(results.filter((x) => x.allowed)).toHaveLength(10);
      expect(results.map((x) => x.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      for (const x of results) expect(x.allowed).toBe(x.count <= 10);
      for (const x of results) {
        expect(x.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        expect(x.retryAfterSeconds).toBeLessThanOrEqual(61);
      }
      const row = await database.db.selectFrom('rate_limits').selectAll().where('key', '=', `${r.name}:subject`).executeTakeFirstOrThrow();
      expect(row.points).toBe(200);
    });

    test('subjects and rules are counted separately', async () => {
      const r = rule(2, 60);
      const other = rule(2, 60);
      expect((await consume(database.db, r, 'a')).allowed).toBe(true);
      expect((await consume(database.db, r, 'a')).allowed).toBe(true);
      expect((await consume(database.db, r, 'a')).allowed).toBe(false);
      expect(await consume(database.db, r, 'b')).toMatchObject({ allowed: true, count: 1 });
      expect(await consume(database.db, other, 'a')).toMatchObject({ allowed: true, count: 1 });
    });

    test('a weight counts as that many attempts', async () => {
      const r = rule(5, 60);
      expect(await consume(database.db, r, 'w', 3)).toMatchObject({ allowed: true, count: 3 });
      expect(await consume(database.db, r, 'w', 3)).toMatchObject({ allowed: false, count: 6 });
    });

    test('once the window has passed, counting starts afresh', async () => {
      const r = rule(3, 1);
      for (let i = 1; i <= 3; i++) expect(await consume(database.db, r, 'expiring')).toMatchObject({ allowed: true, count: i });
      const refused = await consume(database.db, r, 'expiring');
      expect(refused).toMatchObject({ allowed: false, count: 4, retryAfterSeconds: 1 });

      await sleep(1200);
      expect(await consume(database.db, r, 'expiring')).toMatchObject({ allowed: true, count: 1 });
      // The new window is a full window again, not the old one's remainder.
      const row = await database.db.selectFrom('rate_limits').selectAll().where('key', '=', `${r.name}:expiring`).executeTakeFirstOrThrow();
      expect(new Date(row.expires_at).getTime()).toBeGreaterThan(Date.now() + 500);
    });

    test('attempts inside the window do not extend it', async () => {
      const r = rule(100, 1);
      await consume(database.db, r, 'fixed');
      await sleep(600);
      await consume(database.db, r, 'fixed');
      await sleep(600);
      expect(await consume(database.db, r, 'fixed')).toMatchObject({ allowed: true, count: 1 });
    });

    test('consumeAll() counts each counter as consume() would, results in the order given', async () => {
      const short = rule(2, 60);
      const long = rule(5, 3600);
      await consume(database.db, long, 'acct');
      const [a, b, c] = await consumeAll(database.db, [
        { rule: short, subject: 'acct' },
        { rule: long, subject: 'acct' },
        { rule: short, subject: 'ip' },
      ]);
      expect(a).toMatchObject({ allowed: true, count: 1 });
      expect(b).toMatchObject({ allowed: true, count: 2 });
      expect(c).toMatchObject({ allowed: true, count: 1 });
      expect(b!.retryAfterSeconds).toBeGreaterThan(3000);
      await consumeAll(database.db, [
        { rule: short, subject: 'acct' },
        { rule: short, subject: 'ip' },
      ]);
      const [again] = await consumeAll(database.db, [
        { rule: short, subject: 'acct' },
        { rule: long, subject: 'acct' },
      ]);
      expect(again).toMatchObject({ allowed: false, count: 3 });
      expect(await consume(database.db, long, 'acct')).toMatchObject({ count: 4 });
      await expect(
        consumeAll(database.db, [
          { rule: short, subject: 'x' },
          { rule: short, subject: 'x' },
        ]),
      ).rejects.toThrow(/twice/);
    });

    test('100 simultaneous consumeAll() over shared counters, listed in either order: each counted once, no deadlock', async () => {
      const first = rule(1000, 60);
      const second = rule(1000, 60);
      const all = handles();
      const pairs = Array.from({ length: 100 }, (_, i) => {
        const both = [
          { rule: first, subject: 's' },
          { rule: second, subject: 's' },
        ];
        return consumeAll(all[i % all.length]!.db, i % 2 ? both : [...both].reverse());
      });
      const results = await Promise.all(pairs);
      expect(
        results
          .map((r) => r.map((x) => x.count).sort((a, b) => a - b))
          .flat()
          .sort((a, b) => a - b),
      ).toEqual(Array.from({ length: 200 }, (_, i) => Math.floor(i / 2) + 1));
      expect(await consume(database.db, first, 's')).toMatchObject({ count: 101 });
      expect(await consume(database.db, second, 's')).toMatchObject({ count: 101 });
    });

    /** The most allowed attempts inside any span of `windowSeconds` (times sorted). */
    const busiestSpan = (times: number[], windowSeconds: number) => {
      let most = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[i]! - times[j]! >= windowSeconds * 1000) j++;
        most = Math.max(most, i - j + 1);
      }
      return most;
    };
    const DAY = 86400;
    const T0 = Date.parse('2031-03-01T00:00:00Z');
    const at = (seconds: number) => new Date(T0 + seconds * 1000);

    test('a fixed window lets 99 guesses at the end of one window and 100 at the start of the next through; a rolling one holds 100 in any 24 h', async () => {
      const fixed = rule(100, DAY);
      const rolling: LimitRule = { ...rule(100, DAY), kind: 'rolling' };
      const pattern = [0, ...Array.from({ length: 98 }, () => DAY - 60), ...Array.from({ length: 100 }, () => DAY + 1)];
      const allowed = { fixed: [] as number[], rolling: [] as number[] };
      for (const s of pattern) {
        if ((await consume(database.db, fixed, 'edge', 1, at(s))).allowed) allowed.fixed.push(at(s).getTime());
        if ((await consume(database.db, rolling, 'edge', 1, at(s))).allowed) allowed.rolling.push(at(s).getTime());
      }
      // The gap the audit found: 198 guesses within 61 seconds.
      expect(busiestSpan(allowed.fixed, DAY)).toBe(198);
      // The first guess (at 0) counts until the last of the run: one more is allowed after the edge, and no more.
      expect(allowed.rolling).toHaveLength(100);
      expect(busiestSpan(allowed.rolling, DAY)).toBe(99);
      // Locked until a whole day has passed since the last allowed guess (at DAY + 1), then a fresh count.
      const locked = await consume(database.db, rolling, 'edge', 1, at(2 * DAY));
      expect(locked).toMatchObject({ allowed: false });
      expect(locked.retryAfterSeconds).toBe(1);
      expect(await consume(database.db, rolling, 'edge', 1, at(2 * DAY + 1))).toMatchObject({ allowed: true, count: 1 });
    });

    test('rolling: 1,000 guesses at random times over days never put more than the limit in any 24 h span', async () => {
      const rolling: LimitRule = { ...rule(100, DAY), kind: 'rolling' };
      let s = 0;
      const allowed: number[] = [];
      let seed = 42;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let i = 0; i < 1000; i++) {
        // Bursts and lulls: mostly seconds apart, sometimes hours.
        s += random() < 0.02 ? Math.floor(random() * 40 * 3600) : Math.floor(random() * 120);
        if ((await consume(database.db, rolling, 'random', 1, at(s))).allowed) allowed.push(at(s).getTime());
      }
      expect(s).toBeGreaterThan(2 * DAY);
      expect(busiestSpan(allowed, DAY)).toBeLessThanOrEqual(100);
      expect(allowed.length).toBeGreaterThan(100);
    });

    test('rolling: 200 simultaneous attempts with 10 points: exactly 10 allowed', async () => {
      const r: LimitRule = { ...rule(10, DAY), kind: 'rolling' };
      const all = handles();
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => consume(all[i % all.length]!.db, r, 'subject')));
      expect(results.filter((x) => x.allowed)).toHaveLength(10);
      for (const x of results.filter((y) => !y.allowed)) expect(x.retryAfterSeconds).toBeGreaterThan(DAY - 60);
    });

    const backoff = (points: number, windowSeconds: number, delaySeconds: number, maxDelaySeconds: number): LimitRule => ({
      ...rule(points, windowSeconds),
      kind: 'backoff',
      delaySeconds,
      maxDelaySeconds,
    });

    test('backoff: after the free failures each guess waits, the wait doubles up to its cap, and a quiet window clears the streak', async () => {
      const r = backoff(3, 60, 10, 40);
      const go = (s: number) => consume(database.db, r, 'b', 1, at(s));
      for (let i = 1; i <= 3; i++) expect(await go(0)).toMatchObject({ allowed: true, count: i });
      expect(await go(0)).toMatchObject({ allowed: false, count: 3, counted: false, retryAfterSeconds: 10 });
      expect(await go(9)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await go(10)).toMatchObject({ allowed: true, count: 4 });
      expect(await go(29)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await go(30)).toMatchObject({ allowed: true, count: 5 });
      expect(await go(31)).toMatchObject({ allowed: false, retryAfterSeconds: 39 });
      expect(await go(70)).toMatchObject({ allowed: true, count: 6 });
      // Capped at 40 s.
      expect(await go(109)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await go(110)).toMatchObject({ allowed: true, count: 7 });
      // The streak clears 60 quiet seconds after the wait ends (110 + 40 + 60), not before.
      expect(await go(209)).toMatchObject({ allowed: true, count: 8 });
      expect(await go(249 + 60)).toMatchObject({ allowed: true, count: 1 });
    });

    test('backoff: 200 simultaneous attempts with 5 free: exactly 5 allowed and counted, the rest told to wait', async () => {
      const r = backoff(5, 300, 30, 900);
      const all = handles();
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => consume(all[i % all.length]!.db, r, 'subject')));
      expect(results.filter((x) => x.allowed)).toHaveLength(5);
      for (const x of results.filter((y) => !y.allowed)) expect(x).toMatchObject({ counted: false, count: 5 });
      const row = await database.db.selectFrom('rate_limits').selectAll().where('key', '=', `${r.name}:subject`).executeTakeFirstOrThrow();
      expect(row.points).toBe(5);
    });

    test('backoff: 100 simultaneous attempts under the free count, from several pools: every one allowed', async () => {
      const r = backoff(150, 300, 30, 900);
      const all = handles();
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => consume(all[i % all.length]!.db, r, 'free')));
      expect(results.filter((x) => !x.allowed)).toEqual([]);
      expect(results.map((x) => x.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    });

    test('giveBack(): a fixed window gets back only what it counted, a backoff shrinks its wait, a refused backoff has nothing to give', async () => {
      const fixed = rule(3, 60);
      const first = await consume(database.db, fixed, 'g', 1, at(0));
      await consume(database.db, fixed, 'g', 1, at(0));
      await giveBack(database.db, [{ rule: fixed, subject: 'g', result: first }]);
      expect(await consume(database.db, fixed, 'g', 1, at(1))).toMatchObject({ count: 2 });
      // A later window is not the one that counted: nothing is taken from it.
      expect(await consume(database.db, fixed, 'g', 1, at(61))).toMatchObject({ count: 1 });
      await giveBack(database.db, [{ rule: fixed, subject: 'g', result: first }]);
      expect(await consume(database.db, fixed, 'g', 1, at(62))).toMatchObject({ count: 2 });

      const b = backoff(1, 60, 10, 40);
      await consume(database.db, b, 'g', 1, at(0));
      const second = await consume(database.db, b, 'g', 1, at(10));
      expect(second).toMatchObject({ allowed: true, count: 2 });
      const waiting = await consume(database.db, b, 'g', 1, at(11));
      expect(waiting).toMatchObject({ allowed: false, retryAfterSeconds: 19 });
      await giveBack(database.db, [{ rule: b, subject: 'g', result: waiting }]);
      // Giving back the second failure leaves a streak of one: a 10 s wait from it.
      await giveBack(database.db, [{ rule: b, subject: 'g', result: second }]);
      expect(await consume(database.db, b, 'g', 1, at(19))).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await consume(database.db, b, 'g', 1, at(20))).toMatchObject({ allowed: true, count: 2 });

      const rolling: LimitRule = { ...rule(2, DAY), kind: 'rolling' };
      const one = await consume(database.db, rolling, 'g', 1, at(0));
      await consume(database.db, rolling, 'g', 1, at(0));
      await giveBack(database.db, [{ rule: rolling, subject: 'g', result: one }]);
      expect(await consume(database.db, rolling, 'g', 1, at(5))).toMatchObject({ allowed: true, count: 2 });
      const over = await consume(database.db, rolling, 'g', 1, at(5));
      expect(over).toMatchObject({ allowed: false, count: 3 });
      // Once the count has cleared, a late give-back (of the first run) takes nothing from the new run.
      expect(await consume(database.db, rolling, 'g', 1, at(DAY + 5))).toMatchObject({ allowed: true, count: 1 });
      await giveBack(database.db, [{ rule: rolling, subject: 'g', result: over }]);
      await giveBack(database.db, [{ rule: rolling, subject: 'g', result: one }]);
      expect(await consume(database.db, rolling, 'g', 1, at(DAY + 6))).toMatchObject({ allowed: true, count: 2 });
      const b2 = backoff(5, 60, 10, 40);
      const early = await consume(database.db, b2, 'g2', 1, at(0));
      expect(await consume(database.db, b2, 'g2', 1, at(61))).toMatchObject({ count: 1 });
      await giveBack(database.db, [{ rule: b2, subject: 'g2', result: early }]);
      expect(await consume(database.db, b2, 'g2', 1, at(62))).toMatchObject({ count: 2 });
    });

    test('reset() clears one subject and nothing else', async () => {
      const r = rule(1, 60);
      await consume(database.db, r, 'x');
      await consume(database.db, r, 'y');
      expect((await consume(database.db, r, 'x')).allowed).toBe(false);
      expect((await consume(database.db, r, 'y')).allowed).toBe(false);
      await reset(database.db, r, 'x');
      expect(await consume(database.db, r, 'x')).toMatchObject({ allowed: true, count: 1 });
      expect(await consume(database.db, r, 'y')).toMatchObject({ allowed: false, count: 3 });
      await expect(reset(database.db, r, 'never-seen')).resolves.toBeUndefined();
    });
  });
}

for (const kind of DIALECTS) {
  describe(`second-factor throttle on ${kind}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
    });
    afterAll(async () => {
      await database?.close();
    });
    const account = () => `acct-${crypto.randomBytes(6).toString('hex')}`;
    const address = () => `198.51.100.${crypto.randomInt(1, 255)}-${crypto.randomBytes(3).toString('hex')}`;
    const T0 = Date.parse('2031-06-01T00:00:00Z');
    const at = (seconds: number) => new Date(T0 + seconds * 1000);
    const points = async (key: string) => (await database.db.selectFrom('rate_limits').select('points').where('key', '=', key).executeTakeFirst())?.points;

    const guess = (accountId: string, factorId = 'totp', ip = address(), knownDevice?: string) => ({ accountId, factorId, ip, knownDevice });

    test('200 parallel guesses: 5 checked; the refused ones are given back, so the daily count is 5, not 200', async () => {
      const id = account();
      const ip = address();
      const verdicts = await Promise.all(Array.from({ length: 200 }, () => takeAttempt(database.db, guess(id, 'totp', ip))));
      expect(verdicts.filter((v) => v.allowed)).toHaveLength(5);
      for (const v of verdicts.filter((x) => !x.allowed)) expect(v.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(await points(`${MFA_PER_ACCOUNT_DAY.name}:${id}:totp`)).toBe(5);
      expect(await points(`${MFA_PER_ADDRESS.name}:${ip}`)).toBe(5);
      // A success gives its own attempt back.
      await refundAttempt(
        database.db,
        verdicts.find((v) => v.allowed)!,
      );
      expect(await points(`${MFA_PER_ACCOUNT_DAY.name}:${id}:totp`)).toBe(4);
    });

    test('parallel guesses and give-backs over shared counters, from several pools: no deadlock', async () => {
      const pools = kind === 'postgres' ? await Promise.all([1, 2, 3].map(() => openDatabase({ url: database.url!, poolSize: 10 }))) : [];
      try {
        const dbs = [database.db, ...pools.map((p) => p.db)];
        const ip = address();
        const ids = [account(), account(), account()];
        // Every guess shares the address counter; each account's guesses at one factor share its counters; some come from a known browser.
        let refunds = 0;
        const verdicts = await Promise.all(
          Array.from({ length: 150 }, async (_, i) => {
            const v = await takeAttempt(
              dbs[i % dbs.length]!,
              guess(ids[i % 3]!, i % 2 === 0 ? 'backup-codes' : 'totp', ip, i % 5 === 0 ? 'device' : undefined),
            );
            if (v.allowed && i % 4 === 0) {
              refunds++;
              await refundAttempt(dbs[(i + 1) % dbs.length]!, v);
            }
            return v;
          }),
        );
        // Each account: 5 free guesses per factor, unknown browsers and the known one apart; each give-back frees one more.
        expect(verdicts.filter((v) => v.allowed).length).toBeLessThanOrEqual(60 + refunds);
        expect(verdicts.filter((v) => v.allowed).length).toBeGreaterThanOrEqual(5);
      } finally {
        await Promise.all(pools.map((p) => p.close()));
      }
    });

    test('after 5 failures the next guess waits 30 s, then 60 s, 120 s …', async () => {
      const id = account();
      const ip = address();
      const take = (s: number) => takeAttempt(database.db, guess(id, 'totp', ip), undefined, { at: at(s) });
      for (let i = 0; i < 5; i++) expect((await take(0)).allowed).toBe(true);
      expect(await take(0)).toMatchObject({ allowed: false, retryAfterSeconds: 30 });
      expect((await take(30)).allowed).toBe(true);
      expect(await take(31)).toMatchObject({ allowed: false, retryAfterSeconds: 59 });
      expect((await take(90)).allowed).toBe(true);
      expect(await take(90)).toMatchObject({ allowed: false, retryAfterSeconds: 120 });
    });

    test('each factor has its own brake: wrong authenticator codes leave backup codes and passkeys usable, and the reverse', async () => {
      const factors = ['totp', 'backup-codes', 'passkey'];
      for (const locked of factors) {
        const id = account();
        for (let i = 0; i < 5; i++) expect((await takeAttempt(database.db, guess(id, locked))).allowed).toBe(true);
        expect((await takeAttempt(database.db, guess(id, locked))).allowed).toBe(false);
        for (const other of factors.filter((f) => f !== locked)) expect((await takeAttempt(database.db, guess(id, other))).allowed).toBe(true);
      }
    });

    test("a known browser has its own brake: unknown browsers' failures do not slow it, nor its failures them", async () => {
      const id = account();
      for (let i = 0; i < 5; i++) expect((await takeAttempt(database.db, guess(id))).allowed).toBe(true);
      expect((await takeAttempt(database.db, guess(id))).allowed).toBe(false);
      for (let i = 0; i < 5; i++) expect((await takeAttempt(database.db, guess(id, 'totp', address(), 'owner'))).allowed).toBe(true);
      expect((await takeAttempt(database.db, guess(id, 'totp', address(), 'owner'))).allowed).toBe(false);
      // Another known browser of the account is a counter of its own again.
      expect((await takeAttempt(database.db, guess(id, 'totp', address(), 'laptop'))).allowed).toBe(true);
    });

    test('the daily ceiling counts per factor; unknown browsers use only their share, and a known browser keeps the rest', async () => {
      const id = account();
      const limits = {
        perAccountBurst: { points: 500, windowSeconds: 300 },
        knownBrowserBurst: { points: 500, windowSeconds: 300 },
        perAccountDay: { points: 8, windowSeconds: 86400 },
        perAddress: { points: 1000, windowSeconds: 900 },
      };
      const take = (s: number, factorId = 'totp', device?: string) => takeAttempt(database.db, guess(id, factorId, address(), device), limits, { at: at(s) });
      // Unknown browsers: half of 8.
      for (let i = 0; i < 4; i++) expect((await take(i)).allowed).toBe(true);
      const shareFull = await take(10);
      expect(shareFull).toMatchObject({ allowed: false });
      expect(shareFull.retryAfterSeconds).toBe(86400 - 7);
      // Backup codes are another factor: a ceiling of their own.
      for (let i = 0; i < 4; i++) expect((await take(20 + i, 'backup-codes')).allowed).toBe(true);
      // The owner's known browser still has TOTP's other 4; then the whole ceiling is reached, for it too.
      for (let i = 0; i < 4; i++) expect((await take(30 + i, 'totp', 'owner')).allowed).toBe(true);
      expect(await take(40, 'totp', 'owner')).toMatchObject({ allowed: false });
      expect(await take(40, 'totp', 'laptop')).toMatchObject({ allowed: false });
      // Until a whole day after the last counted failure (at 33 s).
      expect((await take(86400 + 33, 'totp', 'owner')).allowed).toBe(true);
    });

    test('a daily ceiling is never above 100 in 24 hours, whatever numbers it is given, over known and unknown browsers together', async () => {
      const id = account();
      const loose = {
        perAccountBurst: { points: 1000, windowSeconds: 1 },
        knownBrowserBurst: { points: 1000, windowSeconds: 1 },
        perAccountDay: { points: 1000, windowSeconds: 1 },
        unknownBrowsersDay: { points: 1000, windowSeconds: 1 },
        perAddress: { points: 1000, windowSeconds: 1 },
      };
      let allowed = 0;
      for (let i = 0; i < 150; i++)
        if ((await takeAttempt(database.db, guess(id, 'totp', address(), i % 2 ? 'owner' : undefined), loose, { at: at(i * 60) })).allowed) allowed++;
      expect(allowed).toBe(100);
      const counters = mfaCounters(guess(id), loose);
      expect(counters.map((c) => c.rule)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: MFA_PER_ACCOUNT_DAY.name, points: 100, windowSeconds: 86400 }),
          expect.objectContaining({ name: MFA_UNKNOWN_BROWSERS_DAY.name, points: 99, windowSeconds: 86400 }),
        ]),
      );
    });

    test('before any factor is proved: counted per credential, per known browser and per address, never on the account', async () => {
      const id = account();
      const credentialId = `cred-${crypto.randomBytes(4).toString('hex')}`;
      const ip = address();
      const verdicts = await Promise.all(Array.from({ length: 100 }, () => takeFirstFactorAttempt(database.db, { credentialId, accountId: id, ip })));
      expect(verdicts.filter((v) => v.allowed)).toHaveLength(5);
      expect(await points(`${FIRST_FACTOR_PER_CREDENTIAL.name}:${credentialId}`)).toBe(5);
      // Nothing on the account's counters: its second factors are as fresh as ever…
      const rows = await database.db.selectFrom('rate_limits').select('key').where('key', 'like', `%${id}%`).execute();
      expect(rows).toEqual([]);
      expect((await takeAttempt(database.db, guess(id, 'passkey'))).allowed).toBe(true);
      // …and the owner's known browser names the credential on a counter of its own.
      expect((await takeFirstFactorAttempt(database.db, { credentialId, accountId: id, ip, knownDevice: 'owner' })).allowed).toBe(true);
    });
  });
}

for (const kind of DIALECTS) {
  describe(`password throttle on ${kind}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
    });
    afterAll(async () => {
      await database?.close();
    });
    const subject = () => `acct-${crypto.randomBytes(6).toString('hex')}`;
    const address = () => `203.0.113.${crypto.randomInt(1, 255)}-${crypto.randomBytes(3).toString('hex')}`;

    test('200 parallel guesses from 200 addresses: 20 checked, the rest refused and given back everywhere', async () => {
      const id = subject();
      const verdicts = await Promise.all(Array.from({ length: 200 }, () => takePasswordAttempt(database.db, { subject: id, ip: address() })));
      expect(verdicts.filter((v) => v.allowed)).toHaveLength(20);
      const day = await database.db
        .selectFrom('rate_limits')
        .select('points')
        .where('key', '=', `${PASSWORD_PER_ACCOUNT_DAY.name}:${id}`)
        .executeTakeFirstOrThrow();
      expect(day.points).toBe(20);
      // A known browser of the account is not slowed by them.
      expect((await takePasswordAttempt(database.db, { subject: id, ip: address(), knownDevice: 'owner' })).allowed).toBe(true);
    });

    test('the cap over all browsers: unknown ones stop at their share (50), known ones share the rest, 100 in all', async () => {
      const id = subject();
      const loose = { passwordUnknownBrowsers: { points: 1000, windowSeconds: 900 }, passwordKnownBrowser: { points: 1000, windowSeconds: 900 } };
      const unknown = await Promise.all(Array.from({ length: 200 }, () => takePasswordAttempt(database.db, { subject: id, ip: address() }, loose)));
      expect(unknown.filter((v) => v.allowed)).toHaveLength(50);
      const refused = unknown.find((v) => !v.allowed)!;
      expect(refused.retryAfterSeconds).toBeGreaterThan(86400 - 60);
      const known = await Promise.all(
        Array.from({ length: 200 }, (_, i) => takePasswordAttempt(database.db, { subject: id, ip: address(), knownDevice: i % 2 ? 'owner' : 'laptop' }, loose)),
      );
      expect(known.filter((v) => v.allowed)).toHaveLength(50);
    });

    test('a success clears its own streak and gives its guess back; the daily cap keeps the failures', async () => {
      const id = subject();
      const g = { subject: id, ip: address() };
      for (let i = 0; i < 20; i++) expect((await takePasswordAttempt(database.db, g)).allowed).toBe(true);
      expect((await takePasswordAttempt(database.db, g)).allowed).toBe(false);
      const known = { ...g, knownDevice: 'owner' };
      const right = await takePasswordAttempt(database.db, known);
      await passwordSucceeded(database.db, known, right);
      // The unknown browsers' streak is theirs: still waiting.
      expect((await takePasswordAttempt(database.db, g)).allowed).toBe(false);
      const day = await database.db
        .selectFrom('rate_limits')
        .select('points')
        .where('key', '=', `${PASSWORD_PER_ACCOUNT_DAY.name}:${id}`)
        .executeTakeFirstOrThrow();
      expect(day.points).toBe(20);
    });

    test("clearing an account deletes its counters (known browsers and factors included), nobody else's", async () => {
      const id = `${subject()}_x%`;
      const other = `${id}y`;
      for (const s of [id, other]) {
        await takePasswordAttempt(database.db, { subject: s, ip: address() });
        await takePasswordAttempt(database.db, { subject: s, ip: address(), knownDevice: 'owner' });
        await takeAttempt(database.db, { accountId: s, factorId: 'totp', ip: address() });
      }
      const keys = async (s: string) =>
        (await database.db.selectFrom('rate_limits').select('key').execute()).map((r) => r.key).filter((k) => k.includes(`:${s}`) && !k.includes(`:${s}y`));
      expect((await keys(id)).length).toBe(7);
      expect(await clearPasswordCounters(database.db, id)).toBe(4);
      expect(await clearCounters(database.db, [[MFA_PER_ACCOUNT_DAY.name, id]])).toBe(1);
      expect((await keys(id)).sort()).toEqual([`${MFA_PER_ACCOUNT_BURST.name}:${id}:totp`, `${MFA_UNKNOWN_BROWSERS_DAY.name}:${id}:totp`].sort());
      expect(
        (
          await database.db
            .selectFrom('rate_limits')
            .select('key')
            .where('key', 'like', `%${other.replace(/[%_]/g, '\\$&')}%`)
            .execute()
        ).length,
      ).toBe(7);
    });
  });
}

describe('throttle settings in the global policy', () => {
  test('the defaults are the built-in numbers', () => {
    const { throttle } = parsePolicy(globalPolicySchema, {}, 'global policy');
    const numbers = (r: LimitRule) => ({ points: r.points, windowSeconds: r.windowSeconds });
    const backoff = (r: Extract<LimitRule, { kind: 'backoff' }>) => ({ ...numbers(r), delaySeconds: r.delaySeconds, maxDelaySeconds: r.maxDelaySeconds });
    expect(throttle).toEqual({
      perAccountBurst: backoff(MFA_PER_ACCOUNT_BURST),
      knownBrowserBurst: backoff(MFA_KNOWN_BROWSER_BURST),
      perAccountDay: numbers(MFA_PER_ACCOUNT_DAY),
      perAddress: numbers(MFA_PER_ADDRESS),
      passwordUnknownBrowsers: backoff(PASSWORD_UNKNOWN_BROWSERS),
      passwordKnownBrowser: backoff(PASSWORD_KNOWN_BROWSER),
      passwordPerAccountDay: numbers(PASSWORD_PER_ACCOUNT_DAY),
      passwordPerAddress: numbers(PASSWORD_PER_ADDRESS),
      sendPerAccount: numbers(SEND_PER_ACCOUNT),
      sendPerAddress: numbers(SEND_PER_ADDRESS),
      sendPerDestination: numbers(SEND_PER_DESTINATION),
    });
    // A document written before the burst delays existed still reads, with the default delays.
    expect(parsePolicy(globalPolicySchema, { throttle: { perAccountBurst: { points: 3, windowSeconds: 60 } } }, 'g').throttle.perAccountBurst).toEqual({
      points: 3,
      windowSeconds: 60,
      delaySeconds: 30,
      maxDelaySeconds: 900,
    });
    // One written before passwords were counted per account: its per-login numbers carry over to the unknown browsers' rule.
    const legacy = parsePolicy(globalPolicySchema, { throttle: { passwordPerLogin: { points: 3, windowSeconds: 600 } } }, 'g').throttle;
    expect(legacy.passwordUnknownBrowsers).toEqual({ points: 3, windowSeconds: 600, delaySeconds: 30, maxDelaySeconds: 900 });
    expect(legacy).not.toHaveProperty('passwordPerLogin');
  });

  test.each([
    [{ perAccountDay: { points: 100, windowSeconds: 86399 } }, 'throttle.perAccountDay.windowSeconds: at least 86400'],
    [{ perAccountDay: { points: 100, windowSeconds: 1 } }, 'throttle.perAccountDay.windowSeconds'],
    [{ perAccountDay: { points: 101, windowSeconds: 86400 } }, 'throttle.perAccountDay.points: at most 100'],
    [{ perAccountBurst: { points: 5, windowSeconds: 300, delaySeconds: 60, maxDelaySeconds: 30 } }, 'throttle.perAccountBurst.maxDelaySeconds'],
    [{ sendPerDestination: { points: 0, windowSeconds: 3600 } }, 'throttle.sendPerDestination.points'],
    [{ passwordPerLogin: { points: 20 } }, 'throttle.passwordPerLogin.windowSeconds'],
    [{ unknownBrowsersDay: { points: 100, windowSeconds: 86400 } }, 'throttle.unknownBrowsersDay.points: must be less than perAccountDay.points'],
    [
      { passwordPerAccountDay: { points: 10, windowSeconds: 86400 }, passwordUnknownBrowsersDay: { points: 10, windowSeconds: 86400 } },
      'throttle.passwordUnknownBrowsersDay.points: must be less than passwordPerAccountDay.points',
    ],
    [{ passwordPerAccountDay: { points: 101, windowSeconds: 86400 } }, 'throttle.passwordPerAccountDay.points: at most 100'],
    [{ passwordKnownBrowser: { points: 5, windowSeconds: 300, delaySeconds: 60, maxDelaySeconds: 30 } }, 'throttle.passwordKnownBrowser.maxDelaySeconds'],
    [{ lockout: {} }, 'throttle: unknown field(s) lockout'],
  ])('a bad throttle section is refused with the path of the bad field: %j', (throttle, message) => {
    expect(() => parsePolicy(globalPolicySchema, { throttle }, 'global policy')).toThrow(message);
  });
});
