/**
 * Gathers what the policy engine needs (the account's factors, its groups'
 * policies, the app's policy, the global policy, the request's acr_values and
 * essential acr) and asks it. The only place that turns a sign-in into a
 * PolicyInput: used by the provider's `mfa` prompt, the interaction pages and
 * `twofold policy explain` alike, so all three agree.
 */
import type { Services } from '../services.ts';
import type { Evidence } from '../../factors/types.ts';
import { decide, type ClientRequirement, type Decision, type FactorFacts, type PolicyInput } from '../policy/decide.ts';
import { AcrTable } from '../policy/acr-table.ts';
import { clientPolicyOf, deadlineFor, globalPolicy, policiesFor } from '../policy/store.ts';
import { findClientRow } from '../oidc/clients.ts';

export interface RequestFacts {
  acrValues: string[];
  essentialAcr?: string[];
}

export const acrTable = new AcrTable();

/** Reads acr_values and an essential `acr` in the claims parameter (id_token or userinfo). */
export function requestFacts(params: Record<string, unknown>): RequestFacts {
  const acrValues = typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
  let essentialAcr: string[] | undefined;
  const raw = params.claims;
  if (typeof raw === 'string' && raw) {
    try {
      const claims = JSON.parse(raw) as Record<string, Record<string, { essential?: boolean; value?: string; values?: string[] } | null>>;
      const acr = claims.id_token?.acr ?? claims.userinfo?.acr;
      if (acr?.essential) essentialAcr = acr.values ?? (acr.value ? [acr.value] : undefined);
    } catch {
      // The provider rejects malformed claims before any interaction.
    }
  }
  return { acrValues, essentialAcr };
}

export interface SignInFacts {
  /** '' before anyone is identified (the login page's first factors). */
  accountId: string;
  clientId?: string;
  request: RequestFacts;
  evidence: Evidence[];
  /** The browser presented a valid trusted-device cookie for this account. */
  trustedDevice?: boolean;
  now?: number;
}

export async function policyInput(services: Services, facts: SignInFacts): Promise<PolicyInput> {
  const { db, config } = services;
  const engine = services.factors;
  // Before anyone is identified (the login page asks with no account) there are no credentials or groups to read.
  const identified = facts.accountId !== '';
  const [enrolledRows, { global, groups }, clientRow] = await Promise.all([
    identified ? engine.enrolled(facts.accountId) : [],
    identified ? policiesFor(db, config.MFA, facts.accountId) : globalPolicy(db, config.MFA).then((global) => ({ global, groups: [] })),
    facts.clientId ? findClientRow(db, facts.clientId) : Promise.resolve(undefined),
  ]);
  const enrolled = enrolledRows.map((r) => engine.facts(r.factor.id)!);
  const available: FactorFacts[] = engine.registry.all().map((r) => engine.facts(r.factor.id)!);
  let client: ClientRequirement | undefined;
  if (clientRow && clientRow.client_id === facts.clientId) {
    const p = clientPolicyOf(clientRow.policy, clientRow.name);
    client = { name: clientRow.name, mfa: p.mfa, minLevel: p.minAcr ? acrTable.levelOf(p.minAcr) : undefined, factors: p.factors, trustedDevices: p.trustedDevices, syncedPasskeys: p.syncedPasskeys };
  }
  return {
    mfa: global.policy.mfa,
    minLevel: global.policy.minLevel,
    factors: global.policy.factors,
    levelMaxAge: global.policy.levelMaxAge,
    trustedDevices: global.policy.trustedDevices.enabled,
    groups: groups.map((g) => ({ name: g.group, level: g.policy.level, factors: g.policy.factors, enrollmentDeadline: deadlineFor(g) })),
    client,
    enrolled,
    available,
    request: facts.request,
    evidence: facts.evidence,
    trustedDevice: facts.trustedDevice,
    now: facts.now,
    acrTable,
  };
}

export async function evaluate(services: Services, facts: SignInFacts): Promise<Decision> {
  return decide(await policyInput(services, facts));
}
