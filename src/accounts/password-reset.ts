/**
 * "Forgot your password?": a link by email that lets the person set a new
 * password, and nothing more.
 *
 * - Asking: whatever was typed (a username or an email address), the answer
 *   is the same, whether or not an account matches, has an address, is
 *   disabled or was throttled; the email goes out after the answer, so its
 *   delivery time tells nothing either. Throttled per client address (a
 *   refusal there says so: it is counted for every request, so it reveals
 *   nothing) and per account (silently: no more emails).
 * - The link holds a random 256-bit token; the table holds only its keyed
 *   hash (HMAC under a key derived from SECRET_KEY), so a database dump opens
 *   no account. It works for 15 minutes, once: it is spent by one conditional
 *   UPDATE in the same transaction as the password change
 *   (password-change.ts `guard`), so two tabs or two processes cannot both
 *   use it. A newer link, or a password change by any way, voids it.
 * - Using it sets a password that meets the rules (new-password.ts), ends
 *   every session, revokes trusted devices, and tells the person by email.
 *   It never touches a second factor and never signs anyone in: the next
 *   sign-in asks for the new password and then for the second factor as
 *   before. Someone who lost both their password and every factor is told to
 *   contact an administrator; a link is not a way around a factor.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Account, Database } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { findAccountByLogin } from './accounts.ts';
import { consume, type LimitRule } from '../security/rate-limit.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { sendSecurityNotice } from '../messaging/security-notices.ts';
import { changePassword, type PasswordChangeResult, type PasswordChangeServices } from './password-change.ts';
import { logger } from '../logger.ts';

/** How long a link works. */
export const RESET_TTL_SECONDS = 15 * 60;
/** Requests from one client address, whatever they name: 10 an hour. */
export const RESET_PER_ADDRESS: LimitRule = { name: 'pwreset:ip:1h', points: 10, windowSeconds: 3600 };
/** Links sent for one account: 3 an hour (more are not sent, and the asker is not told). */
export const RESET_PER_ACCOUNT: LimitRule = { name: 'pwreset:acct:1h', points: 3, windowSeconds: 3600 };

/** Where the link points: the page that reads it (interactions/password-pages.ts). */
export const RESET_PATH = '/password/reset';

export type ResetServices = PasswordChangeServices & Pick<Services, 'codeHasher' | 'clock'>;

export interface RequestContext {
  ip: string;
  userAgent?: string;
  /** The language of the page it was asked from: the email is written in it. */
  language?: string;
}

export type RequestOutcome =
  | { ok: true; minutes: number; /** The email's delivery, for tests to wait on; the answer never does. */ delivery: Promise<void> }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

const hashToken = (services: Pick<Services, 'codeHasher'>, token: string) => services.codeHasher.hash(token, 'password-reset');

