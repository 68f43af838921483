/**
 * Self-service sign-up (SIGN_UP, and the app's `twofold_sign_up`): an email
 * address and a password make an account that cannot sign in until the
 * address is confirmed through an emailed link.
 *
 * - The email address is the account's username too, so the one thing a
 *   person proves (the mailbox) is what they sign in with.
 * - The answer is the same for a taken and a free address ("check your
 *   email"): a free one gets the confirmation link, a taken one's owner gets
 *   a notice that someone tried (security-notices.ts `sign_up_existing`). Both
 *   emails go out after the answer, as in password-reset.ts. The password
 *   is checked against the rules first (new-password.ts, 15 characters: it is
 *   the only factor), so a refused password tells nothing about the address.
 * - Throttled per client address (told: it counts every request) and per
 *   email address (silently: no more emails).
 * - The link holds a random 256-bit token; the table holds only its keyed
 *   hash. It works for 24 hours, once (a conditional UPDATE in the same
 *   transaction that clears `sign_up_pending`); a newer link voids it.
 * - Confirming asks for the password chosen at sign-up: whoever squats an
 *   address with a sign-up of their own cannot have the owner confirm an
 *   account whose password they know. Signing up again with a pending
 *   address replaces its password (the newest sign-up wins) and sends a new
 *   link, so the address's owner is never locked out by a squatter.
 */
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Account } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { AccountConflictError, createAccount, emailSchema, usernameSchema } from './accounts.ts';
import { newAccountPassword } from './new-password.ts';
import type { MessageRef } from '../i18n/catalogue.ts';
import { consume, type LimitRule } from '../security/rate-limit.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { sendSecurityNotice } from '../messaging/security-notices.ts';
import { logger } from '../logger.ts';

/** How long a confirmation link works. */
export const VERIFY_TTL_SECONDS = 24 * 3600;
/** Sign-ups and resends from one client address: 10 an hour. */
export const SIGN_UP_PER_CLIENT: LimitRule = { name: 'signup:ip:1h', points: 10, windowSeconds: 3600 };
/** Emails sent for one email address (link, resend or notice): 3 an hour; more are not sent, and the asker is not told. */
export const SIGN_UP_PER_EMAIL: LimitRule = { name: 'signup:email:1h', points: 3, windowSeconds: 3600 };

/** Where the link points: the page that reads it (interactions/signup-pages.ts). */
export const VERIFY_PATH = '/signup/verify';

export type SignUpServices = Pick<Services, 'db' | 'config' | 'messaging' | 'catalogue' | 'hasher' | 'codeHasher' | 'clock'>;

export interface SignUpContext {
  ip: string;
  userAgent?: string;
  language?: string;
  clientId?: string;
}

export type SignUpOutcome =
  | { ok: true; /** The email's delivery, for tests to wait on; the answer never does. */ delivery: Promise<void> }
  | { ok: false; reason: 'invalid_email' }
  | { ok: false; reason: 'refused'; message: MessageRef }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

const hashToken = (services: Pick<Services, 'codeHasher'>, token: string) => services.codeHasher.hash(token, 'email-verification');
const emailKey = (services: Pick<Services, 'codeHasher'>, email: string) => services.codeHasher.hash(email, 'throttle:sign-up-email');

/** After the answer: how long the mail server takes must not tell whether the address is taken. */
function later(send: () => Promise<unknown>, what: string): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve)).then(send).then(
    () => undefined,
    (err: unknown) => logger.error({ err }, what),
  );
}

async function findByAddress(services: Pick<Services, 'db'>, email: string): Promise<Account | undefined> {
  return services.db
    .selectFrom('accounts')
    .selectAll()
    .where((eb) => eb.or([eb(eb.fn('lower', ['email']), '=', email), eb(eb.fn('lower', ['username']), '=', email)]))
    .executeTakeFirst();
}

