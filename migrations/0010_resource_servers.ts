import { sql, type Kysely } from 'kysely';

/**
 * APIs registered as clients (`twofold client add … --resource-server <indicator>`): the RFC 8707 resource
 * indicator the client answers to, the scopes tokens for it may carry, and whether the admin let it introspect
 * any opaque access token. One indicator belongs to one client; removing the client removes its registration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('resource_servers')
    .addColumn('indicator', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().unique().references('clients.client_id').onDelete('cascade'))
    // Space-separated, as in an OAuth scope parameter.
    .addColumn('scopes', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('introspect_any', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('resource_servers').ifExists().execute();
}
