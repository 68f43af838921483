/**
 * Changing or resetting a password, whoever does it (an administrator, the
 * person, a reset link): the new hash, and in the same transaction the end of
 * every other way into the account that the old password opened. Every
 * provider session ends and every grant and token is revoked
 * (end-sessions.ts); trusted devices stop counting (their binding includes
 * when the password was set); a sign-in in progress that proved the old
 * password cannot finish (interactions/sign-in.ts compares the same stamp).
 * An administrator resets a password because an account was compromised: what
 * the intruder holds must stop working at once.
 *
 * A person changing their own password may keep the session they did it in
 * (`keepSessionUid`); its apps' tokens are revoked all the same.
 *
 * Second factors are untouched: a reset never removes or skips them.
 */
import { z } from 'zod';
import type { Services } from '../services.ts';
import { recordAudit } from '../security/audit.ts';
import { passwordSchema } from './accounts.ts';
import { notifySessionsEnded, revokeAccountAccess, type EndedSession } from './end-sessions.ts';

export const passwordChangeSchema = z
  .object({
    accountId: z.string().min(1).max(200),
    password: passwordSchema,
    /** `admin`: set by an administrator; `self`: the person changed their own; `reset_link`: through a reset link. */
    via: z.enum(['admin', 'self', 'reset_link']),
    /** Recorded as the audit event's actor (`admin:cli`, `user`…). */
    actor: z.string().min(1).max(200),
    /** The uid of the session to keep signed in: only a person changing their own password keeps one. */
    keepSessionUid: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((v) => v.keepSessionUid === undefined || v.via === 'self', { message: 'only a person changing their own password keeps a session', path: ['keepSessionUid'] });
export type PasswordChangeInput = z.input<typeof passwordChangeSchema>;

export type PasswordChangeResult =
  | { ok: true; sessionsEnded: EndedSession[]; revoked: number; keptSession: boolean }
  | { ok: false; reason: 'invalid_input'; message: string }
  | { ok: false; reason: 'unknown_account' };

export async function changePassword(services: Pick<Services, 'db' | 'hasher' | 'sessionsEnded'>, input: PasswordChangeInput): Promise<PasswordChangeResult> {
  const parsed = passwordChangeSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, reason: 'invalid_input', message: `${issue.path.join('.') || 'input'}: ${issue.message}` };
  }
  const { accountId, password, via, actor, keepSessionUid } = parsed.data;
  // The slow hash before the transaction: no row stays locked while argon2 runs.
  const hashed = await services.hasher.hash(password);
  const outcome = await services.db.transaction().execute(async (trx) => {
    const now = new Date();
    const updated = await trx.updateTable('accounts').set({ password_hash: hashed, password_changed_at: now, updated_at: now }).where('id', '=', accountId).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return undefined;
    const access = await revokeAccountAccess(trx, accountId, { keepSessionUid });
    await recordAudit(trx, 'account.password_set', { accountId, actor }, { via, sessionsEnded: access.sessions.length, revoked: access.revoked, ...(keepSessionUid ? { keptSession: keepSessionUid } : {}) });
    return access;
  });
  if (!outcome) return { ok: false, reason: 'unknown_account' };
  await notifySessionsEnded(services, accountId, outcome.sessions, 'password');
  return { ok: true, sessionsEnded: outcome.sessions, revoked: outcome.revoked, keptSession: keepSessionUid !== undefined };
}
