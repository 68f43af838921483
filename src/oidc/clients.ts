/**
 * Relying apps ("clients"), stored in the database. The secret is sealed at
 * rest and opened only to hand node-oidc-provider the metadata it verifies
 * client authentication against.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ClientMetadata, ClientRow, Database } from '../db/schema.ts';
import type { Sealer } from '../security/sealer.ts';
import { forget, memoized } from '../db/request-memo.ts';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
/** The algorithms of the provider's own signing keys (src/oidc/keys.ts). */
export const ID_TOKEN_ALGS = ['RS256', 'ES256'] as const;

const redirectUri = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return !url.hash && url.protocol !== 'javascript:' && url.protocol !== 'data:';
    } catch {
      return false;
    }
  }, 'an absolute URI without a fragment');

export const newClientSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    redirectUris: z.array(redirectUri).min(1, 'at least one --redirect-uri'),
    postLogoutRedirectUris: z.array(redirectUri).default([]),
    public: z.boolean().default(false),
    firstParty: z.boolean().default(false),
    authMethod: z.enum(AUTH_METHODS).optional(),
    /** For private_key_jwt: a jwks_uri or an inline JWKS. */
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    grantTypes: z.array(z.enum(['authorization_code', 'refresh_token'])).default(['authorization_code', 'refresh_token']),
    /** How the app's ID tokens are signed: RS256 (the default, which every library verifies) or ES256 (smaller, faster). */
    idTokenAlg: z.enum(ID_TOKEN_ALGS).optional(),
  })
  .superRefine((c, ctx) => {
    const method = c.authMethod ?? (c.public ? 'none' : 'client_secret_basic');
    if (c.public && method !== 'none') ctx.addIssue({ code: 'custom', path: ['authMethod'], message: 'a public client authenticates with none' });
    if (!c.public && method === 'none') ctx.addIssue({ code: 'custom', path: ['authMethod'], message: 'use --public for a client without authentication' });
    if (method === 'private_key_jwt' && !c.jwksUri && !c.jwks) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'private_key_jwt needs --jwks-uri or --jwks-file' });
    }
  });
export type NewClient = z.input<typeof newClientSchema>;

export interface CreatedClient {
  clientId: string;
  name: string;
  /** Shown once; null for clients without a secret. */
  clientSecret: string | null;
  metadata: ClientMetadata;
}

const secretContext = (clientId: string) => `client_secret:${clientId}`;
/** Clients read in a request are memoized for that request (src/db/request-memo.ts); a write forgets them. */
const CLIENT_MEMO = 'client:';

export function generateClientSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export async function createClient(db: Kysely<Database>, sealer: Sealer, input: NewClient): Promise<CreatedClient> {
  const c = newClientSchema.parse(input);
  const clientId = crypto.randomBytes(16).toString('base64url');
  const method: AuthMethod = c.authMethod ?? (c.public ? 'none' : 'client_secret_basic');
  const needsSecret = method === 'client_secret_basic' || method === 'client_secret_post';
  const clientSecret = needsSecret ? generateClientSecret() : null;
  const metadata: ClientMetadata = {
    client_name: c.name,
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris,
    grant_types: c.grantTypes,
    response_types: ['code'],
    token_endpoint_auth_method: method,
    ...(c.jwksUri ? { jwks_uri: c.jwksUri } : {}),
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.idTokenAlg ? { id_token_signed_response_alg: c.idTokenAlg } : {}),
  };
  await db
    .insertInto('clients')
    .values({
      client_id: clientId,
      name: c.name,
      secret_sealed: clientSecret ? sealer.seal(clientSecret, secretContext(clientId)) : null,
      metadata: JSON.stringify(metadata),
      first_party: c.firstParty,
      policy: JSON.stringify({}),
    })
    .execute();
  forget(CLIENT_MEMO);
  return { clientId, name: c.name, clientSecret, metadata };
}

/**
 * The client with exactly this client_id: the protocol's lookup, run on every
 * authorization, token and refresh request. Read once per request (the
 * provider's lookup, the page's app name and the policy input share it).
 */
export async function findClientById(db: Kysely<Database>, clientId: string): Promise<ClientRow | undefined> {
  return memoized(`${CLIENT_MEMO}${clientId}`, () => db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst());
}

/** Finds a client by client_id or, failing that, by name (for the CLI). */
export async function findClientRow(db: Kysely<Database>, idOrName: string): Promise<ClientRow | undefined> {
  return (await findClientById(db, idOrName)) ?? db.selectFrom('clients').selectAll().where('name', '=', idOrName).limit(1).executeTakeFirst();
}

export async function listClients(db: Kysely<Database>): Promise<ClientRow[]> {
  return db.selectFrom('clients').selectAll().orderBy('name').execute();
}

export async function removeClient(db: Kysely<Database>, clientId: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    // Tokens and grants issued to the client go with it.
    await trx.deleteFrom('oidc_payloads').where(({ eb, ref }) => eb(eb.fn('jsonb_extract_path_text', [ref('payload'), eb.val('clientId')]), '=', clientId)).execute();
    const result = await trx.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }).finally(() => forget(CLIENT_MEMO));
}

export async function rotateClientSecret(db: Kysely<Database>, sealer: Sealer, clientId: string): Promise<string> {
  const secret = generateClientSecret();
  const result = await db
    .updateTable('clients')
    .set({ secret_sealed: sealer.seal(secret, secretContext(clientId)), updated_at: new Date() })
    .where('client_id', '=', clientId)
    .where('secret_sealed', 'is not', null)
    .executeTakeFirst();
  forget(CLIENT_MEMO);
  if (Number(result.numUpdatedRows) !== 1) throw new Error('this client has no secret to rotate');
  return secret;
}

/** The metadata node-oidc-provider validates and uses, secret included. */
export function clientToProviderMetadata(row: ClientRow, sealer: Sealer): Record<string, unknown> {
  return {
    ...row.metadata,
    client_id: row.client_id,
    ...(row.secret_sealed ? { client_secret: sealer.openString(row.secret_sealed, secretContext(row.client_id)) } : {}),
    twofold_first_party: row.first_party,
    twofold_policy: row.policy,
  };
}

export function isPublic(row: ClientRow): boolean {
  return row.metadata.token_endpoint_auth_method === 'none';
}
