/**
 * Relying apps ("clients"), stored in the database. The secret is sealed at
 * rest and opened only to hand node-oidc-provider the metadata it verifies
 * client authentication against.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { ClientMetadata, ClientRow, Database } from '../db/schema.ts';
import type { Sealer } from '../security/sealer.ts';
import { forget, memoized } from '../db/request-memo.ts';
import {
  indicatorHolder,
  removeResourceServer,
  resourceIndicator,
  resourceServerOfClient,
  saveResourceServer,
  scopeList,
  type ResourceServer,
} from './resource-servers.ts';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
/** The algorithms of the provider's own signing keys (src/oidc/keys.ts). */
export const ID_TOKEN_ALGS = ['RS256', 'ES256'] as const;
/** `--pkce`: only a confidential client may make PKCE optional (absent: PKCE_REQUIRED decides). */
export const PKCE_MODES = ['optional', 'required'] as const;
/** RFC 8628's grant type: a device (a CLI, a TV) polls for the tokens a person approves in a browser. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** `--id-token-claims`: `full` (default) puts the granted scopes' claims in the ID token too; `minimal` leaves them to userinfo. */
export const ID_TOKEN_CLAIMS = ['minimal', 'full'] as const;

/**
 * The per-app settings the provider reads from client metadata (extraClientMetadata), beside the standard ones.
 * `twofold_client_credentials_scope`: the API scopes a machine client may be granted (space-separated).
 */
export const TWOFOLD_METADATA = ['twofold_pkce', 'twofold_id_token_claims', 'twofold_client_credentials_scope', 'twofold_sign_up'] as const;

/** `twofold_sign_up`: whether people may create an account from this app's sign-in (when SIGN_UP is on); absent: allow. */
export const SIGN_UP_MODES = ['allow', 'deny'] as const;

/** What the provider accepts for those settings: a stored value it does not know is refused, not guessed at. */
export function invalidTwofoldMetadata(key: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (key === 'twofold_pkce' && !(PKCE_MODES as readonly unknown[]).includes(value)) return `twofold_pkce must be one of ${PKCE_MODES.join(', ')}`;
  if (key === 'twofold_id_token_claims' && !(ID_TOKEN_CLAIMS as readonly unknown[]).includes(value))
    return `twofold_id_token_claims must be one of ${ID_TOKEN_CLAIMS.join(', ')}`;
  if (key === 'twofold_client_credentials_scope' && typeof value !== 'string') return 'twofold_client_credentials_scope must be a string';
  if (key === 'twofold_sign_up' && !(SIGN_UP_MODES as readonly unknown[]).includes(value)) return `twofold_sign_up must be one of ${SIGN_UP_MODES.join(', ')}`;
  return undefined;
}

/**
 * Whether a client must use PKCE: a public client always (no secret protects its codes), a confidential one as its
 * own setting says, else as PKCE_REQUIRED says (`all`, the default: every client).
 */
export function pkceRequired(client: { clientAuthMethod?: string; twofold_pkce?: string }, mode: Config['PKCE_REQUIRED']): boolean {
  if (client.clientAuthMethod === 'none') return true;
  if (client.twofold_pkce === 'optional') return false;
  if (client.twofold_pkce === 'required') return true;
  return mode === 'all';
}

const redirectUri = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return !url.hash && url.protocol !== 'javascript:' && url.protocol !== 'data:';
  } catch {
    return false;
  }
}, 'an absolute URI without a fragment');

/** Hosts an app on this machine answers on: the only ones a back-channel logout URI may reach over plain http. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Where the app receives back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.2): an absolute https URI, or
 * http on a loopback host (an app on the same machine, as for redirect URIs of native apps); no fragment.
 */
export const backchannelLogoutUri = z.string().refine((value) => {
  try {
    const url = new URL(value);
    if (url.hash || value.includes('#')) return false;
    return url.protocol === 'https:' || (url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)));
  } catch {
    return false;
  }
}, 'an absolute https:// URI without a fragment (http:// only on localhost, 127.0.0.1 or [::1])');

