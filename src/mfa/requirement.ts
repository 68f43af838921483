/**
 * Gathers what the policy engine needs (the account's factors, its groups'
 * policies, the app's policy, the global policy, the request's acr_values and
 * essential acr) and asks it. The only place that turns a sign-in into a
 * PolicyInput: used by the provider's `mfa` prompt, the interaction pages and
 * `twofold policy explain` alike, so all three agree.
 */
import { sql } from 'kysely';
import type { Services } from '../services.ts';
import type { Config } from '../config.ts';
import type { TrustedDevice } from './trusted-devices.ts';
import type { CredentialRow } from '../db/schema.ts';
import type { Evidence } from '../../factors/types.ts';
import { decide, type ClientRequirement, type Decision, type FactorFacts, type PolicyInput } from '../policy/decide.ts';
import { AcrTable } from '../policy/acr-table.ts';
import { inRequestScope } from '../db/request-memo.ts';
import { clientPolicyOf, deadlineFor, globalPolicy, holdPolicies, policiesFor, policiesHeld, policyRowsQuery, type PolicyRow } from '../policy/store.ts';
import { findClientRow } from '../oidc/clients.ts';
import { essentialAcrRequests } from '../oidc/claims-parameter.ts';

export interface RequestFacts {
  acrValues: string[];
  /** Each essential `acr` request (the ID token's, then userinfo's): every one must be met by one of its values. */
  essentialAcr?: string[][];
}

const tables = new WeakMap<Config, AcrTable>();

/** The configured ACR table (ACR_VALUES), one per configuration. */
export function acrTableOf(config: Config): AcrTable {
  let table = tables.get(config);
  if (!table) tables.set(config, (table = new AcrTable(config.ACR_VALUES)));
  return table;
}

/**
 * Reads acr_values and the essential `acr` requests of the claims parameter (id_token and userinfo alike). The provider
 * refuses a malformed claims parameter before any interaction (src/oidc/claims-parameter.ts); one that reaches here
 * anyway (stored before that check existed) fails closed: a request no level can meet, never none.
 */
export function requestFacts(params: Record<string, unknown>): RequestFacts {
  const acrValues = typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
  const raw = params.claims;
  if (typeof raw !== 'string' || !raw) return { acrValues };
  const read = essentialAcrRequests(raw);
  const essentialAcr = read.ok ? read.requests : [[]];
  return essentialAcr.length ? { acrValues, essentialAcr } : { acrValues };
}

export interface SignInFacts {
  /** '' before anyone is identified (the login page's first factors). */
  accountId: string;
  clientId?: string;
  request: RequestFacts;
  evidence: Evidence[];
  /** The live trusted device the browser presented for this account. */
  trustedDevice?: TrustedDevice;
  /** At the sign-in pages, or checking a session for single sign-on (PolicyInput.at). */
  at?: PolicyInput['at'];
  /** The user skipped the optional step in this interaction. */
  skipped?: boolean;
  now?: number;
}

/** What JSON makes of a row: timestamps become strings. */
type Json<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };

/**
 * Inside a request, the first decision about an account reads its credentials
 * and its policies in one statement, and leaves both for the reads that follow
 * (this decision's own, then the factor's challenge or verification).
 * Outside a request nothing would keep them: the two reads go as they are.
 */
async function readAccountAtOnce(services: Services, accountId: string): Promise<void> {
  const { store } = services.factors;
  if (!inRequestScope() || (store.held(accountId) && policiesHeld(accountId))) return;
  const { rows } = await sql<{ credentials: Json<CredentialRow>[]; policies: Json<PolicyRow>[] }>`
    select
      (select coalesce(json_agg(c order by c.created_at), '[]') from (${store.rowsQuery(accountId)}) c) as credentials,
      (select coalesce(json_agg(p order by p."group" nulls first, p.version desc), '[]') from (${policyRowsQuery(services.db, accountId)}) p) as policies`.execute(
    services.db,
  );
  const { credentials, policies } = rows[0]!;
  const date = (v: string | null) => (v === null ? null : new Date(v));
  // A bigint counter comes as a JSON number; the row type (as pg returns it) is a string.
  store.hold(
    accountId,
    credentials.map((c) => ({
      ...c,
      counter: c.counter === null ? null : String(c.counter),
      created_at: new Date(c.created_at),
      last_used_at: date(c.last_used_at),
    })),
  );
  holdPolicies(
    accountId,
    policies.map((p) => ({ ...p, added_at: date(p.added_at), created_at: new Date(p.created_at) })),
  );
}

export async function policyInput(services: Services, facts: SignInFacts): Promise<PolicyInput> {
  const { db, config } = services;
  const engine = services.factors;
  // Before anyone is identified (the login page asks with no account) there are no credentials or groups to read.
  const identified = facts.accountId !== '';
  const together = identified ? readAccountAtOnce(services, facts.accountId) : undefined;
  const [enrolledRows, { global, groups }, clientRow] = await Promise.all([
    together ? together.then(() => engine.enrolled(facts.accountId)) : [],
    together ? together.then(() => policiesFor(db, config.MFA, facts.accountId)) : globalPolicy(db, config.MFA).then((global) => ({ global, groups: [] })),
    facts.clientId ? findClientRow(db, facts.clientId) : Promise.resolve(undefined),
  ]);
  const enrolled = enrolledRows.map((r) => engine.facts(r.factor.id)!);
  const available: FactorFacts[] = engine.registry.all().map((r) => engine.facts(r.factor.id)!);
  const table = acrTableOf(config);
  let client: ClientRequirement | undefined;
  if (clientRow && clientRow.client_id === facts.clientId) {
    const p = clientPolicyOf(clientRow.policy, clientRow.name);
    // A minimum the table no longer knows (ACR_VALUES changed since it was set) is not dropped: it cannot be met.
    const minLevel = p.minAcr ? table.levelOf(p.minAcr) : undefined;
    client = {
      name: clientRow.name,
      mfa: p.mfa,
      minLevel,
      ...(p.minAcr && minLevel === undefined ? { unknownMinAcr: p.minAcr } : {}),
      factors: p.factors,
      trustedDevices: p.trustedDevices,
      syncedPasskeys: p.syncedPasskeys,
    };
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
    ...(facts.at ? { at: facts.at } : {}),
    ...(facts.skipped ? { skipped: true } : {}),
    trustedDevice: facts.trustedDevice && { factor: facts.trustedDevice.factor },
    now: facts.now,
    acrTable: table,
  };
}

export async function evaluate(services: Services, facts: SignInFacts): Promise<Decision> {
  return decide(await policyInput(services, facts));
}
