import fs from 'node:fs';
import type { Command } from 'commander';
import { ZodError } from 'zod';
import { createClient, findClientRow, isPublic, listClients, removeClient, rotateClientSecret, AUTH_METHODS, ID_TOKEN_ALGS } from '../../oidc/clients.ts';
import type { ClientRow } from '../../db/schema.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printFields, printJson, printTable } from '../io.ts';
import { describeZodError, type CommandContext } from '../run.ts';
import { addClientPolicyOptions, applyClientPolicy, hasPolicyOptions, policyFromOptions, type ClientPolicyOptions } from './client-policy.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function view(row: ClientRow) {
  return {
    client_id: row.client_id,
    name: row.name,
    type: isPublic(row) ? 'public' : 'confidential',
    first_party: row.first_party,
    token_endpoint_auth_method: row.metadata.token_endpoint_auth_method,
    redirect_uris: row.metadata.redirect_uris,
    post_logout_redirect_uris: row.metadata.post_logout_redirect_uris ?? [],
    grant_types: row.metadata.grant_types ?? [],
    policy: row.policy,
    default_acr_values: row.metadata.default_acr_values as string[] | undefined,
    created_at: row.created_at,
  };
}

/** A validation failure of `client add`, naming the option and the value given. */
function badInput(err: ZodError, opts: { redirectUri: string[]; postLogoutRedirectUri?: string[] }): CliError {
  const [field, index] = err.issues[0]!.path;
  const values: Record<string, string[] | undefined> = { redirectUris: opts.redirectUri, postLogoutRedirectUris: opts.postLogoutRedirectUri };
  const given = typeof field === 'string' && typeof index === 'number' ? values[field]?.[index] : undefined;
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

  addClientPolicyOptions(client
    .command('add <name>')
    .description('register an app; prints its client_id and, for confidential apps, its secret (shown once)'))
    .requiredOption('--redirect-uri <uri>', 'where the app receives the result (repeatable)', collect)
    .option('--post-logout-redirect-uri <uri>', 'where the app may send users after sign-out (repeatable)', collect)
    .option('--public', 'a public client (single-page or native app): no secret, PKCE required')
    .option('--first-party', 'trusted app of your own: no consent page')
    .option('--auth-method <method>', `token endpoint authentication (${AUTH_METHODS.join(', ')})`)
    .option('--jwks-uri <uri>', 'for private_key_jwt: where the app publishes its keys')
    .option('--jwks-file <file>', 'for private_key_jwt: a JSON file with the app\'s public JWKS')
    .option('--no-refresh-tokens', 'do not issue refresh tokens to this app')
    .option('--id-token-alg <alg>', `how the app's ID tokens are signed (${ID_TOKEN_ALGS.join(', ')}; default RS256)`)
    .option('--json', 'print JSON')
    .action(async (name: string, opts: {
      redirectUri: string[]; postLogoutRedirectUri?: string[]; public?: boolean; firstParty?: boolean; authMethod?: string;
      jwksUri?: string; jwksFile?: string; refreshTokens: boolean; idTokenAlg?: string; json?: boolean;
    } & ClientPolicyOptions) => {
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
      const created = await createClient(db, sealer, {
        name,
        redirectUris: opts.redirectUri,
        postLogoutRedirectUris: opts.postLogoutRedirectUri ?? [],
        public: opts.public ?? false,
        firstParty: opts.firstParty ?? false,
        authMethod: opts.authMethod as never,
        jwksUri: opts.jwksUri,
        jwks: jwks as never,
        grantTypes: opts.refreshTokens ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
        idTokenAlg: opts.idTokenAlg as never,
      }).catch((err: unknown) => {
        if (err instanceof ZodError) throw badInput(err, opts);
        // Two runs racing for one name: the unique index decides.
        if ((err as { code?: string }).code === '23505') throw new CliError(`a client named ${name} already exists`);
        throw err;
      });
      await recordAudit(db, 'client.created', { clientId: created.clientId, actor }, { name });
      if (policy) await applyClientPolicy(db, (await findClientRow(db, created.clientId))!, policy.policy, policy.defaultAcrValues, actor);
      if (opts.json) {
        printJson(io, { client_id: created.clientId, client_secret: created.clientSecret, name, ...created.metadata, ...(policy?.defaultAcrValues ? { default_acr_values: policy.defaultAcrValues } : {}), policy: policy?.policy ?? {} });
        return;
      }
      io.out(`client_id:     ${created.clientId}\n`);
      if (created.clientSecret) io.out(`client_secret: ${created.clientSecret}\n(store the secret now: it is not shown again; \`twofold client rotate-secret ${name}\` makes a new one)\n`);
    });

  const update = addClientPolicyOptions(client
    .command('update <name>')
    .description("change an app's MFA policy and/or its first-party flag"))
    .option('--first-party', 'trusted app of your own: no consent page')
    .option('--third-party', 'ask users for consent')
    .option('--clear-policy', 'drop the app\'s policy and default acr values before applying the other flags')
    .option('--json', 'print JSON');
  update.action(async (name: string, opts: ClientPolicyOptions & { firstParty?: boolean; thirdParty?: boolean; clearPolicy?: boolean; json?: boolean }) => {
    const { db } = ctx.services;
    const changesPolicy = hasPolicyOptions(opts) || !!opts.clearPolicy;
    const changesParty = !!(opts.firstParty || opts.thirdParty);
    // Nothing to do is a usage mistake (exit 2, like a missing required option): nothing is stored or audited.
    if (!changesPolicy && !changesParty) update.error('nothing changed: give policy flags, --clear-policy, --first-party or --third-party');
    if (opts.firstParty && opts.thirdParty) throw new CliError('--first-party and --third-party contradict each other');
    const row = await requireClient(name);
    const said: string[] = [];
    let changed = changesPolicy;
    // Only the policy flags store a policy version (and audit client.policy_changed).
    if (changesPolicy) {
      const base = opts.clearPolicy ? {} : row.policy;
      const { policy, defaultAcrValues } = policyFromOptions(ctx.services, base, opts);
      const version = await applyClientPolicy(db, row, policy, opts.clearPolicy && !defaultAcrValues ? [] : defaultAcrValues, actor);
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
    const updated = view((await findClientRow(db, row.client_id))!);
    if (opts.json) printJson(io, updated);
    else if (changed) io.out(`updated ${row.name}: ${said.join('; ')}\n`);
    else io.out(`nothing changed: ${row.name} is ${said.join('; ')}\n`);
  });

  client
    .command('list')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = (await listClients(ctx.services.db)).map(view);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['name', 'client_id', 'type', 'first_party', 'redirect_uris']);
    });

  client
    .command('show <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const v = view(await requireClient(name));
      if (opts.json) printJson(io, v);
      else printFields(io, v, { join: ' ' });
    });

  client.command('remove <name>').description('delete an app and every token issued to it').action(async (name: string) => {
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
