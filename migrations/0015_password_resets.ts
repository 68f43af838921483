import { sql, type Kysely } from 'kysely';

/**
 * Password reset links (src/accounts/password-reset.ts): one row per link
 * sent, holding only a keyed hash of its token (HMAC under a key derived from
 * SECRET_KEY), so a dump of the table opens no account. A link is spent by
 * one conditional UPDATE (`used_at` and `voided_at` null, unexpired), so it
 * works once across all processes. `voided_at`: a newer link was sent, or the
 * password changed some other way. Rows stay a day past their expiry (the
 * purge), so an expired link is told apart from a forged one.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('password_resets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('voided_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('password_resets_account').on('password_resets').column('account_id').execute();
  await db.schema.createIndex('password_resets_expires').on('password_resets').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('password_resets').ifExists().execute();
}
