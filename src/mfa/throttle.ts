/**
 * Second-factor throttles, separate from the password's, so wrong passwords
 * cannot lock a user out of their second factor and vice versa. Attempts are
 * counted before they are checked (one atomic statement for all three), so N parallel
 * guesses are checked at most `points` times; a success gives its point back,
 * so the counts are of failures.
 *
 * NIST SP 800-63B: at most 100 failed attempts per account in 24 hours.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { consumeAll, type LimitRule } from '../security/rate-limit.ts';
import { sql } from 'kysely';

/** A short burst: after 5 failures in 5 minutes the account's second factor is locked for the rest of the window. */
export const MFA_PER_ACCOUNT_BURST: LimitRule = { name: 'mfa:acct:5m', points: 5, windowSeconds: 5 * 60 };
/** The daily ceiling. */
export const MFA_PER_ACCOUNT_DAY: LimitRule = { name: 'mfa:acct:24h', points: 100, windowSeconds: 24 * 3600 };
/** Per client address, across accounts. */
export const MFA_PER_ADDRESS: LimitRule = { name: 'mfa:ip:15m', points: 50, windowSeconds: 15 * 60 };

export interface ThrottleVerdict {
  allowed: boolean;
  retryAfterSeconds: number;
}

/** The numbers an admin may set in the global policy (`throttle`); the names (counter keys) stay fixed. */
export interface ThrottleLimits {
  perAccountBurst: { points: number; windowSeconds: number };
  perAccountDay: { points: number; windowSeconds: number };
  perAddress: { points: number; windowSeconds: number };
}

export async function takeAttempt(db: Kysely<Database>, accountId: string, ip: string, limits?: ThrottleLimits): Promise<ThrottleVerdict> {
  const results = await consumeAll(db, [
    { rule: { ...MFA_PER_ACCOUNT_BURST, ...limits?.perAccountBurst }, subject: accountId },
    { rule: { ...MFA_PER_ACCOUNT_DAY, ...limits?.perAccountDay }, subject: accountId },
    { rule: { ...MFA_PER_ADDRESS, ...limits?.perAddress }, subject: ip },
  ]);
  const blocked = results.filter((r) => !r.allowed);
  return { allowed: blocked.length === 0, retryAfterSeconds: Math.max(0, ...blocked.map((r) => r.retryAfterSeconds)) };
}

/** A successful attempt gives its point back, so the windows count failures. */
export async function refundAttempt(db: Kysely<Database>, accountId: string, ip: string): Promise<void> {
  const keys = [`${MFA_PER_ACCOUNT_BURST.name}:${accountId}`, `${MFA_PER_ACCOUNT_DAY.name}:${accountId}`, `${MFA_PER_ADDRESS.name}:${ip}`];
  await db
    .updateTable('rate_limits')
    .set({ points: sql`greatest(points - 1, 0)` })
    .where('key', 'in', keys)
    .execute();
}
