import fs from 'node:fs';
import type { Command } from 'commander';
import { ZodError } from 'zod';
import {
  clientSettings,
  createClient,
  findClientRow,
  IndicatorTaken,
  isPublic,
  listClients,
  pkceRequired,
  removeClient,
  rotateClientSecret,
  updateClientSettings,
  AUTH_METHODS,
  ID_TOKEN_ALGS,
  ID_TOKEN_CLAIMS,
  PKCE_MODES,
  type ClientChanges,
} from '../../oidc/clients.ts';
import type { ClientRow } from '../../db/schema.ts';
import type { Services } from '../../services.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printFields, printJson, printTable } from '../io.ts';
import { describeZodError, usageCheck, type CommandContext } from '../command.ts';
import { addClientPolicyOptions, applyClientPolicy, hasPolicyOptions, policyFromOptions, type ClientPolicyOptions } from './client-policy.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** What `client show` and `client list --json` print: the stored settings, and what PKCE and ID token claims come to. */
async function view(services: Services, row: ClientRow) {
  const settings = await clientSettings(services.db, row);
  const signIn = row.metadata.redirect_uris.length > 0;
  return {
    client_id: row.client_id,
    name: row.name,
    type: isPublic(row) ? 'public' : 'confidential',
    first_party: row.first_party,
    token_endpoint_auth_method: row.metadata.token_endpoint_auth_method,
    redirect_uris: row.metadata.redirect_uris,
    post_logout_redirect_uris: row.metadata.post_logout_redirect_uris ?? [],
    ...(typeof row.metadata.initiate_login_uri === 'string' ? { initiate_login_uri: row.metadata.initiate_login_uri } : {}),
    grant_types: row.metadata.grant_types ?? [],
    // RFC 8628: a CLI or TV may get tokens a person approves at the verification page (works only while DEVICE_FLOW is on).
    device_flow: settings.deviceFlow,
    // Whether its sign-in page offers "Create an account" (only while SIGN_UP is on).
    sign_up: settings.signUp,
    // For apps that sign users in: whether PKCE is required (its own setting, else PKCE_REQUIRED), and what the ID token holds.
    ...(signIn
      ? {
          pkce: pkceRequired({ clientAuthMethod: row.metadata.token_endpoint_auth_method, twofold_pkce: settings.pkce }, services.config.PKCE_REQUIRED)
            ? 'required'
            : 'optional',
          id_token_claims: settings.idTokenClaims ?? 'full',
          // OIDC Back-Channel Logout 1.0: where the app is told of ended sessions (none: it is not told).
          backchannel_logout_uri: settings.backchannelLogout?.uri ?? null,
          backchannel_logout_session_required: settings.backchannelLogout?.sessionRequired ?? false,
        }
      : {}),
    ...(settings.clientCredentialsScopes ? { client_credentials_scopes: settings.clientCredentialsScopes } : {}),
    ...(settings.resourceServer
      ? {
          resource_server: {
            indicator: settings.resourceServer.indicator,
            scopes: settings.resourceServer.scopes,
            introspect_any: settings.resourceServer.introspectAny,
          },
        }
      : {}),
    policy: row.policy,
    default_acr_values: row.metadata.default_acr_values as string[] | undefined,
    created_at: row.created_at,
  };
}

/** A `client update` change the client refused: its message names the option. */
function changeError(err: unknown): never {
  if (err instanceof ZodError) throw new CliError(describeZodError(err));
  if (err instanceof IndicatorTaken) throw new CliError(err.message);
  throw err;
}

/** The flags shared by `client add` and `client update` that say how a client is used (beyond signing users in). */
interface UsageOptions {
  resourceServer?: string | false;
  resourceScopes?: string;
  introspectAny?: boolean;
  clientCredentials?: boolean;
  scope?: string;
  deviceFlow?: boolean;
  pkce?: string;
  idTokenClaims?: string;
  signUp?: string;
  backchannelLogoutUri?: string | false;
  backchannelLogoutSessionRequired?: boolean;
}