/** A new link for a pending account (voiding the older ones), sent after the answer. */
async function sendLink(services: SignUpServices, account: Account, context: SignUpContext, audit: AuditContext): Promise<{ delivery: Promise<void> }> {
  const token = crypto.randomBytes(32).toString('base64url');
  const now = services.clock.now();
  const id = crypto.randomBytes(12).toString('base64url');
  await services.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('email_verifications')
      .set({ voided_at: now })
      .where('account_id', '=', account.id)
      .where('used_at', 'is', null)
      .where('voided_at', 'is', null)
      .execute();
    await trx
      .insertInto('email_verifications')
      .values({
        id,
        account_id: account.id,
        token_hash: hashToken(services, token),
        created_at: now,
        expires_at: new Date(now.getTime() + VERIFY_TTL_SECONDS * 1000),
      })
      .execute();
  });
  await recordAudit(services.db, 'signup.link_sent', { ...audit, accountId: account.id }, { link: id });
  const link = `${services.config.ISSUER}${VERIFY_PATH}?token=${token}${context.language ? `&ui_locales=${encodeURIComponent(context.language)}` : ''}`;
  const delivery = later(
    () => sendSecurityNotice(services, account, { type: 'verify_email', link, hours: VERIFY_TTL_SECONDS / 3600 }, { language: context.language, audit }),
    'the confirmation link could not be sent',
  );
  return { delivery };
}

/** Counts one request from the client address; a refusal is told (it reveals nothing). */
async function perClient(
  services: SignUpServices,
  context: SignUpContext,
  audit: AuditContext,
): Promise<{ ok: false; reason: 'throttled'; retryAfterSeconds: number } | undefined> {
  const verdict = await consume(services.db, SIGN_UP_PER_CLIENT, context.ip);
  if (verdict.allowed) return undefined;
  await recordAudit(services.db, 'signup.throttled', audit, { scope: 'address' });
  return { ok: false, reason: 'throttled', retryAfterSeconds: verdict.retryAfterSeconds };
}

export async function requestSignUp(services: SignUpServices, input: { email: string; password: string }, context: SignUpContext): Promise<SignUpOutcome> {
  const audit: AuditContext = { ip: context.ip, userAgent: context.userAgent, actor: 'user', clientId: context.clientId };
  const email = input.email.trim().toLowerCase();
  if (!emailSchema.safeParse(email).success || !usernameSchema.safeParse(email).success) return { ok: false, reason: 'invalid_email' };
  const verdict = newAccountPassword(services, { username: email, email }, input.password);
  if (!verdict.ok) return { ok: false, reason: 'refused', message: verdict.message };
  const throttled = await perClient(services, context, audit);
  if (throttled) return throttled;
  const done = { ok: true as const, delivery: Promise.resolve() };

  // Hashed whatever follows: a taken address must not answer faster than a free one.
  const passwordHash = await services.hasher.hash(verdict.password);
  const perEmail = await consume(services.db, SIGN_UP_PER_EMAIL, emailKey(services, email));
  const existing = await findByAddress(services, email);
  if (!perEmail.allowed) {
    await recordAudit(services.db, 'signup.throttled', { ...audit, accountId: existing?.id }, { scope: 'email' });
    return done;
  }
  if (existing) {
    await recordAudit(services.db, 'signup.existing', { ...audit, accountId: existing.id });
    // A pending account of the same address: the person may have lost the first email, or someone squats it.
    if (existing.sign_up_pending) {
      await services.db
        .updateTable('accounts')
        .set({ password_hash: passwordHash, password_changed_at: services.clock.now() })
        .where('id', '=', existing.id)
        .where('sign_up_pending', '=', true)
        .execute();
      return { ...done, ...(await sendLink(services, existing, context, audit)) };
    }
    return {
      ...done,
      delivery: later(
        () => sendSecurityNotice(services, existing, { type: 'sign_up_existing' }, { language: context.language, audit }),
        'the sign-up notice could not be sent',
      ),
    };
  }
  const now = services.clock.now();
  let account: Account;
  try {
    // One transaction: the account never exists without being pending.
    account = await services.db.transaction().execute(async (trx) => {
      const created = await createAccount(trx, services.hasher, { username: email, email, emailVerified: false });
      return trx
        .updateTable('accounts')
        .set({ sign_up_pending: true, password_hash: passwordHash, password_changed_at: now })
        .where('id', '=', created.id)
        .returningAll()
        .executeTakeFirstOrThrow();
    });
  } catch (err) {
    // Created by a parallel request between the look and the insert: the same answer.
    if (err instanceof AccountConflictError) return done;
    throw err;
  }
  await recordAudit(services.db, 'signup.created', { ...audit, accountId: account.id });
  return { ...done, ...(await sendLink(services, account, context, audit)) };
}

