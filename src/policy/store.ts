/**
 * Where policy documents live: versioned rows (who changed what, when). The
 * newest version of a scope is in force. This module is the policy room's only
 * I/O; decide.ts stays pure.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import {
  clientPolicySchema,
  globalPolicySchema,
  groupPolicySchema,
  parsePolicy,
  PolicyDocumentError,
  type ClientPolicy,
  type GlobalPolicy,
  type GroupPolicy,
} from './documents.ts';
import type { MfaMode } from './decide.ts';
import { forget, memoized, remember, remembered } from '../db/request-memo.ts';
import { logger } from '../logger.ts';

/** Policies are read once per request (src/db/request-memo.ts): a sign-in step asks for them more than once. */
const POLICY_MEMO = 'policy:';

export const GLOBAL = 'global';
export const groupScope = (groupId: string) => `group:${groupId}`;
/** An app's policy versions. The one in force is also on the client row (clients.policy), which the provider reads. */
export const clientScope = (clientId: string) => `client:${clientId}`;

export interface PolicyVersion {
  scope: string;
  version: number;
  document: Record<string, unknown>;
  actor: string;
  created_at: Date;
}

/** Appends a new version; concurrent writers get distinct versions (the primary key refuses a duplicate, and we retry). */
export async function savePolicy(db: Kysely<Database>, scope: string, document: Record<string, unknown>, actor: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const row = await sql<{ version: number }>`
        insert into policy_documents (scope, version, document, actor)
        select ${scope}, coalesce(max(version), 0) + 1, ${JSON.stringify(document)}::jsonb, ${actor}
        from policy_documents where scope = ${scope}
        returning version`.execute(db);
      forget(POLICY_MEMO);
      return row.rows[0]!.version;
    } catch (err) {
      if ((err as { code?: string }).code !== '23505' || attempt >= 5) throw err;
    }
  }
}

export async function policyHistory(db: Kysely<Database>, scope: string): Promise<PolicyVersion[]> {
  return db.selectFrom('policy_documents').selectAll().where('scope', '=', scope).orderBy('version', 'desc').execute();
}

export async function currentPolicy(db: Kysely<Database>, scope: string): Promise<PolicyVersion | undefined> {
  return db.selectFrom('policy_documents').selectAll().where('scope', '=', scope).orderBy('version', 'desc').limit(1).executeTakeFirst();
}

/** The global policy in force; before any is stored, the defaults with `MFA` from configuration. */
export async function globalPolicy(db: Kysely<Database>, configuredMfa: MfaMode): Promise<{ policy: GlobalPolicy; version: number | null }> {
  return globalFrom(await memoized(GLOBAL_MEMO, () => currentPolicy(db, GLOBAL)), configuredMfa);
}

function globalFrom(row: PolicyVersion | undefined, configuredMfa: MfaMode): { policy: GlobalPolicy; version: number | null } {
  if (!row) return { policy: parsePolicy(globalPolicySchema, { mfa: configuredMfa }, 'global policy'), version: null };
  return { policy: parseStoredGlobal(row), version: row.version };
}

const warnedVersions = new Set<number>();

/**
 * A stored document was valid when it was saved, but a later release may refuse part of it (the daily failure cap
 * became "at least 24 hours"). A throttle section that no longer parses falls back to the built-in limits, which are
 * the strict ones, with a warning, rather than failing every sign-in; any other bad field still fails closed.
 */
function parseStoredGlobal(row: PolicyVersion): GlobalPolicy {
  try {
    return parsePolicy(globalPolicySchema, row.document, 'global policy');
  } catch (err) {
    const throttle = globalPolicySchema.shape.throttle.safeParse(row.document.throttle);
    if (!(err instanceof PolicyDocumentError) || throttle.success) throw err;
    const { throttle: _refused, ...rest } = row.document;
    const policy = parsePolicy(globalPolicySchema, rest, 'global policy');
    if (!warnedVersions.has(row.version)) {
      warnedVersions.add(row.version);
      logger.warn(
        { version: row.version, problem: err.message },
        'the stored global policy has throttle settings this release refuses; using the built-in limits until an admin saves a corrected policy (twofold policy set)',
      );
    }
    return policy;
  }
}

export interface AccountGroupPolicy {
  group: string;
  policy: GroupPolicy;
  version: number;
  /** When the policy started to apply to this account: the later of joining the group and the deadline's introduction. */
  appliesSince: Date;
}

/** Memo keys of an account's policies; a change of membership forgets them (src/accounts/groups.ts). */
export const GROUP_POLICY_MEMO = `${POLICY_MEMO}groups:`;
const GLOBAL_MEMO = `${POLICY_MEMO}${GLOBAL}`;

/**
 * In one statement: the global policy in force (`group` null, at most one row)
 * and every version of the policies of the account's groups, newest first.
 */
export function policyRowsQuery(db: Kysely<Database>, accountId: string) {
  const latestGlobal = db
    .selectFrom('policy_documents')
    .select((eb) => eb.fn.max('version').as('version'))
    .where('scope', '=', GLOBAL);
  return db
    .selectFrom('policy_documents')
    .select([
      sql<string | null>`null::text`.as('group'),
      sql<Date | null>`null::timestamptz`.as('added_at'),
      'scope',
      'version',
      'document',
      'actor',
      'created_at',
    ])
    .where('scope', '=', GLOBAL)
    .where('version', '=', latestGlobal)
    .unionAll(
      db
        .selectFrom('account_groups')
        .innerJoin('groups', 'groups.id', 'account_groups.group_id')
        .innerJoin('policy_documents', (j) => j.on('policy_documents.scope', '=', sql<string>`'group:' || groups.id`))
        .select([
          'groups.name as group',
          'account_groups.added_at',
          'policy_documents.scope',
          'policy_documents.version',
          'policy_documents.document',
          'policy_documents.actor',
          'policy_documents.created_at',
        ])
        .where('account_groups.account_id', '=', accountId),
    )
    .orderBy(sql`"group" nulls first`)
    .orderBy('version', 'desc');
}

