import { sql, type Kysely } from 'kysely';

/** The factor engine: credentials, one-time codes, step state, session evidence. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('credentials')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('factor_id', 'text', (c) => c.notNull())
    .addColumn('label', 'text', (c) => c.notNull())
    .addColumn('secret_sealed', 'text')
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    // TOTP: last accepted time step; WebAuthn: signature counter. Only ever advanced by a conditional UPDATE.
    .addColumn('counter', 'bigint')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('credentials_account').on('credentials').columns(['account_id', 'factor_id']).execute();

  await db.schema
    .createTable('one_time_codes')
    .addColumn('credential_id', 'text', (c) => c.notNull().references('credentials.id').onDelete('cascade'))
    // HMAC-SHA256 of the normalised code under a key derived from SECRET_KEY (never stored in the database).
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addPrimaryKeyConstraint('one_time_codes_pk', ['credential_id', 'code_hash'])
    .execute();

  await db.schema
    .createTable('interaction_state')
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value_sealed', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('interaction_state_pk', ['uid', 'key'])
    .execute();
  await db.schema.createIndex('interaction_state_expires').on('interaction_state').column('expires_at').execute();

  await db.schema
    .createTable('session_evidence')
    .addColumn('session_uid', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('evidence', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('session_evidence_expires').on('session_evidence').column('expires_at').execute();

  await db.schema.alterTable('accounts').addColumn('last_factor_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('accounts').dropColumn('last_factor_id').execute();
  for (const t of ['session_evidence', 'interaction_state', 'one_time_codes', 'credentials']) await db.schema.dropTable(t).ifExists().execute();
}
