import { sql, type Kysely } from 'kysely';

/**
 * Remembered consent (src/oidc/remembered-consent.ts): which of the provider's grants holds what a person allowed a
 * third-party app, one per account and app, so a new browser session finds it. Only the pointer lives here; the
 * scopes and the grant's lifetime stay in the Grant (oidc_payloads), and a pointer to a grant that is gone counts as
 * no consent. Deleting the account or the app deletes its rows.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consents')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    // The provider's Grant id, as oidc_payloads.grant_id holds it for the grant's tokens.
    .addColumn('grant_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('consents_pk', ['account_id', 'client_id'])
    .execute();
  // A grant revoked at the revocation endpoint is forgotten by its id.
  await db.schema.createIndex('consents_grant').on('consents').column('grant_id').execute();
  await db.schema.createIndex('consents_client').on('consents').column('client_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consents').ifExists().execute();
}
