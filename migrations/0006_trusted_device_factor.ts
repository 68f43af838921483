import type { Kysely } from 'kysely';

/**
 * Which factor proved the sign-in that created a trusted device. A device
 * stands in only for that factor, so an app that does not accept it (say,
 * security keys only, and the device was trusted after a TOTP code) is never
 * satisfied by the device. Rows from before this migration hold null: they
 * stand in for any allowed factor the account has, as they did.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('trusted_devices').addColumn('factor_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('trusted_devices').dropColumn('factor_id').execute();
}
