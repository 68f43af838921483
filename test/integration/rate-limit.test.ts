/**
 * Proves the database-backed rate limiter on every database in the matrix:
 * under 200 simultaneous attempts (from separate pools on PostgreSQL, as from
 * separate processes) exactly `points` are allowed and every attempt is
 * counted once; a window that has passed starts counting afresh; reset()
 * clears one subject only; consumeAll() counts several counters in one
 * statement exactly as consume() would, without deadlocks between requests
 * that share counters.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { consume, consumeAll, reset, type LimitRule } from '../../src/security/rate-limit.ts';

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
      await consumeAll(database.db, [{ rule: short, subject: 'acct' }, { rule: short, subject: 'ip' }]);
      const [again] = await consumeAll(database.db, [{ rule: short, subject: 'acct' }, { rule: long, subject: 'acct' }]);
      expect(again).toMatchObject({ allowed: false, count: 3 });
      expect(await consume(database.db, long, 'acct')).toMatchObject({ count: 4 });
      await expect(consumeAll(database.db, [{ rule: short, subject: 'x' }, { rule: short, subject: 'x' }])).rejects.toThrow(/twice/);
    });

    test('100 simultaneous consumeAll() over shared counters, listed in either order: each counted once, no deadlock', async () => {
      const first = rule(1000, 60);
      const second = rule(1000, 60);
      const all = handles();
      const pairs = Array.from({ length: 100 }, (_, i) => {
        const both = [{ rule: first, subject: 's' }, { rule: second, subject: 's' }];
        return consumeAll(all[i % all.length]!.db, i % 2 ? both : [...both].reverse());
      });
      const results = await Promise.all(pairs);
      expect(results.map((r) => r.map((x) => x.count).sort((a, b) => a - b)).flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => Math.floor(i / 2) + 1));
      expect(await consume(database.db, first, 's')).toMatchObject({ count: 101 });
      expect(await consume(database.db, second, 's')).toMatchObject({ count: 101 });
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
