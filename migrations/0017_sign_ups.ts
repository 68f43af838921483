import { sql, type Kysely } from 'kysely';

/**
 * Self-service sign-up (src/accounts/sign-up.ts): `accounts.sign_up_pending`
 * marks an account whose email address is not yet confirmed, which cannot
 * sign in. `email_verifications` holds the confirmation links as keyed hashes
 * of their tokens, spent once by a conditional UPDATE, like password_resets.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('accounts')
    .addColumn('sign_up_pending', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
  await db.schema
    .createTable('email_verifications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('voided_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('email_verifications_account').on('email_verifications').column('account_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('email_verifications').ifExists().execute();
  await db.schema.alterTable('accounts').dropColumn('sign_up_pending').execute();
}
