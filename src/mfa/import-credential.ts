/**
 * An administrator brings over a credential made elsewhere (a migration from
 * another system): the factor checks the input (its `importCredential`), and
 * the engine stores what it returns as an enrolment would (the secret sealed,
 * one credential per account where the factor allows only one) and audits it
 * with the administrator as actor. Nothing here knows any factor.
 */
import type { Account } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { factorAccount } from './engine.ts';

export type ImportOutcome = { ok: true; credentialId: string; label: string } | { ok: false; problem: string };

/** `label`: the administrator's name for it; without one, the factor's default (in DEFAULT_LANGUAGE). */
export async function importCredential(
  services: Services,
  factorId: string,
  account: Account,
  input: Record<string, string>,
  label: string | undefined,
  audit: AuditContext,
): Promise<ImportOutcome> {
  const { registry, store } = services.factors;
  const registered = registry.getKnown(factorId);
  const importable = () =>
    registry
      .known()
      .filter((f) => f.importCredential)
      .map((f) => f.id)
      .join(', ') || 'none';
  if (!registered)
    return {
      ok: false,
      problem: `no factor ${factorId} (FACTORS loads: ${registry
        .known()
        .map((f) => f.id)
        .join(', ')})`,
    };
  const importer = registered.factor.importCredential;
  if (!importer) return { ok: false, problem: `factor ${factorId} cannot import a credential (factors that can: ${importable()})` };
  const names = Object.keys(importer.fields);
  const unknown = Object.keys(input).filter((name) => !Object.hasOwn(importer.fields, name));
  if (unknown.length) return { ok: false, problem: `factor ${factorId} takes no ${unknown.join(', ')} (it takes ${names.join(', ')})` };
  const missing = names.filter((name) => importer.fields[name]!.required && !input[name]);
  if (missing.length) return { ok: false, problem: `factor ${factorId} needs ${missing.join(', ')}` };
  const result = await importer.credential({ account: factorAccount(account), settings: registered.settings }, input);
  if (!result.ok) return { ok: false, problem: result.field ? `${result.field}: ${result.problem}` : result.problem };
  const { catalogue, db } = services;
  const named = label ?? result.credential.label;
  const shown = typeof named === 'string' ? named : catalogue.text(catalogue.defaultLanguage, named.key, named.params);
  const { lookupKey } = result.credential;
  const taken: ImportOutcome = { ok: false, problem: 'this credential is already registered (to this or another account)' };
  if (lookupKey && (await store.lookupKeyTaken(lookupKey))) return taken;
  let credentialId: string;
  try {
    credentialId = await store.insert(account.id, factorId, { ...result.credential, label: shown }, { replaceFactor: !registered.factor.multiple });
  } catch (err) {
    // Two imports of one credential racing: the unique index lets one in.
    if (lookupKey && (err as { code?: string }).code === '23505') return taken;
    throw err;
  }
  await recordAudit(db, 'factor.imported', { ...audit, accountId: account.id }, { factor: factorId, credential: credentialId, label: shown });
  return { ok: true, credentialId, label: shown };
}
