/**
 * What a provider session has proved, factor by factor, with times: step-up
 * and per-level maximum ages need more than the library's flat `amr`. Keyed by
 * the session's stable uid; expires with the session.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Evidence } from '../../factors/types.ts';

export async function loadSessionEvidence(db: Kysely<Database>, sessionUid: string, accountId: string): Promise<Evidence[] | undefined> {
  const row = await db
    .selectFrom('session_evidence')
    .select(['evidence', 'account_id'])
    .where('session_uid', '=', sessionUid)
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  // Evidence of another account never carries over.
  if (!row || row.account_id !== accountId) return undefined;
  return row.evidence as Evidence[];
}

export async function saveSessionEvidence(db: Kysely<Database>, sessionUid: string, accountId: string, evidence: Evidence[], ttlSeconds: number): Promise<void> {
  const values = { session_uid: sessionUid, account_id: accountId, evidence: JSON.stringify(evidence), updated_at: new Date(), expires_at: new Date(Date.now() + ttlSeconds * 1000) };
  await db
    .insertInto('session_evidence')
    .values(values)
    .onConflict((oc) => oc.column('session_uid').doUpdateSet({ account_id: values.account_id, evidence: values.evidence, updated_at: values.updated_at, expires_at: values.expires_at }))
    .execute();
}
