/**
 * Proves the migrator: on a fresh database it applies every migration in
 * order; running it again is a no-op; and on PostgreSQL, several processes
 * (separate pools) migrating one fresh database at once all succeed while the
 * schema is migrated exactly once (one kysely_migration row per migration).
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { migrateToLatest, pendingMigrations } from '../../src/db/migrate.ts';
import { migrations } from '../../migrations/index.ts';

const NAMES = Object.keys(migrations);

async function recorded(handle: DatabaseHandle): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(handle.db);
  return rows.rows.map((r) => r.name);
}

test('migration names sort in the order they are listed', () => {
  expect(NAMES.length).toBeGreaterThan(0);
  expect([...NAMES].sort()).toEqual(NAMES);
  for (const name of NAMES) expect(name).toMatch(/^\d{4}_[a-z0-9_]+$/);
});

for (const kind of DIALECTS) {
  describe(`migrations on ${kind}`, () => {
    let database: TestDatabase;

    afterAll(async () => {
      await database?.close();
    });

    test('a fresh database gets every migration, and migrating again is a no-op', async () => {
      database = await createTestDatabase(kind, { migrate: false });
      expect(await pendingMigrations(database.db)).toEqual(NAMES);

      expect(await migrateToLatest(database.db)).toEqual({ applied: NAMES });
      expect(await pendingMigrations(database.db)).toEqual([]);
      expect(await recorded(database)).toEqual(NAMES);

      expect(await migrateToLatest(database.db)).toEqual({ applied: [] });
      expect(await recorded(database)).toEqual(NAMES);

      // The schema is there: a table from the first migration answers.
      await expect(database.db.selectFrom('accounts').select('id').execute()).resolves.toEqual([]);
    });

    test('the up-to-date check hides nothing: a migration this version does not know is refused; a missing record sends the migrator in', async () => {
      // A newer Twofold migrated this database: an older one must not start on it.
      await sql`insert into kysely_migration (name, timestamp) values ('9999_from_the_future', now()::text)`.execute(database.db);
      await expect(migrateToLatest(database.db)).rejects.toThrow(/9999_from_the_future/);
      await sql`delete from kysely_migration where name = '9999_from_the_future'`.execute(database.db);
      // The last migration's record lost: the migrator runs it again (and fails on the schema already there).
      const last = NAMES.at(-1)!;
      await sql`delete from kysely_migration where name = ${last}`.execute(database.db);
      expect(await pendingMigrations(database.db)).toEqual([last]);
      await expect(migrateToLatest(database.db)).rejects.toThrow(new RegExp(last));
      await sql`insert into kysely_migration (name, timestamp) values (${last}, now()::text)`.execute(database.db);
      expect(await migrateToLatest(database.db)).toEqual({ applied: [] });
    });
  });
}

const postgres = DIALECTS.includes('postgres') ? describe : describe.skip;

postgres('migrations on postgres from several processes at once', () => {
  let database: TestDatabase | undefined;
  const pools: DatabaseHandle[] = [];

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await database?.close();
  });

  test('four migrators on separate pools against one fresh database all succeed; each migration runs once', async () => {
    database = await createTestDatabase('postgres', { migrate: false });
    for (let i = 0; i < 4; i++) pools.push(await openDatabase({ url: database.url!, poolSize: 2 }));

    const outcomes = await Promise.all(pools.map((p) => migrateToLatest(p.db)));
    const applied = outcomes.flatMap((o) => o.applied);
    // Between them they applied each migration exactly once.
    expect([...applied].sort()).toEqual(NAMES);
    expect(await recorded(database)).toEqual(NAMES);
    const counts = await sql<{ name: string; n: string }>`select name, count(*)::text as n from kysely_migration group by name`.execute(database.db);
    expect(counts.rows.every((r) => r.n === '1')).toBe(true);
    for (const p of pools) expect(await pendingMigrations(p.db)).toEqual([]);
    await expect(database.db.selectFrom('accounts').select('id').execute()).resolves.toEqual([]);
  });
});
