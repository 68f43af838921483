import { sql, type Kysely } from 'kysely';

/**
 * WebAuthn: a credential's public identifier (the credential ID), so a passkey
 * finds its account before anyone typed a name. Unique across all accounts: a
 * credential ID registered twice is refused (WebAuthn §7.1, step 26), and two
 * racing registrations cannot both store it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('credentials').addColumn('lookup_key', 'text').execute();
  await db.schema.createIndex('credentials_lookup_key').on('credentials').column('lookup_key').unique().where(sql.ref('lookup_key'), 'is not', null).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('credentials_lookup_key').ifExists().execute();
  await db.schema.alterTable('credentials').dropColumn('lookup_key').execute();
}
