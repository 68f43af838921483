import type { Kysely } from 'kysely';

/**
 * When a session was last used (an authorization request or a sign-in step),
 * for the idle limits of levels 2 and 3 (policy `levelIdle`). Kept beside the
 * session's evidence, where every process sees it. Rows from before this
 * migration hold null: their newest proof stands in for their last activity.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('session_evidence').addColumn('last_active_at', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('session_evidence').dropColumn('last_active_at').execute();
}
