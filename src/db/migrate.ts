/**
 * Runs the numbered migrations in migrations/. kysely's migrator holds a
 * PostgreSQL advisory lock for the whole run, so two processes starting at once
 * never both migrate; PGlite is single-process (see data-dir-lock.ts).
 */
import { sql, type Kysely } from 'kysely';
import { Migrator, type MigrationResult } from 'kysely/migration';
import { migrations } from '../../migrations/index.ts';
import type { Database } from './schema.ts';

export interface MigrateOutcome {
  applied: string[];
}

/**
 * Whether every known migration, and nothing else, is recorded: one read, where
 * the migrator would create its tables if missing, lock, and read more (on
 * PGlite, each of those costs start-up time in a freshly started backend).
 */
async function upToDate(db: Kysely<Database>): Promise<boolean> {
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
    const known = Object.keys(migrations);
    return rows.length === known.length && rows.every((r) => known.includes(r.name));
  } catch {
    return false; // no migration table yet: a new database
  }
}

export async function migrateToLatest(db: Kysely<Database>): Promise<MigrateOutcome> {
  if (await upToDate(db)) return { applied: [] };
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const { error, results } = await migrator.migrateToLatest();
  const applied = (results ?? []).filter((r: MigrationResult) => r.status === 'Success').map((r) => r.migrationName);
  if (error) {
    const failed = (results ?? []).find((r) => r.status === 'Error');
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${message}`);
  }
  return { applied };
}

export async function pendingMigrations(db: Kysely<Database>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const all = await migrator.getMigrations();
  return all.filter((m) => !m.executedAt).map((m) => m.name);
}