/** What a client is for, as far as the rules below care: the settings that must fit together. */
interface ClientShape {
  /** It signs users in (has redirect URIs). */
  signIn: boolean;
  /** It signs users in on a device: the device authorization grant (RFC 8628), no redirect URIs needed. */
  deviceFlow: boolean;
  public: boolean;
  clientCredentials: boolean;
  clientCredentialsScopes?: string[];
  resourceServer: boolean;
  /** An API setting that was given (to refuse it on a client that is not an API). */
  resourceFlag?: 'resourceScopes' | 'introspectAny';
  pkce?: (typeof PKCE_MODES)[number];
  idTokenClaims?: (typeof ID_TOKEN_CLAIMS)[number];
  /** A back-channel logout URI, as it would be. */
  backchannelLogout?: boolean;
  /** --backchannel-logout-session-required was given (true). */
  backchannelSessionRequired?: boolean;
}

/** The rules shared by `client add` and `client update`: each broken one as an issue on the option that breaks it. */
function checkShape(c: ClientShape, ctx: z.RefinementCtx): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (!c.signIn && !c.deviceFlow && !c.clientCredentials && !c.resourceServer) {
    issue(
      'redirectUris',
      'at least one --redirect-uri (or --resource-server for an API, --client-credentials for a machine client, --device-flow for a CLI or TV)',
    );
  }
  if (c.public && c.pkce === 'optional') issue('pkce', 'a public client always uses PKCE: without a secret, PKCE is what protects its authorization codes');
  if (c.public && c.clientCredentials) issue('clientCredentials', 'a public client has no credentials to get tokens with');
  if (c.public && c.resourceServer) issue('resourceIndicator', 'an API authenticates to introspect tokens, so it cannot be a public client');
  if (c.clientCredentialsScopes && !c.clientCredentials) issue('clientCredentialsScopes', 'only for a machine client (--client-credentials)');
  if (c.resourceFlag && !c.resourceServer) issue(c.resourceFlag, 'only for an API (--resource-server <indicator>)');
  if (!c.signIn && c.pkce) issue('pkce', 'only for an app that signs users in (--redirect-uri)');
  if (!c.signIn && !c.deviceFlow && c.idTokenClaims) issue('idTokenClaims', 'only for an app that signs users in (--redirect-uri or --device-flow)');
  if (!c.signIn && !c.deviceFlow && c.backchannelLogout) issue('backchannelLogoutUri', 'only for an app that signs users in (--redirect-uri or --device-flow)');
  if (c.backchannelSessionRequired && !c.backchannelLogout) issue('backchannelLogoutSessionRequired', 'only with --backchannel-logout-uri');
}

