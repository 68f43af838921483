/**
 * What someone with a copy of the database holds, as text, and the strings in
 * it that could be tokens: for the dump tests (test/e2e/database-dump.test.ts).
 *
 * PostgreSQL: pg_dump's plain output, schema and data, as an operator's backup
 * would be. PGlite: the data folder as PGlite copies it (dumpDataDir, a tar of
 * every file, write-ahead log included), read twice: the raw bytes, and, since
 * raw pages pack values together (a text's length byte, jsonb's strings laid
 * end to end) and may compress them, the rows of every table as a copy of the
 * folder started as a database of its own shows them.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import type { TestDatabase } from './databases.ts';

const PG_DUMP = '/usr/lib/postgresql/15/bin/pg_dump';

export interface Dump {
  /** Text to search: the logical dump (and, on PGlite, the raw files as latin1). */
  texts: string[];
  /** What was dumped, for messages. */
  description: string;
}

export async function dumpDatabase(database: TestDatabase): Promise<Dump> {
  if (database.kind === 'postgres') {
    const { stdout } = await promisify(execFile)(PG_DUMP, ['--no-owner', '--dbname', database.url!], { maxBuffer: 256 * 1024 * 1024 });
    return { texts: [stdout], description: `pg_dump (${stdout.length} characters)` };
  }
  const pglite = database.pglite!;
  // Pages still in shared buffers reach the files (the write-ahead log holds them already; this makes the heap files hold them too).
  await sql`checkpoint`.execute(database.db);
  const tar = Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer());
  const { PGlite } = await import('@electric-sql/pglite');
  const copy = await PGlite.create({ loadDataDir: new Blob([tar]) });
  try {
    const tables = await copy.query<{ name: string }>(`select quote_ident(schemaname) || '.' || quote_ident(tablename) as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`);
    const rows: string[] = [];
    for (const { name } of tables.rows) {
      const result = await copy.query<{ row: string }>(`select row_to_json(t)::text as row from ${name} t`);
      for (const r of result.rows) rows.push(`${name}\t${r.row}`);
    }
    return { texts: [rows.join('\n'), tar.toString('latin1')], description: `PGlite data folder (${tar.length} bytes, ${tables.rows.length} tables, ${rows.length} rows)` };
  } finally {
    await copy.close();
  }
}

/** Runs of the base64url alphabet: every token, code and id the provider makes is one. */
const RUN = /[A-Za-z0-9_-]{16,}/g;
/** Longer runs are sealed values and keys, not anything the provider hands out. */
const MAX_TOKEN = 128;
/** JWS and JWE compact serialisations (3 or 5 parts). */
const JOSE = /(?<![A-Za-z0-9_.-])[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){2}(?:(?:\.[A-Za-z0-9_-]*){2})?(?![A-Za-z0-9_.-])/g;

/**
 * Every string in `text` that could be a bearer value. A raw page puts a one-
 * byte length before a short text value, which can itself be a base64url
 * character, so each run is also tried without its first and last character.
 */
export function candidateTokens(texts: string[]): Set<string> {
  const found = new Set<string>();
  for (const text of texts) {
    for (const [run] of text.matchAll(RUN)) {
      if (run.length > MAX_TOKEN + 1) continue;
      if (run.length <= MAX_TOKEN) found.add(run);
      if (run.length > 16) {
        found.add(run.slice(1));
        found.add(run.slice(0, -1));
      }
    }
    for (const [jose] of text.matchAll(JOSE)) if (jose.length >= 40) found.add(jose);
  }
  return found;
}
