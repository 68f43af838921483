/**
 * A client's MFA policy from the command line: the flags shared by
 * `twofold client add` and `twofold client update`, validated and turned into
 * the client's policy document and `default_acr_values` metadata.
 */
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import type { ClientRow, Database } from '../../db/schema.ts';
import { clientPolicySchema, parsePolicy, PolicyDocumentError, type ClientPolicy } from '../../policy/documents.ts';
import { acrTableOf } from '../../mfa/requirement.ts';
import { recordAudit } from '../../security/audit.ts';
import { clientScope, savePolicy } from '../../policy/store.ts';
import type { Services } from '../../services.ts';
import { CliError } from '../io.ts';

export interface ClientPolicyOptions {
  mfa?: string;
  minAcr?: string;
  defaultAcrValues?: string[];
  factors?: string;
  maxAuthAge?: string;
  trustedDevices?: string;
  syncedPasskeys?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, ...value.split(' ').filter(Boolean)];

export function addClientPolicyOptions(cmd: Command): Command {
  return cmd
    .option('--mfa <mode>', 'off, optional or required (can only raise the global policy)')
    .option('--min-acr <value>', 'a minimum acr that requests cannot lower')
    .option('--default-acr-values <value>', 'acr_values used when a request sends none (repeatable)', collect)
    .option('--factors <ids>', 'comma-separated factors allowed for this app (e.g. only phishing-resistant ones; `twofold factors` lists them)')
    .option('--max-auth-age <seconds>', 'sessions older than this sign in again')
    .option('--trusted-devices <allow|deny>', 'whether a trusted device may stand in for the second factor')
    .option('--synced-passkeys <allow|deny>', 'deny: synced passkeys do not count for this app (device-bound keys do)');
}

export function hasPolicyOptions(o: ClientPolicyOptions): boolean {
  return [o.mfa, o.minAcr, o.defaultAcrValues, o.factors, o.maxAuthAge, o.trustedDevices, o.syncedPasskeys].some((v) => v !== undefined);
}

/** Merges the flags into the client's current policy and validates the result. */
export function policyFromOptions(
  services: Services,
  current: Record<string, unknown>,
  o: ClientPolicyOptions,
): { policy: ClientPolicy; defaultAcrValues?: string[] } {
  const next: Record<string, unknown> = { ...current };
  if (o.mfa !== undefined) next.mfa = o.mfa;
  if (o.minAcr !== undefined) next.minAcr = o.minAcr;
  if (o.factors !== undefined)
    next.factors = o.factors
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
  if (o.maxAuthAge !== undefined) next.maxAuthAge = /^\d+$/.test(o.maxAuthAge) ? Number(o.maxAuthAge) : o.maxAuthAge;
  if (o.trustedDevices !== undefined) next.trustedDevices = o.trustedDevices;
  if (o.syncedPasskeys !== undefined) next.syncedPasskeys = o.syncedPasskeys;
  let policy: ClientPolicy;
  try {
    policy = parsePolicy(clientPolicySchema, next, 'client policy');
  } catch (err) {
    if (err instanceof PolicyDocumentError)
      throw new CliError(
        err.message.replace('client policy: ', '--').replace(/^--(\w+)/, (_, f: string) => `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`),
      );
    throw err;
  }
  const acrTable = acrTableOf(services.config);
  if (policy.minAcr && !acrTable.levelOf(policy.minAcr))
    throw new CliError(`--min-acr: ${policy.minAcr} is not in the ACR table (${acrTable.values().join(', ')})`);
  for (const v of o.defaultAcrValues ?? []) if (!acrTable.levelOf(v)) throw new CliError(`--default-acr-values: ${v} is not in the ACR table`);
  // Any factor FACTORS loads, on or off here: the CLI may lack a channel the provider has.
  const known = services.factors.registry.known().map((f) => f.id);
  const unknown = (policy.factors ?? []).filter((f) => !known.includes(f));
  if (unknown.length) throw new CliError(`--factors: unknown factor(s) ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return { policy, defaultAcrValues: o.defaultAcrValues };
}

/**
 * Stores the app's policy: on the client row (what the provider reads) and as
 * a new version in policy_documents (scope `client:<client_id>`, like the
 * global and group documents: who changed what, when), in one transaction.
 * The version holds the policy document and, when set, the app's
 * `default_acr_values`.
 */
export async function applyClientPolicy(
  db: Kysely<Database>,
  row: ClientRow,
  policy: ClientPolicy,
  defaultAcrValues: string[] | undefined,
  actor: string,
): Promise<number> {
  const metadata = { ...row.metadata };
  if (defaultAcrValues) {
    if (defaultAcrValues.length) metadata.default_acr_values = defaultAcrValues;
    else delete metadata.default_acr_values;
  }
  const defaults = metadata.default_acr_values as string[] | undefined;
  const version = await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('clients')
      .set({ policy: JSON.stringify(policy), metadata: JSON.stringify(metadata), updated_at: new Date() })
      .where('client_id', '=', row.client_id)
      .execute();
    return savePolicy(trx, clientScope(row.client_id), { ...policy, ...(defaults ? { default_acr_values: defaults } : {}) }, actor);
  });
  await recordAudit(db, 'client.policy_changed', { clientId: row.client_id, actor }, { policy, default_acr_values: defaults ?? null, version });
  return version;
}