export const newClientSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    /** None for a client that signs no one in: an API (resourceIndicator) or a machine client (clientCredentials). */
    redirectUris: z.array(redirectUri).default([]),
    postLogoutRedirectUris: z.array(redirectUri).default([]),
    /**
     * Where the app starts a sign-in itself (OIDC Registration's initiate_login_uri, https): the "sign-in
     * expired" page links there. Without it, that page links to the origin of the first redirect URI.
     */
    initiateLoginUri: z.url({ protocol: /^https$/ }).optional(),
    public: z.boolean().default(false),
    firstParty: z.boolean().default(false),
    authMethod: z.enum(AUTH_METHODS).optional(),
    /** For private_key_jwt: a jwks_uri or an inline JWKS. */
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    grantTypes: z.array(z.enum(['authorization_code', 'refresh_token'])).default(['authorization_code', 'refresh_token']),
    /** How the app's ID tokens are signed: RS256 (the default, which every library verifies) or ES256 (smaller, faster). */
    idTokenAlg: z.enum(ID_TOKEN_ALGS).optional(),
    /** A machine client: access tokens for APIs on its own behalf (client_credentials), no user involved. */
    clientCredentials: z.boolean().default(false),
    /** A CLI or TV: the device authorization grant (RFC 8628); the person signs in on another screen. */
    deviceFlow: z.boolean().default(false),
    /** The API scopes a machine client may be granted; without them its tokens carry none. */
    clientCredentialsScopes: scopeList.optional(),
    /** The client is this API (RFC 8707 resource indicator): it may introspect the access tokens issued for it. */
    resourceIndicator: resourceIndicator.optional(),
    /** The scopes tokens for the API may carry. */
    resourceScopes: scopeList.optional(),
    /** The API may introspect any opaque access token too (an explicit grant by the admin). */
    introspectAny: z.boolean().optional(),
    pkce: z.enum(PKCE_MODES).optional(),
    idTokenClaims: z.enum(ID_TOKEN_CLAIMS).optional(),
    /** Where the app is told of ended sessions (OIDC Back-Channel Logout 1.0). */
    backchannelLogoutUri: backchannelLogoutUri.optional(),
    /** The logout token carries the session id (`sid`), and so does every ID token for the app. */
    backchannelLogoutSessionRequired: z.boolean().optional(),
  })
  .superRefine((c, ctx) => {
    const method = c.authMethod ?? (c.public ? 'none' : 'client_secret_basic');
    if (c.public && method !== 'none') ctx.addIssue({ code: 'custom', path: ['authMethod'], message: 'a public client authenticates with none' });
    if (!c.public && method === 'none') ctx.addIssue({ code: 'custom', path: ['authMethod'], message: 'use --public for a client without authentication' });
    if (method === 'private_key_jwt' && !c.jwksUri && !c.jwks) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'private_key_jwt needs --jwks-uri or --jwks-file' });
    }
    checkShape(
      {
        signIn: c.redirectUris.length > 0,
        deviceFlow: c.deviceFlow,
        public: c.public,
        clientCredentials: c.clientCredentials,
        clientCredentialsScopes: c.clientCredentialsScopes,
        resourceServer: c.resourceIndicator !== undefined,
        resourceFlag: c.resourceScopes !== undefined ? 'resourceScopes' : c.introspectAny !== undefined ? 'introspectAny' : undefined,
        pkce: c.pkce,
        idTokenClaims: c.idTokenClaims,
        backchannelLogout: c.backchannelLogoutUri !== undefined,
        backchannelSessionRequired: c.backchannelLogoutSessionRequired,
      },
      ctx,
    );
  });
export type NewClient = z.input<typeof newClientSchema>;

export interface CreatedClient {
  clientId: string;
  name: string;
  /** Shown once; null for clients without a secret. */
  clientSecret: string | null;
  metadata: ClientMetadata;
  /** The API this client was registered as. */
  resourceServer?: { indicator: string; scopes: string[]; introspectAny: boolean };
}

const secretContext = (clientId: string) => `client_secret:${clientId}`;
/** Clients read in a request are memoized for that request (src/db/request-memo.ts); a write forgets them. */
const CLIENT_MEMO = 'client:';

export function generateClientSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** An indicator another client already answers to: a value, with the holder's name, rather than a constraint error. */
export class IndicatorTaken extends Error {
  constructor(
    readonly indicator: string,
    readonly holder: string,
  ) {
    super(`--resource-server: ${indicator} is already registered to ${holder} (one client per API)`);
  }
}

async function guardIndicator<T>(db: Kysely<Database>, indicator: string | undefined, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const holder = indicator && (err as { code?: string }).code === '23505' ? await indicatorHolder(db, indicator) : undefined;
    if (holder !== undefined) throw new IndicatorTaken(indicator!, holder);
    throw err;
  }
}

/**
 * Grant and response types: code (and refresh) for an app that signs users in, the device grant (and refresh, as
 * for code) for a CLI or TV, client_credentials for a machine client.
 */
function flows(
  signIn: boolean,
  signInGrants: string[],
  deviceFlow: boolean,
  clientCredentials: boolean,
): Pick<ClientMetadata, 'grant_types' | 'response_types'> {
  const device = deviceFlow ? [DEVICE_CODE_GRANT, ...(signIn ? [] : signInGrants.filter((g) => g === 'refresh_token'))] : [];
  return {
    grant_types: [...new Set([...(signIn ? signInGrants : []), ...device, ...(clientCredentials ? ['client_credentials'] : [])])],
    response_types: signIn ? ['code'] : [],
  };
}