/** "Send the link again" for a pending account named by its address; the same answer whatever the address is. */
export async function resendVerification(
  services: SignUpServices,
  login: string,
  context: SignUpContext,
): Promise<Exclude<SignUpOutcome, { reason: 'invalid_email' | 'refused' }>> {
  const audit: AuditContext = { ip: context.ip, userAgent: context.userAgent, actor: 'user', clientId: context.clientId };
  const throttled = await perClient(services, context, audit);
  if (throttled) return throttled;
  const done = { ok: true as const, delivery: Promise.resolve() };
  const email = login.trim().toLowerCase().slice(0, 254);
  const account = await findByAddress(services, email);
  if (!account?.sign_up_pending) {
    await recordAudit(services.db, 'signup.resend', { ...audit, accountId: account?.id }, { sent: false });
    return done;
  }
  const perEmail = await consume(services.db, SIGN_UP_PER_EMAIL, emailKey(services, email));
  if (!perEmail.allowed) {
    await recordAudit(services.db, 'signup.throttled', { ...audit, accountId: account.id }, { scope: 'email' });
    return done;
  }
  await recordAudit(services.db, 'signup.resend', { ...audit, accountId: account.id }, { sent: true });
  return { ...done, ...(await sendLink(services, account, context, audit)) };
}

/** The password changed between the check and the confirmation: undone, and told as a used link. */
class LinkRaced extends Error {}

export type LinkOutcome = { ok: true; account: Account } | { ok: false; reason: 'unknown' | 'expired' | 'used' };
export type VerifyOutcome = LinkOutcome | { ok: false; reason: 'password' };

/** What a link is worth, without spending it. */
export async function inspectVerifyLink(services: Pick<Services, 'db' | 'codeHasher' | 'clock'>, token: string): Promise<LinkOutcome> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, reason: 'unknown' };
  const row = await services.db.selectFrom('email_verifications').selectAll().where('token_hash', '=', hashToken(services, token)).executeTakeFirst();
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.used_at || row.voided_at) return { ok: false, reason: 'used' };
  if (row.expires_at.getTime() <= services.clock.now().getTime()) return { ok: false, reason: 'expired' };
  const account = await services.db.selectFrom('accounts').selectAll().where('id', '=', row.account_id).executeTakeFirst();
  if (!account) return { ok: false, reason: 'unknown' };
  return { ok: true, account };
}

/**
 * With the password chosen at sign-up: spends the link and lets the account sign in, in one transaction (two
 * tabs cannot both use it). A wrong password spends nothing.
 */
export async function confirmEmail(services: SignUpServices, token: string, password: string, context: SignUpContext): Promise<VerifyOutcome> {
  const audit: AuditContext = { ip: context.ip, userAgent: context.userAgent, actor: 'user' };
  const state = await inspectVerifyLink(services, token);
  if (!state.ok) {
    await recordAudit(services.db, 'signup.link_refused', audit, { why: state.reason });
    return state;
  }
  const stored = state.account.password_hash;
  const verdict = stored ? await services.hasher.verify(stored, password) : (await services.hasher.verifyDummy(password), { ok: false });
  if (!verdict.ok) {
    await recordAudit(services.db, 'signup.link_refused', { ...audit, accountId: state.account.id }, { why: 'password' });
    return { ok: false, reason: 'password' };
  }
  const now = services.clock.now();
  // Both or neither: the link is spent only with the password just checked (a sign-up again in between replaced
  // it, and its own link confirms), and the account confirmed only by an unspent link.
  const spent = await services.db
    .transaction()
    .execute(async (trx) => {
      const link = await trx
        .updateTable('email_verifications')
        .set({ used_at: now })
        .where('token_hash', '=', hashToken(services, token))
        .where('used_at', 'is', null)
        .where('voided_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (Number(link.numUpdatedRows) !== 1) return false;
      const confirmed = await trx
        .updateTable('accounts')
        .set({ sign_up_pending: false, email_verified: true, updated_at: sql`now()` })
        .where('id', '=', state.account.id)
        .where('password_hash', '=', stored)
        .executeTakeFirst();
      if (Number(confirmed.numUpdatedRows) !== 1) throw new LinkRaced();
      return true;
    })
    .catch((err: unknown) => {
      if (err instanceof LinkRaced) return false;
      throw err;
    });
  if (!spent) {
    await recordAudit(services.db, 'signup.link_refused', audit, { why: 'used' });
    return { ok: false, reason: 'used' };
  }
  await recordAudit(services.db, 'signup.verified', { ...audit, accountId: state.account.id });
  return { ok: true, account: { ...state.account, sign_up_pending: false, email_verified: true } };
}
