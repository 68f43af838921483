/**
 * Ending an account's sessions and recalling what they handed out, in one
 * place: every provider session (its cookie then finds nothing, so single
 * sign-on asks again), every grant, every token issued to apps (refresh and
 * opaque access tokens, authorization and device codes), the interactions in
 * flight for the account, what each session had proved (session_evidence), and
 * the consents it gave to third-party apps (their grants are gone).
 * One session may be kept (a person who changed their own password stays
 * signed in where they did it); the grants and tokens of that session go all
 * the same, so its apps come back through single sign-on for fresh ones.
 *
 * Rows are found by what the provider's payload says (the account id, the
 * session's uid), never by a token's value or the id column, whose format is
 * the storage adapter's business. JWT access tokens for registered APIs
 * (RESOURCE_SERVERS) are self-contained and cannot be recalled: they lapse
 * with their lifetime.
 *
 * Whoever ends sessions hands the result to `notifySessionsEnded`, so
 * services.sessionsEnded (back-channel logout) hears of every ending, whatever
 * caused it.
 */
import type { ExpressionBuilder, Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { logger } from '../logger.ts';

export interface EndedSession {
  /** The session's stable uid (not its cookie value). */
  uid: string;
  accountId: string;
  /** The apps the session had signed in to, with the sid and grant each was given (what back-channel logout needs). */
  clients: { clientId: string; sid?: string; grantId?: string }[];
}

/** `reason`: what ended them (password, disabled, removed, expired, …), for the record. */
export type SessionsEndedHook = (ended: EndedSession[], accountId: string, reason?: string) => Promise<void> | void;

export interface RevokedAccess {
  sessions: EndedSession[];
  /** Grants, tokens, codes and interactions removed (sessions not counted). */
  revoked: number;
}

type Row = ExpressionBuilder<Database, 'oidc_payloads'>;
const path = (eb: Row, ...keys: string[]) => eb.fn<string | null>('jsonb_extract_path_text', [eb.ref('payload'), ...keys.map((k) => eb.val(k))]);

interface SessionPayload {
  uid?: string;
  accountId?: string;
  authorizations?: Record<string, { sid?: string; grantId?: string }>;
}

/**
 * Ends every session of the account but `keepSessionUid`, and revokes every
 * grant and token. Run it inside the transaction that made it necessary (the
 * password change), so both happen or neither.
 */
export async function revokeAccountAccess(db: Kysely<Database>, accountId: string, options: { keepSessionUid?: string } = {}): Promise<RevokedAccess> {
  const keep = options.keepSessionUid;
  const rows = await db
    .deleteFrom('oidc_payloads')
    .where((eb) =>
      eb.or([
        // Sessions, grants and every token bound to a grant carry the account id at the top of their payload.
        eb(path(eb, 'accountId'), '=', accountId),
        // An interaction in flight for a session of the account, or finished for it and not yet resumed.
        eb.and([
          eb('kind', '=', 'Interaction'),
          eb.or([eb(path(eb, 'session', 'accountId'), '=', accountId), eb(path(eb, 'result', 'login', 'accountId'), '=', accountId)]),
        ]),
      ]),
    )
    .where((eb) =>
      keep === undefined
        ? eb.lit(true)
        : eb.not(
            eb.or([
              eb.and([eb('kind', '=', 'Session'), eb(path(eb, 'uid'), '=', keep)]),
              eb.and([eb('kind', '=', 'Interaction'), eb(path(eb, 'session', 'uid'), '=', keep)]),
            ]),
          ),
    )
    .returning(['kind', 'payload'])
    .execute();
  const sessions: EndedSession[] = [];
  for (const row of rows) {
    if (row.kind !== 'Session') continue;
    const payload = row.payload as SessionPayload;
    if (!payload.uid) continue;
    const clients = Object.entries(payload.authorizations ?? {}).map(([clientId, a]) => ({ clientId, sid: a.sid, grantId: a.grantId }));
    sessions.push({ uid: payload.uid, accountId, clients });
  }
  // The grants went with the rest, and with them every consent the account gave: the apps ask again.
  await db.deleteFrom('consents').where('account_id', '=', accountId).execute();
  let evidence = db.deleteFrom('session_evidence').where('account_id', '=', accountId);
  if (keep !== undefined) evidence = evidence.where('session_uid', '!=', keep);
  await evidence.execute();
  return { sessions, revoked: rows.length - sessions.length };
}

/** The sessions a stored Session payload describes, for the hooks (an anonymous session, never signed in, is none). */
function endedSession(payload: SessionPayload): EndedSession | undefined {
  if (!payload.uid || !payload.accountId) return undefined;
  const clients = Object.entries(payload.authorizations ?? {}).map(([clientId, a]) => ({ clientId, sid: a.sid, grantId: a.grantId }));
  return { uid: payload.uid, accountId: payload.accountId, clients };
}

/**
 * Deletes sessions that expired (SESSION_TTL, or the provider's own expiry) more than `graceSeconds` ago and
 * returns them by account, so their apps hear of the ending too. Run by the purge, before it removes the rest.
 */
export async function endExpiredSessions(db: Kysely<Database>, graceSeconds = 60): Promise<Map<string, EndedSession[]>> {
  const cutoff = new Date(Date.now() - graceSeconds * 1000);
  const rows = await db.deleteFrom('oidc_payloads').where('kind', '=', 'Session').where('expires_at', '<', cutoff).returning('payload').execute();
  const byAccount = new Map<string, EndedSession[]>();
  for (const row of rows) {
    const ended = endedSession(row.payload as SessionPayload);
    if (ended) byAccount.set(ended.accountId, [...(byAccount.get(ended.accountId) ?? []), ended]);
  }
  return byAccount;
}

/** Tells every hook; a hook that fails is logged, never undoes the ending. */
export async function notifySessionsEnded(
  services: { sessionsEnded: SessionsEndedHook[] },
  accountId: string,
  ended: EndedSession[],
  reason?: string,
): Promise<void> {
  if (!ended.length) return;
  for (const hook of services.sessionsEnded) {
    try {
      await hook(ended, accountId, reason);
    } catch (err) {
      logger.error({ err, accountId }, 'a sessions-ended hook failed');
    }
  }
}
