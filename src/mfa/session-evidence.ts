/**
 * What a provider session has proved, factor by factor, with times: step-up
 * and per-level maximum ages need more than the library's flat `amr`. Keyed by
 * the session's stable uid; expires with the session.
 *
 * Beside it, when the session was last used (`last_active_at`), for the idle
 * limits (policy `levelIdle`). The stamp is coarse on purpose: it is written
 * only when it is more than ACTIVITY_STAMP_SECONDS old, so a busy session costs
 * one write a minute, not one per request. The stored stamp is then at most that
 * much behind the real last use, which can only end an idle level early, never
 * late; the shortest idle limit (15 minutes at level 3) dwarfs it.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Evidence } from '../../factors/types.ts';

export const ACTIVITY_STAMP_SECONDS = 60;

export interface StoredSession {
  evidence: Evidence[];
  /** Epoch seconds of the last recorded use; undefined for a row from before it was recorded. */
  lastActiveAt?: number;
}

export async function loadSession(db: Kysely<Database>, sessionUid: string, accountId: string): Promise<StoredSession | undefined> {
  const row = await db
    .selectFrom('session_evidence')
    .select(['evidence', 'account_id', 'last_active_at'])
    .where('session_uid', '=', sessionUid)
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  // Evidence of another account never carries over.
  if (!row || row.account_id !== accountId) return undefined;
  return { evidence: row.evidence as Evidence[], ...(row.last_active_at ? { lastActiveAt: Math.floor(row.last_active_at.getTime() / 1000) } : {}) };
}

export async function loadSessionEvidence(db: Kysely<Database>, sessionUid: string, accountId: string): Promise<Evidence[] | undefined> {
  return (await loadSession(db, sessionUid, accountId))?.evidence;
}

/** Where a browser proved something from: shown in the person's list of sessions (the account center). */
export interface SeenFrom {
  ip?: string;
  userAgent?: string;
}

/**
 * Records what the session proved; saving is activity, so the stamp moves to `now` (epoch seconds, the services'
 * clock). `seen`: the browser that proved it, kept as the session's address and browser.
 */
export async function saveSessionEvidence(
  db: Kysely<Database>,
  sessionUid: string,
  accountId: string,
  evidence: Evidence[],
  ttlSeconds: number,
  now: number,
  seen: SeenFrom = {},
): Promise<void> {
  const values = {
    session_uid: sessionUid,
    account_id: accountId,
    evidence: JSON.stringify(evidence),
    updated_at: new Date(),
    expires_at: new Date(Date.now() + ttlSeconds * 1000),
    last_active_at: new Date(now * 1000),
    ip: seen.ip?.slice(0, 100) ?? null,
    user_agent: seen.userAgent?.slice(0, 512) || null,
  };
  await db
    .insertInto('session_evidence')
    .values(values)
    .onConflict((oc) =>
      oc.column('session_uid').doUpdateSet((eb) => ({
        account_id: values.account_id,
        evidence: values.evidence,
        updated_at: values.updated_at,
        expires_at: values.expires_at,
        last_active_at: values.last_active_at,
        // A save without a browser (an idle level lapsing) keeps the one recorded.
        ip: eb.fn.coalesce(eb.ref('excluded.ip'), eb.ref('session_evidence.ip')),
        user_agent: eb.fn.coalesce(eb.ref('excluded.user_agent'), eb.ref('session_evidence.user_agent')),
      })),
    )
    .execute();
}

/** The session was used at `now`: moves the stamp when it is more than ACTIVITY_STAMP_SECONDS behind (see above). */
export async function touchSession(db: Kysely<Database>, sessionUid: string, stored: StoredSession, now: number): Promise<void> {
  if (stored.lastActiveAt !== undefined && now - stored.lastActiveAt < ACTIVITY_STAMP_SECONDS) return;
  await db
    .updateTable('session_evidence')
    .set({ last_active_at: new Date(now * 1000) })
    .where('session_uid', '=', sessionUid)
    .execute();
}
