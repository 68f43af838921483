import { sql, type Kysely } from 'kysely';

/** Versioned policy documents (global and per group) and trusted devices. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('policy_documents')
    // `global`, or `group:<group id>`
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('document', 'jsonb', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('policy_documents_pk', ['scope', 'version'])
    .execute();

  await db.schema
    .createTable('trusted_devices')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('label', 'text', (c) => c.notNull())
    // Binds the trust to the account's factors and password at the time: any change voids it.
    .addColumn('binding', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('trusted_devices_account').on('trusted_devices').column('account_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('trusted_devices').ifExists().execute();
  await db.schema.dropTable('policy_documents').ifExists().execute();
}