function usageChanges(o: UsageOptions): ClientChanges {
  return {
    ...(o.resourceServer !== undefined ? { resourceIndicator: o.resourceServer === false ? null : o.resourceServer } : {}),
    ...(o.resourceScopes !== undefined ? { resourceScopes: o.resourceScopes } : {}),
    ...(o.introspectAny !== undefined ? { introspectAny: o.introspectAny } : {}),
    ...(o.clientCredentials !== undefined ? { clientCredentials: o.clientCredentials } : {}),
    ...(o.scope !== undefined ? { clientCredentialsScopes: o.scope } : {}),
    ...(o.deviceFlow !== undefined ? { deviceFlow: o.deviceFlow } : {}),
    ...(o.pkce !== undefined ? { pkce: o.pkce as never } : {}),
    ...(o.idTokenClaims !== undefined ? { idTokenClaims: o.idTokenClaims as never } : {}),
    ...(o.signUp !== undefined ? { signUp: o.signUp as never } : {}),
    ...(o.backchannelLogoutUri !== undefined ? { backchannelLogoutUri: o.backchannelLogoutUri === false ? null : o.backchannelLogoutUri } : {}),
    ...(o.backchannelLogoutSessionRequired !== undefined ? { backchannelLogoutSessionRequired: o.backchannelLogoutSessionRequired } : {}),
  };
}

/** A validation failure of `client add`, naming the option and the value given. */
function badInput(err: ZodError, opts: { redirectUri: string[]; postLogoutRedirectUri?: string[]; backchannelLogoutUri?: string }): CliError {
  const [field, index] = err.issues[0]!.path;
  const values: Record<string, string[] | undefined> = { redirectUris: opts.redirectUri, postLogoutRedirectUris: opts.postLogoutRedirectUri };
  const given =
    typeof field === 'string' && typeof index === 'number' ? values[field]?.[index] : field === 'backchannelLogoutUri' ? opts.backchannelLogoutUri : undefined;
  return new CliError(`${describeZodError(err)}${given === undefined ? '' : ` (got ${JSON.stringify(given)})`}`);
}

