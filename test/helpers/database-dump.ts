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
import fs from 'node:fs';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import type { TestDatabase } from './databases.ts';

/** Debian's newest pg_dump (it must be at least the server's version), else one on PATH. */
function pgDump(): string {
  const versions = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)) : [];
  const debian = versions
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => `/usr/lib/postgresql/${v}/bin/pg_dump`)
    .find((file) => fs.existsSync(file));
  return debian ?? 'pg_dump';
}

export interface Dump {
  /** The rows as text: pg_dump's output, or the PGlite copy's rows as JSON. */
  logical: string;
  /** PGlite: every file of the data folder (a tar), bytes as latin1. */
  raw?: string;
  /** What was dumped, for messages. */
  description: string;
}

export async function dumpDatabase(database: TestDatabase): Promise<Dump> {
  if (database.kind === 'postgres') {
    const { stdout } = await promisify(execFile)(pgDump(), ['--no-owner', '--dbname', database.url!], { maxBuffer: 256 * 1024 * 1024 });
    return { logical: stdout, description: `pg_dump (${stdout.length} characters)` };
  }
  const pglite = database.pglite!;
  // Pages still in shared buffers reach the files (the write-ahead log holds them already; this makes the heap files hold them too).
  await sql`checkpoint`.execute(database.db);
  const tar = Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer());
  const { PGlite } = await import('@electric-sql/pglite');
  const copy = await PGlite.create({ loadDataDir: new Blob([tar]) });
  try {
    const tables = await copy.query<{ name: string }>(
      `select quote_ident(schemaname) || '.' || quote_ident(tablename) as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`,
    );
    const rows: string[] = [];
    for (const { name } of tables.rows) {
      const result = await copy.query<{ row: string }>(`select row_to_json(t)::text as row from ${name} t`);
      for (const r of result.rows) rows.push(`${name}\t${r.row}`);
    }
    return {
      logical: rows.join('\n'),
      raw: tar.toString('latin1'),
      description: `PGlite data folder (${tar.length} bytes, ${tables.rows.length} tables, ${rows.length} rows)`,
    };
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
 * Every string in the dump that could be a bearer value. A raw page puts a
 * one-byte length before a short text value, and that byte can itself be a
 * base64url character, so each raw run is also tried without its first and
 * its last character.
 */
export function candidateTokens(dump: Dump): Set<string> {
  const found = new Set<string>();
  for (const [text, raw] of [
    [dump.logical, false],
    [dump.raw ?? '', true],
  ] as const) {
    for (const [run] of text.matchAll(RUN)) {
      if (run.length <= MAX_TOKEN) found.add(run);
      if (raw && run.length > 16 && run.length <= MAX_TOKEN + 1) {
        found.add(run.slice(1));
        found.add(run.slice(0, -1));
      }
    }
    for (const [jose] of text.matchAll(JOSE)) if (jose.length >= 40) found.add(jose);
  }
  return found;
}

/** Whether `value` appears anywhere in the dump. */
export function dumpContains(dump: Dump, value: string): boolean {
  return dump.logical.includes(value) || (dump.raw?.includes(value) ?? false);
}
