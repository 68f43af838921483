import { sql, type Kysely } from 'kysely';

/**
 * Back-channel logout notices waiting to reach an app (OIDC Back-Channel Logout 1.0): one row per app and ended
 * session, taken by whichever provider process looks next, retried with backoff a bounded number of times, deleted
 * when delivered or given up (the failure is audited). The logout token is signed at each attempt, so its `iat`
 * is fresh; what is kept is what it says: the account (`sub`) and the session id the app was given (`sid`).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('backchannel_logouts')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('sid', 'text')
    // What ended the session: end_session, password, disabled, removed, expired, signed_out.
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('backchannel_logouts_due').on('backchannel_logouts').column('next_attempt_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('backchannel_logouts').ifExists().execute();
}