export type PolicyRow = Awaited<ReturnType<ReturnType<typeof policyRowsQuery>['execute']>>[number];

/** Whether this request already holds the account's policies. */
export function policiesHeld(accountId: string): boolean {
  return remembered(`${GROUP_POLICY_MEMO}${accountId}`);
}

/** The account's policy rows (in `policyRowsQuery` order), read by another statement, answer this request's later `policiesFor`. */
export function holdPolicies(accountId: string, rows: PolicyRow[]): void {
  remember(`${GROUP_POLICY_MEMO}${accountId}`, rows);
}

/**
 * The global policy and the account's group policies, read together: what
 * every policy decision about an account needs. The global policy read here
 * also answers a later `globalPolicy` in the same request.
 */
export async function policiesFor(
  db: Kysely<Database>,
  configuredMfa: MfaMode,
  accountId: string,
): Promise<{ global: { policy: GlobalPolicy; version: number | null }; groups: AccountGroupPolicy[] }> {
  const rows = await memoized(`${GROUP_POLICY_MEMO}${accountId}`, () => policyRowsQuery(db, accountId).execute());
  const row = rows.find((r) => r.group === null);
  const global = row && { scope: row.scope, version: row.version, document: row.document, actor: row.actor, created_at: row.created_at };
  remember(GLOBAL_MEMO, global);
  return { global: globalFrom(global, configuredMfa), groups: groupPoliciesFrom(rows) };
}

/** The policies of the account's groups, with when each began to apply to it. */
function groupPoliciesFrom(rows: PolicyRow[]): AccountGroupPolicy[] {
  const out: AccountGroupPolicy[] = [];
  const byGroup = new Map<string, Array<PolicyRow & { added_at: Date }>>();
  for (const r of rows) if (r.group !== null && r.added_at) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), { ...r, added_at: r.added_at }]);
  for (const [group, versions] of byGroup) {
    const latest = versions[0]!;
    const policy = parsePolicy(groupPolicySchema, latest.document, `group ${group} policy`);
    // The deadline clock starts when the deadline (as it stands now) was introduced, not at every later edit.
    const deadline = JSON.stringify(policy.enrollmentDeadline ?? null);
    let since = latest.created_at;
    for (const v of versions) {
      if (JSON.stringify((v.document as { enrollmentDeadline?: unknown }).enrollmentDeadline ?? null) !== deadline) break;
      since = v.created_at;
    }
    out.push({ group, policy, version: latest.version, appliesSince: new Date(Math.max(since.getTime(), latest.added_at.getTime())) });
  }
  return out;
}

/** The enrolment deadline in epoch seconds for one account. */
export function deadlineFor(g: AccountGroupPolicy): number | undefined {
  const d = g.policy.enrollmentDeadline;
  if (!d) return undefined;
  if ('date' in d) return Math.floor(new Date(`${d.date}T23:59:59Z`).getTime() / 1000);
  return Math.floor(g.appliesSince.getTime() / 1000) + d.days * 86400;
}

export function clientPolicyOf(raw: unknown, clientName: string): ClientPolicy {
  return parsePolicy(clientPolicySchema, raw ?? {}, `client ${clientName} policy`);
}

/**
 * Every policy in force that lists the factors it allows: the global one, each group's and each
 * app's, by a name an operator recognises (`global`, `group staff`, `client web`). Read at start,
 * to warn about a factor a policy allows that FACTORS does not run.
 */
export async function policyFactorLists(db: Kysely<Database>): Promise<Array<{ source: string; factors: string[] }>> {
  const documents = await db
    .selectFrom('policy_documents')
    .leftJoin('groups', (j) => j.on('policy_documents.scope', '=', sql<string>`'group:' || groups.id`))
    .select(['policy_documents.scope', 'policy_documents.document', 'groups.name as group'])
    .distinctOn('policy_documents.scope')
    .where((eb) => eb.or([eb('policy_documents.scope', '=', GLOBAL), eb('groups.name', 'is not', null)]))
    .orderBy('policy_documents.scope')
    .orderBy('policy_documents.version', 'desc')
    .execute();
  const clients = await db
    .selectFrom('clients')
    .select(['name', 'policy'])
    .where(sql<boolean>`policy -> 'factors' is not null`)
    .orderBy('name')
    .execute();
  const listed = (document: unknown) => {
    const factors = (document as { factors?: unknown } | null)?.factors;
    return Array.isArray(factors) ? factors.filter((f): f is string => typeof f === 'string') : undefined;
  };
  return [
    ...documents.map((d) => ({ source: d.group === null ? 'global' : `group ${d.group}`, factors: listed(d.document) })),
    ...clients.map((c) => ({ source: `client ${c.name}`, factors: listed(c.policy) })),
  ].filter((p): p is { source: string; factors: string[] } => p.factors !== undefined);
}
