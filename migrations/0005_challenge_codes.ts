import { sql, type Kysely } from 'kysely';

/**
 * Codes delivered out of band (email, text message, voice call): one row per
 * code sent, holding only its keyed hash, its expiry and the tries spent on it.
 * A code is accepted by one conditional UPDATE (`used_at IS NULL`, unexpired,
 * tries left), so two processes can never both accept it. `scope` is what the
 * code unlocks for its factor and account: a credential's id when signing in,
 * a pending enrolment's random id while an address is being proved.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('challenge_codes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('factor_id', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    // `email`, `sms` or `voice`: decides the amr value a success contributes.
    .addColumn('channel', 'text', (c) => c.notNull())
    // HMAC-SHA256 of the code under a key derived from SECRET_KEY (never stored in the database).
    .addColumn('code_hash', 'text', (c) => c.notNull())
    // Tries spent, carried over from the code this one replaced: a new code never resets the count.
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('challenge_codes_scope').on('challenge_codes').columns(['account_id', 'factor_id', 'scope', 'created_at']).execute();
  await db.schema.createIndex('challenge_codes_expires').on('challenge_codes').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('challenge_codes').ifExists().execute();
}
