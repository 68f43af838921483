/**
 * APIs (RFC 8707 resource indicators): the ones registered as clients
 * (`twofold client add … --resource-server <indicator>`, stored in
 * resource_servers) and the ones named in RESOURCE_SERVERS (configuration,
 * no client of their own). A registered API may introspect the access tokens
 * issued for it; the configured ones only verify their JWTs. When both name
 * the same indicator, the registered one is what counts.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Database, ResourceServerRow } from '../db/schema.ts';
import { forget, memoized } from '../db/request-memo.ts';
import { USER_SCOPES } from './scopes.ts';

export interface ResourceServer {
  indicator: string;
  /** The scopes tokens for this API may carry. */
  scopes: string[];
  /** The client registered as this API; undefined for a RESOURCE_SERVERS entry. */
  clientId?: string;
  /** The admin let it introspect any opaque access token (not only the tokens issued for it). */
  introspectAny: boolean;
  /** Seconds; RESOURCE_SERVERS may set it, a registered API gets ACCESS_TOKEN_TTL. */
  accessTokenTTL?: number;
}

/** RFC 8707: an absolute URI without a fragment. Apps send it exactly as registered (it becomes the tokens' `aud`). */
export const resourceIndicator = z
  .string()
  .max(2048)
  .refine((value) => URL.canParse(value) && !value.includes('#') && !/\s/.test(value), 'an absolute URI without a fragment, such as https://api.example.com');

/** A scope token (RFC 6749 3.3), not one of the OpenID scopes (those are about the user, not an API). */
const scopeToken = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, 'scope values are printable ASCII without spaces, quotes or backslashes')
  .refine((s) => !USER_SCOPES.includes(s), { error: (issue) => `${String(issue.input)} is an OpenID scope, not an API's` });

/** Scopes as given on the command line ("read write") or as a list; each once. */
export const scopeList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => [...new Set((typeof v === 'string' ? v.split(' ') : v).map((s) => s.trim()).filter(Boolean))])
  .pipe(z.array(scopeToken).max(100));

const MEMO = 'resource_server:';

function fromRow(row: ResourceServerRow): ResourceServer {
  return { indicator: row.indicator, scopes: row.scopes.split(' ').filter(Boolean), clientId: row.client_id, introspectAny: row.introspect_any };
}

/** The API known by this indicator: the registered one, else the RESOURCE_SERVERS entry. Read once per request. */
export async function findResourceServer(db: Kysely<Database>, config: Config, indicator: string): Promise<ResourceServer | undefined> {
  const row = await memoized(`${MEMO}indicator:${indicator}`, () =>
    db.selectFrom('resource_servers').selectAll().where('indicator', '=', indicator).executeTakeFirst(),
  );
  if (row) return fromRow(row);
  const configured = Object.hasOwn(config.RESOURCE_SERVERS, indicator) ? config.RESOURCE_SERVERS[indicator] : undefined;
  if (!configured) return undefined;
  return { indicator, scopes: configured.scope.split(' '), introspectAny: false, accessTokenTTL: configured.accessTokenTTL };
}

/** The API a client is registered as, if any. */
export async function resourceServerOfClient(db: Kysely<Database>, clientId: string): Promise<ResourceServer | undefined> {
  const row = await memoized(`${MEMO}client:${clientId}`, () =>
    db.selectFrom('resource_servers').selectAll().where('client_id', '=', clientId).executeTakeFirst(),
  );
  return row ? fromRow(row) : undefined;
}

/**
 * Registers (or changes) the API a client answers to; one indicator per client, one client per indicator (an
 * indicator another client holds fails on the primary key, code 23505). Run it inside the client's transaction.
 */
export async function saveResourceServer(
  db: Kysely<Database>,
  clientId: string,
  server: Pick<ResourceServer, 'indicator' | 'scopes' | 'introspectAny'>,
): Promise<void> {
  const values = {
    indicator: server.indicator,
    client_id: clientId,
    scopes: server.scopes.join(' '),
    introspect_any: server.introspectAny,
    updated_at: new Date(),
  };
  const updated = await db
    .updateTable('resource_servers')
    .set({ scopes: values.scopes, introspect_any: values.introspect_any, updated_at: values.updated_at })
    .where('client_id', '=', clientId)
    .where('indicator', '=', server.indicator)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) {
    await db.deleteFrom('resource_servers').where('client_id', '=', clientId).execute();
    await db.insertInto('resource_servers').values(values).execute();
  }
  forget(MEMO);
}

export async function removeResourceServer(db: Kysely<Database>, clientId: string): Promise<void> {
  await db.deleteFrom('resource_servers').where('client_id', '=', clientId).execute();
  forget(MEMO);
}

/** Which client holds an indicator (to refuse a second registration with a clear message). */
export async function indicatorHolder(db: Kysely<Database>, indicator: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('resource_servers')
    .innerJoin('clients', 'clients.client_id', 'resource_servers.client_id')
    .select('clients.name')
    .where('indicator', '=', indicator)
    .executeTakeFirst();
  return row?.name;
}
