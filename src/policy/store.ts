/**
 * Where policy documents live: versioned rows (who changed what, when). The
 * newest version of a scope is in force. This module is the policy room's only
 * I/O; decide.ts stays pure.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { clientPolicySchema, globalPolicySchema, groupPolicySchema, parsePolicy, type ClientPolicy, type GlobalPolicy, type GroupPolicy } from './documents.ts';
import type { MfaMode } from './decide.ts';

export const GLOBAL = 'global';
export const groupScope = (groupId: string) => `group:${groupId}`;

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
  const row = await currentPolicy(db, GLOBAL);
  if (!row) return { policy: parsePolicy(globalPolicySchema, { mfa: configuredMfa }, 'global policy'), version: null };
  return { policy: parsePolicy(globalPolicySchema, row.document, 'global policy'), version: row.version };
}

export interface AccountGroupPolicy {
  group: string;
  policy: GroupPolicy;
  version: number;
  /** When the policy started to apply to this account: the later of joining the group and the deadline's introduction. */
  appliesSince: Date;
}

/** The policies of the account's groups, with when each began to apply to it. */
export async function groupPoliciesFor(db: Kysely<Database>, accountId: string): Promise<AccountGroupPolicy[]> {
  const rows = await db
    .selectFrom('account_groups')
    .innerJoin('groups', 'groups.id', 'account_groups.group_id')
    .innerJoin('policy_documents', (j) => j.on('policy_documents.scope', '=', sql<string>`'group:' || groups.id`))
    .select(['groups.name', 'account_groups.added_at', 'policy_documents.version', 'policy_documents.document', 'policy_documents.created_at'])
    .where('account_groups.account_id', '=', accountId)
    .orderBy('groups.name')
    .orderBy('policy_documents.version', 'desc')
    .execute();
  const out: AccountGroupPolicy[] = [];
  const byGroup = new Map<string, typeof rows>();
  for (const r of rows) byGroup.set(r.name, [...(byGroup.get(r.name) ?? []), r]);
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