/** Asks for a reset link for whatever account `login` names. */
export async function requestPasswordReset(services: ResetServices, login: string, context: RequestContext): Promise<RequestOutcome> {
  const { db } = services;
  const audit: AuditContext = { ip: context.ip, userAgent: context.userAgent, actor: 'user' };
  const perAddress = await consume(db, RESET_PER_ADDRESS, context.ip);
  if (!perAddress.allowed) {
    await recordAudit(db, 'password.reset_throttled', audit, { scope: 'address' });
    return { ok: false, reason: 'throttled', retryAfterSeconds: perAddress.retryAfterSeconds };
  }
  const minutes = RESET_TTL_SECONDS / 60;
  const done = { ok: true as const, minutes, delivery: Promise.resolve() };
  const account = await findAccountByLogin(db, login);
  const why = !account ? 'no_account' : account.disabled ? 'disabled' : !account.email ? 'no_address' : undefined;
  if (why) {
    await recordAudit(
      db,
      'password.reset_requested',
      { ...audit, accountId: account?.id },
      { sent: false, why, ...(account ? {} : { login: login.trim().toLowerCase().slice(0, 254) }) },
    );
    return done;
  }
  const perAccount = await consume(db, RESET_PER_ACCOUNT, account!.id);
  if (!perAccount.allowed) {
    await recordAudit(db, 'password.reset_throttled', { ...audit, accountId: account!.id }, { scope: 'account' });
    return done;
  }
  const token = crypto.randomBytes(32).toString('base64url');
  const now = services.clock.now();
  const id = crypto.randomBytes(12).toString('base64url');
  await db.transaction().execute(async (trx) => {
    // Only the newest link works.
    await trx
      .updateTable('password_resets')
      .set({ voided_at: now })
      .where('account_id', '=', account!.id)
      .where('used_at', 'is', null)
      .where('voided_at', 'is', null)
      .execute();
    await trx
      .insertInto('password_resets')
      .values({
        id,
        account_id: account!.id,
        token_hash: hashToken(services, token),
        created_at: now,
        expires_at: new Date(now.getTime() + RESET_TTL_SECONDS * 1000),
      })
      .execute();
  });
  await recordAudit(db, 'password.reset_requested', { ...audit, accountId: account!.id }, { sent: true, link: id });
  // In the language the email is written in, so the page it opens speaks it too.
  const link = `${services.config.ISSUER}${RESET_PATH}?token=${token}${context.language ? `&ui_locales=${encodeURIComponent(context.language)}` : ''}`;
  // After the answer: how long the mail server takes must not tell whether the account exists.
  const delivery = new Promise<void>((resolve) => setImmediate(resolve))
    .then(() => sendSecurityNotice(services, account!, { type: 'reset_link', link, minutes }, { language: context.language, audit }))
    .then(
      () => undefined,
      (err: unknown) => logger.error({ err, accountId: account!.id }, 'the reset link could not be sent'),
    );
  return { ...done, delivery };
}

export type LinkState = { ok: true; account: Account; resetId: string } | { ok: false; reason: 'unknown' | 'expired' | 'used' };

/** What a link is worth, without spending it (the page shows the form, or why it cannot). */
export async function inspectResetLink(services: Pick<ResetServices, 'db' | 'codeHasher' | 'clock'>, token: string): Promise<LinkState> {
  // Anything not shaped like a token we made is not looked up at all.
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, reason: 'unknown' };
  const row = await services.db.selectFrom('password_resets').selectAll().where('token_hash', '=', hashToken(services, token)).executeTakeFirst();
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.used_at || row.voided_at) return { ok: false, reason: 'used' };
  if (row.expires_at.getTime() <= services.clock.now().getTime()) return { ok: false, reason: 'expired' };
  const account = await services.db.selectFrom('accounts').selectAll().where('id', '=', row.account_id).executeTakeFirst();
  if (!account || account.disabled) return { ok: false, reason: 'unknown' };
  return { ok: true, account, resetId: row.id };
}

export type ResetOutcome = Exclude<PasswordChangeResult, { reason: 'guard_refused' }> | { ok: false; reason: 'link'; link: 'unknown' | 'expired' | 'used' };

/** Sets the new password through the link, spending it in the same transaction. */
export async function completePasswordReset(services: ResetServices, token: string, password: string, context: RequestContext): Promise<ResetOutcome> {
  const state = await inspectResetLink(services, token);
  if (!state.ok) {
    await recordAudit(services.db, 'password.reset_link_refused', { ip: context.ip, userAgent: context.userAgent, actor: 'user' }, { why: state.reason });
    return { ok: false, reason: 'link', link: state.reason };
  }
  const now = services.clock.now();
  const spend = async (trx: Kysely<Database>) => {
    const spent = await trx
      .updateTable('password_resets')
      .set({ used_at: now })
      .where('id', '=', state.resetId)
      .where('used_at', 'is', null)
      .where('voided_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(spent.numUpdatedRows) === 1;
  };
  const result = await changePassword(
    services,
    { accountId: state.account.id, password, via: 'reset_link', actor: 'user' },
    { audit: { ip: context.ip, userAgent: context.userAgent }, language: context.language, guard: spend },
  );
  if (result.ok || result.reason !== 'guard_refused') return result;
  // Spent or expired between the look and the change (another tab, another process).
  const again = await inspectResetLink(services, token);
  return { ok: false, reason: 'link', link: again.ok ? 'used' : again.reason };
}
