/**
 * Finding 1, at the pool: a PostgreSQL connection that is checked out (a
 * transaction between two statements) when its backend is terminated used to
 * emit an 'error' nobody listened to, which ended the process (here: the test
 * worker). Now the process carries on, the next statement fails with
 * DatabaseUnavailableError (503), the transaction leaves nothing behind, the
 * pool opens a fresh connection, and the outage is recorded as begun and
 * ended. (The whole story, under load and with restarts: test/fault/.)
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { databaseHealth, ping } from '../../src/db/database.ts';
import { DatabaseUnavailableError, isConnectionFailure } from '../../src/db/outage.ts';

const describeOnPostgres = process.env.TEST_DATABASE_URL ? describe : describe.skip;

describeOnPostgres('a PostgreSQL connection lost while checked out', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    await sql`create table outage_probe (id int primary key)`.execute(database.db);
  });

  afterAll(async () => {
    await database?.close();
  });

  async function terminate(pid: number): Promise<void> {
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query('select pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
  }

  test('the process carries on; the statement after gets DatabaseUnavailableError; the transaction left nothing; the pool reconnects', async () => {
    const outcome = await database.db
      .transaction()
      .execute(async (trx) => {
        await trx
          .insertInto('outage_probe' as never)
          .values({ id: 1 } as never)
          .execute();
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await terminate(rows[0]!.pid);
        // The server's goodbye (57P01) reaches the idle, checked-out connection as an 'error' event.
        await new Promise((r) => setTimeout(r, 300));
        await trx
          .insertInto('outage_probe' as never)
          .values({ id: 2 } as never)
          .execute();
        return 'committed';
      })
      .catch((err: unknown) => err);
    expect(outcome).toBeInstanceOf(DatabaseUnavailableError);
    expect(outcome).toMatchObject({ status: 503, statusCode: 503, expose: false });
    expect(isConnectionFailure(outcome)).toBe(true);

    // A fresh connection; the transaction's first row is not there.
    await ping(database.db);
    expect(
      await database.db
        .selectFrom('outage_probe' as never)
        .selectAll()
        .execute(),
    ).toEqual([]);
    const health = databaseHealth(database.db)!;
    expect(health.current).toBeUndefined();
    expect(health.last).toMatchObject({ began: expect.any(Date), ended: expect.any(Date) });
  });

  test('an idle pooled connection whose backend is terminated is replaced without a failed statement', async () => {
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(database.db);
    await terminate(rows[0]!.pid);
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 20; i++) await ping(database.db);
  });

  test('statement errors are not outages', () => {
    expect(isConnectionFailure(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isConnectionFailure(Object.assign(new Error('syntax'), { code: '42601' }))).toBe(false);
    expect(isConnectionFailure(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isConnectionFailure(new Error('Connection terminated unexpectedly'))).toBe(true);
  });
});
