import { sql, type Kysely } from 'kysely';

/**
 * Answers that reach a factor outside the browser (a phone approving a sign-in, through the factor's
 * server-to-server callback), kept where every provider process sees them: the waiting browser's next
 * poll, in whichever process, finds the answer here. `id` is a keyed hash of the id the device was
 * given, so a dump cannot answer anything. An answer is recorded once (`answer IS NULL`, unexpired) and
 * taken once (`taken_at IS NULL`), each by one conditional UPDATE.
 *
 * `factor_nonces`: the nonces of the callbacks a factor accepted, each stored (as a keyed hash) until
 * its message's time window has passed, so a replayed callback is refused in every process.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('factor_answers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('factor_id', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    // Removing the credential (the phone) voids what it was asked.
    .addColumn('credential_id', 'text', (c) => c.notNull().references('credentials.id').onDelete('cascade'))
    // What the factor keeps with the question (a number to match); never secret.
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('answer', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('answered_at', 'timestamptz')
    .addColumn('taken_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('factor_answers_expires').on('factor_answers').column('expires_at').execute();
  await db.schema.createIndex('factor_answers_credential').on('factor_answers').column('credential_id').execute();

  await db.schema
    .createTable('factor_nonces')
    .addColumn('factor_id', 'text', (c) => c.notNull())
    .addColumn('nonce_hash', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('factor_nonces_pk', ['factor_id', 'nonce_hash'])
    .execute();
  await db.schema.createIndex('factor_nonces_expires').on('factor_nonces').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('factor_nonces').ifExists().execute();
  await db.schema.dropTable('factor_answers').ifExists().execute();
}
