/**
 * Changing or resetting a password, whoever does it (an administrator, the
 * person, a reset link): the rules a new password must meet (new-password.ts),
 * the new hash, and in the same transaction the end of every other way into
 * the account that the old password opened. Every provider session ends and
 * every grant and token is revoked (end-sessions.ts); trusted devices stop
 * counting (their binding includes when the password was set), and a reset
 * revokes them outright; reset links not yet
 * used stop working; a sign-in in progress that proved the old password
 * cannot finish (interactions/sign-in.ts compares the same stamp). An
 * administrator resets a password because an account was compromised: what
 * the intruder holds must stop working at once.
 *
 * A person changing their own password may keep the session they did it in
 * (`keepSessionUid`); its apps' tokens are revoked all the same. They may
 * also choose to stay signed in everywhere (`endOtherSessions: false`).
 *
 * Second factors are untouched: a reset never removes or skips them.
 *
 * Afterwards the person is told by email (security-notices.ts); a notice
 * that cannot be delivered never undoes the change.
 */
import { z } from 'zod';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Services } from '../services.ts';
import type { MessageRef } from '../i18n/catalogue.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { checkAccountPassword, type PasswordServices } from './new-password.ts';
import type { PasswordRefusal } from './password-rules.ts';
import { notifySessionsEnded, revokeAccountAccess, type EndedSession, type RevokedAccess } from './end-sessions.ts';
import { sendSecurityNotice, type SecurityEvent } from '../messaging/security-notices.ts';

export const passwordChangeSchema = z
  .object({
    accountId: z.string().min(1).max(200),
    /** Bounded here only against abuse; the rules (length, blocklist, …) are checked with the account in hand. */
    password: z.string().min(1).max(4096),
    /** `admin`: set by an administrator; `self`: the person changed their own; `reset_link`: through a reset link. */
    via: z.enum(['admin', 'self', 'reset_link']),
    /** Recorded as the audit event's actor (`admin:cli`, `user`…). */
    actor: z.string().min(1).max(200),
    /** The uid of the session to keep signed in: only a person changing their own password keeps one. */
    keepSessionUid: z.string().min(1).max(200).optional(),
    /**
     * False: a person changing their own password chose to stay signed in elsewhere too; no session, grant or token
     * is touched. An administrator's change and a reset always end them.
     */
    endOtherSessions: z.boolean().default(true),
  })
  .strict()
  .refine((v) => v.keepSessionUid === undefined || v.via === 'self', {
    message: 'only a person changing their own password keeps a session',
    path: ['keepSessionUid'],
  })
  .refine((v) => v.endOtherSessions || v.via === 'self', {
    message: 'only a person changing their own password keeps their other sessions',
    path: ['endOtherSessions'],
  });
export type PasswordChangeInput = z.input<typeof passwordChangeSchema>;

export type PasswordChangeResult =
  | { ok: true; sessionsEnded: EndedSession[]; revoked: number; keptSession: boolean; devicesRevoked: number }
  | { ok: false; reason: 'invalid_input'; message: string }
  | { ok: false; reason: 'refused'; refusal: PasswordRefusal; message: MessageRef }
  | { ok: false; reason: 'unknown_account' }
  /** The caller's guard (a reset link being spent) said no inside the transaction: nothing changed. */
  | { ok: false; reason: 'guard_refused' };

export type PasswordChangeServices = Pick<Services, 'db' | 'hasher' | 'sessionsEnded' | 'config' | 'messaging' | 'catalogue'> & PasswordServices;

export interface PasswordChangeOptions {
  /** The request's address and browser, for the audit events. */
  audit?: Pick<AuditContext, 'ip' | 'userAgent' | 'clientId'>;
  /** The language of the notice email (the page's, where a person acted). */
  language?: string;
  /**
   * Runs first inside the transaction; false aborts it and nothing changes. A reset link is spent here, so
   * the link and the password change happen together or not at all.
   */
  guard?: (trx: Transaction<Database>) => Promise<boolean>;
}

