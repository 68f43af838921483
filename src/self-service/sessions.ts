/**
 * A person's provider sessions (each browser signed in): list, sign one out,
 * sign out everywhere. Signing one session out does what RP-initiated logout
 * does for it: the session goes, the grants of its apps that do not outlive it
 * (no offline access) go with their tokens, and its apps hear of it
 * (back-channel logout). Signing out everywhere ends every session and
 * revokes every grant and token (src/accounts/end-sessions.ts).
 */
import { sql } from 'kysely';
import { z } from 'zod';
import type { Services } from '../services.ts';
import { notifySessionsEnded, revokeAccountAccess, type EndedSession } from '../accounts/end-sessions.ts';
import { grantStore } from '../admin/consents.ts';
import { forgetGrant } from '../oidc/remembered-consent.ts';
import { deviceLabel } from '../mfa/trusted-devices.ts';
import { recordAudit } from '../security/audit.ts';
import { actingSchema, auditOf, idSchema } from './acting.ts';

interface SessionPayload {
  uid?: string;
  accountId?: string;
  iat?: number;
  loginTs?: number;
  authorizations?: Record<string, { sid?: string; grantId?: string; persistsLogout?: boolean }>;
}

export interface SessionView {
  uid: string;
  /** When the session began (its first sign-in). */
  startedAt: Date | null;
  /** When it was last used (a sign-in or an app's request through it). */
  lastSeenAt: Date | null;
  /** The browser, from its User-Agent, and its address, as of its last proof. */
  browser: string | null;
  ip: string | null;
  apps: Array<{ clientId: string; name: string }>;
}

const accountOf = sql<string>`jsonb_extract_path_text(oidc_payloads.payload, 'accountId')`;

export const listSessionsInput = z.object({ accountId: idSchema }).strict();

/** The account's live sessions, the most recently used first. */
export async function listSessions(services: Services, input: z.input<typeof listSessionsInput>): Promise<SessionView[]> {
  const { accountId } = listSessionsInput.parse(input);
  const rows = await services.db
    .selectFrom('oidc_payloads')
    .leftJoin('session_evidence', 'session_evidence.session_uid', 'oidc_payloads.uid')
    .select([
      'oidc_payloads.uid',
      'oidc_payloads.payload',
      'session_evidence.ip',
      'session_evidence.user_agent',
      'session_evidence.last_active_at',
      'session_evidence.updated_at',
    ])
    .where('oidc_payloads.kind', '=', 'Session')
    .where(accountOf, '=', accountId)
    .where((eb) => eb.or([eb('oidc_payloads.expires_at', 'is', null), eb('oidc_payloads.expires_at', '>', new Date())]))
    .execute();
  const clientIds = [...new Set(rows.flatMap((r) => Object.keys((r.payload as SessionPayload).authorizations ?? {})))];
  const names = new Map(
    clientIds.length
      ? (await services.db.selectFrom('clients').select(['client_id', 'name']).where('client_id', 'in', clientIds).execute()).map((c) => [c.client_id, c.name])
      : [],
  );
  const seconds = (n: number | undefined) => (typeof n === 'number' ? new Date(n * 1000) : null);
  return rows
    .filter((r) => r.uid)
    .map((r) => {
      const payload = r.payload as SessionPayload;
      return {
        uid: r.uid!,
        startedAt: seconds(payload.iat ?? payload.loginTs),
        lastSeenAt: r.last_active_at ?? r.updated_at ?? seconds(payload.loginTs),
        browser: r.user_agent ? deviceLabel(r.user_agent) : null,
        ip: r.ip ?? null,
        apps: Object.keys(payload.authorizations ?? {})
          .filter((id) => names.has(id))
          .map((id) => ({ clientId: id, name: names.get(id)! })),
      };
    })
    .sort((a, b) => (b.lastSeenAt?.getTime() ?? 0) - (a.lastSeenAt?.getTime() ?? 0));
}

export const endSessionInput = z.object({ accountId: idSchema, sessionUid: idSchema, acting: actingSchema }).strict();

/** Signs one of the account's sessions out; another account's session, or one already gone, is `not_found`. */
export async function endSession(services: Services, input: z.input<typeof endSessionInput>): Promise<{ ok: true } | { ok: false; reason: 'not_found' }> {
  const { accountId, sessionUid, acting } = endSessionInput.parse(input);
  const ended = await services.db.transaction().execute(async (trx): Promise<EndedSession | undefined> => {
    const row = await trx
      .deleteFrom('oidc_payloads')
      .where('kind', '=', 'Session')
      .where('uid', '=', sessionUid)
      .where(accountOf, '=', accountId)
      .returning('payload')
      .executeTakeFirst();
    if (!row) return undefined;
    const authorizations = Object.entries((row.payload as SessionPayload).authorizations ?? {});
    const grants = grantStore(services, trx);
    for (const [, a] of authorizations) {
      // As at /session/end: a grant with offline access outlives the session; the others end with it.
      if (!a.grantId || a.persistsLogout) continue;
      await grants.destroy(a.grantId);
      await grants.revokeByGrantId(a.grantId);
      await forgetGrant(trx, a.grantId);
    }
    await trx.deleteFrom('session_evidence').where('session_uid', '=', sessionUid).execute();
    await trx
      .deleteFrom('oidc_payloads')
      .where('kind', '=', 'Interaction')
      .where(sql<string>`jsonb_extract_path_text(payload, 'session', 'uid')`, '=', sessionUid)
      .execute();
    await recordAudit(trx, 'session.ended', auditOf(accountId, acting), { session: sessionUid, apps: authorizations.map(([clientId]) => clientId) });
    return { uid: sessionUid, accountId, clients: authorizations.map(([clientId, a]) => ({ clientId, sid: a.sid, grantId: a.grantId })) };
  });
  if (!ended) return { ok: false, reason: 'not_found' };
  await notifySessionsEnded(services, accountId, [ended], 'signed_out');
  return { ok: true };
}

export const endAllSessionsInput = z.object({ accountId: idSchema, acting: actingSchema }).strict();

/** Signs the account out everywhere: every session ends, every grant and token issued to apps is revoked. */
export async function endAllSessions(services: Services, input: z.input<typeof endAllSessionsInput>): Promise<{ sessions: number; revoked: number }> {
  const { accountId, acting } = endAllSessionsInput.parse(input);
  const access = await services.db.transaction().execute(async (trx) => {
    const result = await revokeAccountAccess(trx, accountId);
    await recordAudit(trx, 'session.ended_all', auditOf(accountId, acting), { sessions: result.sessions.length, revoked: result.revoked });
    return result;
  });
  await notifySessionsEnded(services, accountId, access.sessions, 'signed_out_everywhere');
  return { sessions: access.sessions.length, revoked: access.revoked };
}
