/**
 * The dialect matrix: every storage test runs on PGlite, and on PostgreSQL too
 * when TEST_DATABASE_URL is set. Each test file gets its own PostgreSQL
 * database, so files run in parallel without seeing each other's rows.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DatabaseHandle, type DatabaseKind } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';

export const DIALECTS: DatabaseKind[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase extends DatabaseHandle {
  /** The connection URL, for PostgreSQL (to open a second pool, as a second process would). */
  url?: string;
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database of the given kind. close() drops it. */
export async function createTestDatabase(kind: DatabaseKind, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  let handle: TestDatabase;
  if (kind === 'pglite') {
    handle = await openDatabase({});
  } else {
    const name = `twofold_test_${crypto.randomBytes(6).toString('hex')}`;
    await adminQuery(`create database ${name}`);
    const url = new URL(process.env.TEST_DATABASE_URL!);
    url.pathname = `/${name}`;
    const opened = await openDatabase({ url: url.toString(), poolSize: 10 });
    handle = {
      ...opened,
      url: url.toString(),
      close: async () => {
        await opened.close();
        await adminQuery(`drop database if exists ${name} with (force)`);
      },
    };
  }
  if (options.migrate !== false) await migrateToLatest(handle.db);
  return handle;
}