/**
 * 128 random bits, base64url, never starting with `-` or `_`: an id that
 * begins with `-` reads as an option to `twofold client show <id>` and to
 * most shells' tools, so such draws are taken again (1 in 32).
 */
export function newClientId(): string {
  for (;;) {
    const id = crypto.randomBytes(16).toString('base64url');
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

export async function createClient(db: Kysely<Database>, sealer: Sealer, input: NewClient): Promise<CreatedClient> {
  const c = newClientSchema.parse(input);
  const clientId = newClientId();
  const method: AuthMethod = c.authMethod ?? (c.public ? 'none' : 'client_secret_basic');
  const needsSecret = method === 'client_secret_basic' || method === 'client_secret_post';
  const clientSecret = needsSecret ? generateClientSecret() : null;
  const signIn = c.redirectUris.length > 0;
  const metadata: ClientMetadata = {
    client_name: c.name,
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris,
    ...(c.initiateLoginUri ? { initiate_login_uri: c.initiateLoginUri } : {}),
    ...flows(signIn, c.grantTypes, c.deviceFlow, c.clientCredentials),
    token_endpoint_auth_method: method,
    ...(c.jwksUri ? { jwks_uri: c.jwksUri } : {}),
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.idTokenAlg ? { id_token_signed_response_alg: c.idTokenAlg } : {}),
    ...(c.pkce ? { twofold_pkce: c.pkce } : {}),
    ...(c.idTokenClaims ? { twofold_id_token_claims: c.idTokenClaims } : {}),
    ...(c.clientCredentials ? { twofold_client_credentials_scope: (c.clientCredentialsScopes ?? []).join(' ') } : {}),
    ...(c.backchannelLogoutUri
      ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: c.backchannelLogoutSessionRequired ?? false }
      : {}),
  };
  const resourceServer = c.resourceIndicator
    ? { indicator: c.resourceIndicator, scopes: c.resourceScopes ?? [], introspectAny: c.introspectAny ?? false }
    : undefined;
  await guardIndicator(db, c.resourceIndicator, () =>
    db.transaction().execute(async (trx) => {
      await trx
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
      if (resourceServer) await saveResourceServer(trx, clientId, resourceServer);
    }),
  ).finally(() => forget(CLIENT_MEMO));
  return { clientId, name: c.name, clientSecret, metadata, resourceServer };
}

/** What `client update` may change about how a client is used; absent fields stay as they are. */
export const clientChangesSchema = z.object({
  /** Register the client as this API, or (null) end that registration. */
  resourceIndicator: resourceIndicator.nullable().optional(),
  resourceScopes: scopeList.optional(),
  introspectAny: z.boolean().optional(),
  clientCredentials: z.boolean().optional(),
  clientCredentialsScopes: scopeList.optional(),
  deviceFlow: z.boolean().optional(),
  pkce: z.enum(PKCE_MODES).optional(),
  idTokenClaims: z.enum(ID_TOKEN_CLAIMS).optional(),
  signUp: z.enum(SIGN_UP_MODES).optional(),
  /** Set the back-channel logout URI, or (null) stop back-channel logout for the app. */
  backchannelLogoutUri: backchannelLogoutUri.nullable().optional(),
  backchannelLogoutSessionRequired: z.boolean().optional(),
});
export type ClientChanges = z.input<typeof clientChangesSchema>;

/** The settings as stored, for `client show` and for checking a change against them. */
export interface ClientSettings {
  pkce?: (typeof PKCE_MODES)[number];
  idTokenClaims?: (typeof ID_TOKEN_CLAIMS)[number];
  /** Set for a machine client. */
  clientCredentialsScopes?: string[];
  /** The client may use the device authorization grant (RFC 8628). */
  deviceFlow: boolean;
  /** Whether its sign-in offers sign-up (when SIGN_UP is on). */
  signUp: (typeof SIGN_UP_MODES)[number];
  resourceServer?: ResourceServer;
  backchannelLogout?: { uri: string; sessionRequired: boolean };
}