const NOTICE: Record<PasswordChangeInput['via'], SecurityEvent['type']> = {
  self: 'password_changed',
  admin: 'password_set_by_admin',
  reset_link: 'password_reset',
};

class GuardRefused extends Error {}

export async function changePassword(
  services: PasswordChangeServices,
  input: PasswordChangeInput,
  options: PasswordChangeOptions = {},
): Promise<PasswordChangeResult> {
  const parsed = passwordChangeSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, reason: 'invalid_input', message: `${issue.path.join('.') || 'input'}: ${issue.message}` };
  }
  const { accountId, password, via, actor, keepSessionUid, endOtherSessions } = parsed.data;
  const account = await services.db.selectFrom('accounts').select(['id', 'username', 'email', 'display_name']).where('id', '=', accountId).executeTakeFirst();
  if (!account) return { ok: false, reason: 'unknown_account' };
  const verdict = await checkAccountPassword(services, account, password);
  if (!verdict.ok) return { ok: false, reason: 'refused', refusal: verdict.reason, message: verdict.message };
  // The slow hash before the transaction: no row stays locked while argon2 runs.
  const hashed = await services.hasher.hash(verdict.password);
  const who: AuditContext = { ...options.audit, accountId, actor };
  let outcome: Awaited<ReturnType<typeof setPassword>> | undefined;
  try {
    outcome = await services.db.transaction().execute(async (trx) => {
      if (options.guard && !(await options.guard(trx))) throw new GuardRefused();
      const done = await setPassword(trx, accountId, hashed, { keepSessionUid, endSessions: endOtherSessions, revokeDevices: via === 'reset_link' });
      if (done) {
        await recordAudit(trx, 'account.password_set', who, {
          via,
          sessionsEnded: done.access.sessions.length,
          revoked: done.access.revoked,
          devicesRevoked: done.devicesRevoked,
          ...(keepSessionUid ? { keptSession: keepSessionUid } : {}),
          ...(endOtherSessions ? {} : { keptOtherSessions: true }),
        });
      }
      return done;
    });
  } catch (err) {
    if (err instanceof GuardRefused) return { ok: false, reason: 'guard_refused' };
    throw err;
  }
  if (!outcome) return { ok: false, reason: 'unknown_account' };
  await notifySessionsEnded(services, accountId, outcome.access.sessions, 'password');
  await sendSecurityNotice(services, account, { type: NOTICE[via] } as SecurityEvent, { language: options.language, audit: who });
  return {
    ok: true,
    sessionsEnded: outcome.access.sessions,
    revoked: outcome.access.revoked,
    keptSession: keepSessionUid !== undefined,
    devicesRevoked: outcome.devicesRevoked,
  };
}

/** The new hash and everything it ends, in the caller's transaction; undefined when the account is gone. */
async function setPassword(
  trx: Kysely<Database>,
  accountId: string,
  hashed: string,
  options: { keepSessionUid?: string; endSessions: boolean; revokeDevices: boolean },
) {
  const { keepSessionUid, revokeDevices } = options;
  const now = new Date();
  const updated = await trx
    .updateTable('accounts')
    .set({ password_hash: hashed, password_changed_at: now, updated_at: now })
    .where('id', '=', accountId)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) return undefined;
  const access: RevokedAccess = options.endSessions ? await revokeAccountAccess(trx, accountId, { keepSessionUid }) : { sessions: [], revoked: 0 };
  // Every change voids them through their binding; a reset revokes them outright too, so no list shows them as
  // anything but ended, whatever becomes of the binding.
  const devices = revokeDevices
    ? await trx
        .updateTable('trusted_devices')
        .set({ revoked_at: now })
        .where('account_id', '=', accountId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst()
    : { numUpdatedRows: 0n };
  // A link sent before the change must not undo it.
  await trx
    .updateTable('password_resets')
    .set({ voided_at: now })
    .where('account_id', '=', accountId)
    .where('used_at', 'is', null)
    .where('voided_at', 'is', null)
    .execute();
  return { access, devicesRevoked: Number(devices.numUpdatedRows) };
}