export function registerClients(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const requireClient = async (name: string) => {
    const row = await findClientRow(ctx.services.db, name);
    if (!row) throw new CliError(`no client named ${name}`);
    return row;
  };
  const client = program.command('client').description('manage relying apps (OIDC clients)');

  const add = addClientPolicyOptions(
    client
      .command('add <name>')
      .description('register an app, an API or a machine client; prints its client_id and, for confidential clients, its secret (shown once)'),
  )
    .option('--redirect-uri <uri>', 'where the app receives the result (repeatable; an app that signs users in)', collect)
    .option('--post-logout-redirect-uri <uri>', 'where the app may send users after sign-out (repeatable)', collect)
    .option('--initiate-login-uri <uri>', 'where the app starts a sign-in (https): the way back from an expired sign-in')
    .option('--public', 'a public client (single-page or native app): no secret, PKCE required')
    .option('--first-party', 'trusted app of your own: no consent page')
    .option('--auth-method <method>', `token endpoint authentication (${AUTH_METHODS.join(', ')})`)
    .option('--jwks-uri <uri>', 'for private_key_jwt: where the app publishes its keys')
    .option('--jwks-file <file>', "for private_key_jwt: a JSON file with the app's public JWKS")
    .option('--no-refresh-tokens', 'do not issue refresh tokens to this app')
    .option('--id-token-alg <alg>', `how the app's ID tokens are signed (${ID_TOKEN_ALGS.join(', ')}; default RS256)`)
    .option('--id-token-claims <mode>', `${ID_TOKEN_CLAIMS.join(' or ')}: whether the ID token carries the granted profile and email claims (default full)`)
    .option('--pkce <mode>', `${PKCE_MODES.join(' or ')}: optional lets this confidential app sign in without PKCE (default: PKCE_REQUIRED)`)
    .option('--resource-server <indicator>', 'this client is the API with this resource indicator (RFC 8707): it may introspect tokens issued for it')
    .option('--resource-scopes <scopes>', 'with --resource-server: the scopes tokens for the API may carry ("read write")')
    .option('--introspect-any', 'with --resource-server: the API may also introspect any opaque access token')
    .option('--client-credentials', 'a machine client: tokens for APIs on its own behalf (client_credentials), no redirect URIs')
    .option('--scope <scopes>', 'with --client-credentials: the API scopes it may be granted ("read write")')
    .option('--device-flow', 'a CLI or TV: signs users in with the device authorization grant (RFC 8628); with --public, no secret')
    .option('--backchannel-logout-uri <uri>', 'where the app is told of ended sessions (OIDC Back-Channel Logout; https, or http on localhost)')
    .option('--backchannel-logout-session-required', 'with --backchannel-logout-uri: logout tokens (and ID tokens) carry the session id, sid')
    .option('--json', 'print JSON');
  usageCheck(add, (cmd) => {
    const o = cmd.opts<{ redirectUri?: string[]; resourceServer?: string; clientCredentials?: boolean; deviceFlow?: boolean }>();
    if (!o.redirectUri?.length && !o.resourceServer && !o.clientCredentials && !o.deviceFlow) {
      cmd.error(
        'error: one of --redirect-uri <uri> (an app), --resource-server <indicator> (an API), --client-credentials (a machine client) or --device-flow (a CLI or TV) is required',
      );
    }
  });
  add.action(
    async (
      name: string,
      opts: {
        redirectUri?: string[];
        postLogoutRedirectUri?: string[];
        initiateLoginUri?: string;
        public?: boolean;
        firstParty?: boolean;
        authMethod?: string;
        jwksUri?: string;
        jwksFile?: string;
        refreshTokens: boolean;
        idTokenAlg?: string;
        json?: boolean;
      } & ClientPolicyOptions &
        UsageOptions,
    ) => {
      const { db, sealer } = ctx.services;
      if (await findClientRow(db, name)) throw new CliError(`a client named ${name} already exists`);
      // Validate the policy flags before anything is stored.
      const policy = hasPolicyOptions(opts) ? policyFromOptions(ctx.services, {}, opts) : undefined;
      let jwks: unknown;
      if (opts.jwksFile) {
        try {
          jwks = JSON.parse(fs.readFileSync(opts.jwksFile, 'utf8'));
        } catch (err) {
          throw new CliError(`--jwks-file: cannot read a JSON JWKS from ${opts.jwksFile} (${(err as Error).message})`);
        }
      }
      const usage = usageChanges(opts);
      const created = await createClient(db, sealer, {
        name,
        redirectUris: opts.redirectUri ?? [],
        postLogoutRedirectUris: opts.postLogoutRedirectUri ?? [],
        initiateLoginUri: opts.initiateLoginUri,
        public: opts.public ?? false,
        firstParty: opts.firstParty ?? false,
        authMethod: opts.authMethod as never,
        jwksUri: opts.jwksUri,
        jwks: jwks as never,
        grantTypes: opts.refreshTokens ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
        idTokenAlg: opts.idTokenAlg as never,
        clientCredentials: usage.clientCredentials ?? false,
        clientCredentialsScopes: usage.clientCredentialsScopes,
        deviceFlow: usage.deviceFlow ?? false,
        resourceIndicator: usage.resourceIndicator ?? undefined,
        resourceScopes: usage.resourceScopes,
        introspectAny: usage.introspectAny,
        pkce: usage.pkce,
        idTokenClaims: usage.idTokenClaims,
        backchannelLogoutUri: usage.backchannelLogoutUri ?? undefined,
        backchannelLogoutSessionRequired: usage.backchannelLogoutSessionRequired,
      }).catch((err: unknown) => {
        if (err instanceof ZodError) {
          throw badInput(err, {
            redirectUri: opts.redirectUri ?? [],
            postLogoutRedirectUri: opts.postLogoutRedirectUri,
            backchannelLogoutUri: usage.backchannelLogoutUri ?? undefined,
          });
        }
        if (err instanceof IndicatorTaken) throw new CliError(err.message);
        // Two runs racing for one name: the unique index decides.
        if ((err as { code?: string }).code === '23505') throw new CliError(`a client named ${name} already exists`);
        throw err;
      });
      const { twofold_pkce: pkce, twofold_id_token_claims: idTokenClaims, twofold_client_credentials_scope: machineScope } = created.metadata;
      await recordAudit(
        db,
        'client.created',
        { clientId: created.clientId, actor },
        {
          name,
          ...(pkce ? { pkce } : {}),
          ...(idTokenClaims ? { id_token_claims: idTokenClaims } : {}),
          ...(machineScope !== undefined ? { client_credentials_scope: machineScope } : {}),
          ...(usage.deviceFlow ? { device_flow: true } : {}),
          ...(created.metadata.backchannel_logout_uri
            ? {
                backchannel_logout_uri: created.metadata.backchannel_logout_uri,
                backchannel_logout_session_required: created.metadata.backchannel_logout_session_required,
              }
            : {}),
          ...(created.resourceServer
            ? {
                resource_server: {
                  indicator: created.resourceServer.indicator,
                  scopes: created.resourceServer.scopes,
                  introspect_any: created.resourceServer.introspectAny,
                },
              }
            : {}),
        },
      );
      if (policy) await applyClientPolicy(db, (await findClientRow(db, created.clientId))!, policy.policy, policy.defaultAcrValues, actor);
      if (opts.json) {
        const server = created.resourceServer && {
          resource_server: {
            indicator: created.resourceServer.indicator,
            scopes: created.resourceServer.scopes,
            introspect_any: created.resourceServer.introspectAny,
          },
        };
        printJson(io, {
          client_id: created.clientId,
          client_secret: created.clientSecret,
          name,
          ...created.metadata,
          ...server,
          ...(policy?.defaultAcrValues ? { default_acr_values: policy.defaultAcrValues } : {}),
          policy: policy?.policy ?? {},
        });
        return;
      }
      io.out(`client_id:     ${created.clientId}\n`);
      if (created.clientSecret)
        io.out(
          `client_secret: ${created.clientSecret}\n(store the secret now: it is not shown again; \`twofold client rotate-secret ${name}\` makes a new one)\n`,
        );
    },
  );

  const update = addClientPolicyOptions(
    client
      .command('update <name>')
      .description("change an app's MFA policy, its first-party flag, or how it is used (API, machine client, PKCE, ID token claims)"),
  )
    .option('--first-party', 'trusted app of your own: no consent page')
    .option('--third-party', 'ask users for consent')
    .option('--clear-policy', "drop the app's policy and default acr values before applying the other flags")
    .option('--resource-server <indicator>', 'register the client as the API with this resource indicator (RFC 8707)')
    .option('--no-resource-server', 'the client is no longer an API')
    .option('--resource-scopes <scopes>', 'the scopes tokens for its API may carry ("read write")')
    .option('--introspect-any', 'its API may also introspect any opaque access token')
    .option('--no-introspect-any', 'its API introspects only the tokens issued for it')
    .option('--client-credentials', 'let it get tokens for APIs on its own behalf (client_credentials)')
    .option('--no-client-credentials', 'stop that')
    .option('--scope <scopes>', 'the API scopes a machine client may be granted ("read write")')
    .option('--device-flow', 'let it sign users in with the device authorization grant (RFC 8628), for a CLI or TV')
    .option('--no-device-flow', 'stop that')
    .option('--pkce <mode>', `${PKCE_MODES.join(' or ')} (optional only for a confidential app)`)
    .option('--id-token-claims <mode>', ID_TOKEN_CLAIMS.join(' or '))
    .option('--sign-up <mode>', 'allow or deny: whether its sign-in page offers "Create an account" (only while SIGN_UP is on; default allow)')
    .option('--backchannel-logout-uri <uri>', 'where the app is told of ended sessions (OIDC Back-Channel Logout; https, or http on localhost)')
    .option('--no-backchannel-logout-uri', 'stop telling the app of ended sessions')
    .option('--backchannel-logout-session-required', 'logout tokens (and ID tokens) carry the session id, sid')
    .option('--no-backchannel-logout-session-required', 'logout tokens carry no sid')
    .option('--json', 'print JSON');
  update.action(
    async (name: string, opts: ClientPolicyOptions & UsageOptions & { firstParty?: boolean; thirdParty?: boolean; clearPolicy?: boolean; json?: boolean }) => {
      const { db } = ctx.services;
      const changesPolicy = hasPolicyOptions(opts) || !!opts.clearPolicy;
      const changesParty = !!(opts.firstParty || opts.thirdParty);
      const usage = usageChanges(opts);
      const changesUsage = Object.keys(usage).length > 0;
      // Nothing to do is a usage mistake (exit 2, like a missing required option): nothing is stored or audited.
      if (!changesPolicy && !changesParty && !changesUsage)
        update.error('nothing changed: give policy flags, --clear-policy, --first-party, --third-party, or settings such as --pkce or --resource-server');
      if (opts.firstParty && opts.thirdParty) throw new CliError('--first-party and --third-party contradict each other');
      const row = await requireClient(name);
      const said: string[] = [];
      let changed = changesPolicy;
      // Every flag is checked before anything is stored: the policy flags here, how the client is used in updateClientSettings.
      const policyChange = changesPolicy ? policyFromOptions(ctx.services, opts.clearPolicy ? {} : row.policy, opts) : undefined;
      // How the client is used: checked as a whole (a public app cannot relax PKCE), then stored in one transaction.
      if (changesUsage) {
        const what = await updateClientSettings(db, row, usage).catch(changeError);
        if (Object.keys(what).length) {
          await recordAudit(db, 'client.updated', { clientId: row.client_id, actor }, what);
          said.push(
            Object.entries(what)
              .map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(', '),
          );
          changed = true;
        } else said.push('already set as given');
      }
      // Only the policy flags store a policy version (and audit client.policy_changed).
      if (policyChange) {
        const { policy, defaultAcrValues } = policyChange;
        // Read again: the metadata may have just changed above, and the policy's default_acr_values live there too.
        const current = (await findClientRow(db, row.client_id))!;
        const version = await applyClientPolicy(db, current, policy, opts.clearPolicy && !defaultAcrValues ? [] : defaultAcrValues, actor);
        const stored = (await findClientRow(db, row.client_id))!;
        const defaults = stored.metadata.default_acr_values as string[] | undefined;
        said.push(`policy ${JSON.stringify(stored.policy)}${defaults ? `, default_acr_values ${defaults.join(' ')}` : ''} (version ${version})`);
      }
      if (changesParty) {
        const firstParty = !!opts.firstParty;
        const label = firstParty ? 'first-party (no consent page)' : 'third-party (users are asked for consent)';
        if (row.first_party === firstParty) said.push(`already ${label}`);
        else {
          await db.updateTable('clients').set({ first_party: firstParty, updated_at: new Date() }).where('client_id', '=', row.client_id).execute();
          await recordAudit(db, 'client.updated', { clientId: row.client_id, actor }, { first_party: firstParty });
          said.push(`now ${label}`);
          changed = true;
        }
      }
      const updated = await view(ctx.services, (await findClientRow(db, row.client_id))!);
      if (opts.json) printJson(io, updated);
      else if (changed) io.out(`updated ${row.name}: ${said.join('; ')}\n`);
      else io.out(`nothing changed: ${row.name} is ${said.join('; ')}\n`);
    },
  );

  client
    .command('list')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await Promise.all((await listClients(ctx.services.db)).map((row) => view(ctx.services, row)));
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['name', 'client_id', 'type', 'first_party', 'redirect_uris']);
    });

  client
    .command('show <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const v = await view(ctx.services, await requireClient(name));
      if (opts.json) printJson(io, v);
      else printFields(io, v, { join: ' ' });
    });

  client
    .command('remove <name>')
    .description('delete an app and every token issued to it')
    .action(async (name: string) => {
      const { db } = ctx.services;
      const row = await requireClient(name);
      await removeClient(db, row.client_id);
      await recordAudit(db, 'client.removed', { clientId: row.client_id, actor }, { name: row.name });
      io.out(`removed ${row.name}\n`);
    });

  client
    .command('rotate-secret <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const { db, sealer } = ctx.services;
      const row = await requireClient(name);
      if (!row.secret_sealed) throw new CliError(`${row.name} has no client secret (public or private_key_jwt)`);
      const secret = await rotateClientSecret(db, sealer, row.client_id);
      await recordAudit(db, 'client.secret_rotated', { clientId: row.client_id, actor });
      if (opts.json) printJson(io, { client_id: row.client_id, client_secret: secret });
      else io.out(`client_secret: ${secret}\n(the old secret no longer works)\n`);
    });
}