export async function clientSettings(db: Kysely<Database>, row: ClientRow): Promise<ClientSettings> {
  const m = row.metadata;
  const resourceServer = await resourceServerOfClient(db, row.client_id);
  return {
    deviceFlow: (m.grant_types ?? []).includes(DEVICE_CODE_GRANT),
    signUp: m.twofold_sign_up === 'deny' ? 'deny' : 'allow',
    ...(m.twofold_pkce ? { pkce: m.twofold_pkce as ClientSettings['pkce'] } : {}),
    ...(m.twofold_id_token_claims ? { idTokenClaims: m.twofold_id_token_claims as ClientSettings['idTokenClaims'] } : {}),
    ...((m.grant_types ?? []).includes('client_credentials')
      ? {
          clientCredentialsScopes: String(m.twofold_client_credentials_scope ?? '')
            .split(' ')
            .filter(Boolean),
        }
      : {}),
    ...(resourceServer ? { resourceServer } : {}),
    ...(typeof m.backchannel_logout_uri === 'string'
      ? { backchannelLogout: { uri: m.backchannel_logout_uri, sessionRequired: m.backchannel_logout_session_required === true } }
      : {}),
  };
}

/**
 * Applies `client update`'s changes to one client, in one transaction, after checking that the result fits
 * together (the rules of `client add`). Returns what changed (for the audit trail), empty when nothing did.
 */
