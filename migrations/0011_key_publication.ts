import { sql, type Kysely } from 'kysely';

/**
 * Keys published before they sign: a rotation adds a `next` pair that is in the JWKS at once but signs only from
 * `activates_at` (KEY_PUBLISH_DELAY later), so relying parties that cache the JWKS already hold it when the switch
 * comes. `activates_at` is also kept on the active pair (when it began to sign) for `twofold keys list`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table signing_keys drop constraint if exists signing_keys_status_check`.execute(db);
  await sql`alter table signing_keys add constraint signing_keys_status_check check (status in ('next', 'active', 'retired'))`.execute(db);
  await db.schema.alterTable('signing_keys').addColumn('activates_at', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from signing_keys where status = 'next'`.execute(db);
  await db.schema.alterTable('signing_keys').dropColumn('activates_at').execute();
  await sql`alter table signing_keys drop constraint if exists signing_keys_status_check`.execute(db);
  await sql`alter table signing_keys add constraint signing_keys_status_check check (status in ('active', 'retired'))`.execute(db);
}
