/**
 * Opens the database: embedded PGlite in the data folder by default, or
 * PostgreSQL through `pg` when a URL is given. Both speak the same SQL, so one
 * set of migrations and one set of queries serve both.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect, type KyselyPlugin } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import type { Database } from './schema.ts';

// int8 (bigserial ids, counts) as strings is pg's default; keep it explicit so PGlite and pg agree.
pg.types.setTypeParser(20, (v) => v);

export type DatabaseKind = 'pglite' | 'postgres';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** The embedded engine, when kind is pglite. */
  pglite?: PGlite;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** postgres:// URL; when absent PGlite is used. */
  url?: string;
  /** Folder for PGlite's files; absent means in memory (tests). */
  pgliteDir?: string;
  poolSize?: number;
  plugins?: KyselyPlugin[];
}

export async function openDatabase(options: OpenOptions): Promise<DatabaseHandle> {
  if (options.url) {
    // A server that silently drops packets must fail in seconds, not at the OS's TCP timeout.
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10, connectionTimeoutMillis: 10_000 });
    // An idle client that loses its server must not crash the process.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: options.plugins ?? [] });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }
  if (options.pgliteDir) fs.mkdirSync(path.dirname(options.pgliteDir), { recursive: true });
  const pglite = await PGlite.create(options.pgliteDir ? { dataDir: options.pgliteDir } : {});
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }), plugins: options.plugins ?? [] });
  return {
    db,
    kind: 'pglite',
    pglite,
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

/** Checks that the database answers (used by /readyz). */
export async function ping(db: Kysely<Database>): Promise<void> {
  await db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
}