export async function updateClientSettings(db: Kysely<Database>, row: ClientRow, input: ClientChanges): Promise<Record<string, unknown>> {
  const changes = clientChangesSchema.parse(input);
  const current = await clientSettings(db, row);
  const signIn = row.metadata.redirect_uris.length > 0;
  const clientCredentials = changes.clientCredentials ?? current.clientCredentialsScopes !== undefined;
  const deviceFlow = changes.deviceFlow ?? current.deviceFlow;
  const indicator = changes.resourceIndicator === undefined ? current.resourceServer?.indicator : (changes.resourceIndicator ?? undefined);
  const backchannelUri = changes.backchannelLogoutUri === undefined ? current.backchannelLogout?.uri : (changes.backchannelLogoutUri ?? undefined);
  // The rules of `client add`, on the client as it would be, reported the same way (a ZodError naming the option).
  const shape = z.unknown().superRefine((_v, ctx) =>
    checkShape(
      {
        signIn,
        deviceFlow,
        public: isPublic(row),
        clientCredentials,
        clientCredentialsScopes: changes.clientCredentialsScopes,
        resourceServer: indicator !== undefined,
        resourceFlag: changes.resourceScopes !== undefined ? 'resourceScopes' : changes.introspectAny !== undefined ? 'introspectAny' : undefined,
        pkce: changes.pkce,
        idTokenClaims: changes.idTokenClaims,
        backchannelLogout: backchannelUri !== undefined,
        backchannelSessionRequired: changes.backchannelLogoutSessionRequired,
      },
      ctx,
    ),
  );
  shape.parse(undefined);

  const metadata: ClientMetadata = { ...row.metadata };
  const changed: Record<string, unknown> = {};
  const set = (key: string, value: unknown, label: string, shown: unknown = value) => {
    if (JSON.stringify(metadata[key]) === JSON.stringify(value)) return;
    if (value === undefined) delete metadata[key];
    else metadata[key] = value;
    changed[label] = shown;
  };
  if (changes.pkce) set('twofold_pkce', changes.pkce, 'pkce');
  if (changes.idTokenClaims) set('twofold_id_token_claims', changes.idTokenClaims, 'id_token_claims');
  if (changes.signUp) set('twofold_sign_up', changes.signUp, 'sign_up');
  const stored = (row.metadata.grant_types ?? []).filter((g) => g !== 'client_credentials' && g !== DEVICE_CODE_GRANT);
  // A machine client or an API turned into a device client gets refresh tokens, as `client add --device-flow` gives.
  const signInGrants = deviceFlow && !current.deviceFlow && !signIn && !stored.length ? ['refresh_token'] : stored;
  set('grant_types', flows(signIn, signInGrants, deviceFlow, clientCredentials).grant_types, 'grant_types');
  if (deviceFlow !== current.deviceFlow) changed.device_flow = deviceFlow;
  const scope = clientCredentials ? (changes.clientCredentialsScopes ?? current.clientCredentialsScopes ?? []).join(' ') : undefined;
  set('twofold_client_credentials_scope', scope, 'client_credentials_scope');
  set('backchannel_logout_uri', backchannelUri, 'backchannel_logout_uri', backchannelUri ?? null);
  const sessionRequired =
    backchannelUri === undefined ? undefined : (changes.backchannelLogoutSessionRequired ?? current.backchannelLogout?.sessionRequired ?? false);
  set('backchannel_logout_session_required', sessionRequired, 'backchannel_logout_session_required', sessionRequired ?? null);

  const server = indicator
    ? {
        indicator,
        scopes: changes.resourceScopes ?? (indicator === current.resourceServer?.indicator ? current.resourceServer.scopes : []),
        introspectAny: changes.introspectAny ?? (indicator === current.resourceServer?.indicator ? current.resourceServer.introspectAny : false),
      }
    : undefined;
  const was = current.resourceServer && {
    indicator: current.resourceServer.indicator,
    scopes: current.resourceServer.scopes,
    introspectAny: current.resourceServer.introspectAny,
  };
  const serverChanged = JSON.stringify(server) !== JSON.stringify(was);
  if (serverChanged) changed.resource_server = server ? { indicator: server.indicator, scopes: server.scopes, introspect_any: server.introspectAny } : null;
  if (!Object.keys(changed).length) return changed;

  await guardIndicator(db, server?.indicator, () =>
    db.transaction().execute(async (trx) => {
      await trx
        .updateTable('clients')
        .set({ metadata: JSON.stringify(metadata), updated_at: new Date() })
        .where('client_id', '=', row.client_id)
        .execute();
      if (serverChanged) await (server ? saveResourceServer(trx, row.client_id, server) : removeResourceServer(trx, row.client_id));
    }),
  ).finally(() => forget(CLIENT_MEMO));
  return changed;
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
  return db
    .transaction()
    .execute(async (trx) => {
      // Tokens and grants issued to the client go with it.
      await trx
        .deleteFrom('oidc_payloads')
        .where(({ eb, ref }) => eb(eb.fn('jsonb_extract_path_text', [ref('payload'), eb.val('clientId')]), '=', clientId))
        .execute();
      const result = await trx.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    })
    .finally(() => forget(CLIENT_MEMO));
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

/**
 * A registered redirect URI that is a path (`/account/callback`) is one of the issuer's own: the built-in account
 * center's client (migration 0014) is registered that way, so it follows ISSUER without a stored host.
 * `twofold client add` accepts absolute URIs only.
 */
export function resolveAgainstIssuer(metadata: ClientMetadata, issuer: string): ClientMetadata {
  const resolve = (uris: string[] | undefined) => uris?.map((uri) => (uri.startsWith('/') && !uri.startsWith('//') ? new URL(uri, `${issuer}/`).href : uri));
  const postLogout = resolve(metadata.post_logout_redirect_uris);
  // A path initiate_login_uri is for the "sign-in expired" page's link only; the provider requires an https URL there.
  const { initiate_login_uri: start, ...rest } = metadata;
  return {
    ...rest,
    ...(typeof start === 'string' && !start.startsWith('/') ? { initiate_login_uri: start } : {}),
    redirect_uris: resolve(metadata.redirect_uris) ?? [],
    ...(postLogout ? { post_logout_redirect_uris: postLogout } : {}),
  };
}

/** The metadata node-oidc-provider validates and uses, secret included; with `issuer`, path redirect URIs resolved against it. */
export function clientToProviderMetadata(row: ClientRow, sealer: Sealer, issuer?: string): Record<string, unknown> {
  return {
    ...(issuer ? resolveAgainstIssuer(row.metadata, issuer) : row.metadata),
    client_id: row.client_id,
    ...(row.secret_sealed ? { client_secret: sealer.openString(row.secret_sealed, secretContext(row.client_id)) } : {}),
    twofold_first_party: row.first_party,
    twofold_policy: row.policy,
  };
}

export function isPublic(row: ClientRow): boolean {
  return row.metadata.token_endpoint_auth_method === 'none';
}
