/**
 * Second-factor throttles, separate from the password's, so wrong passwords
 * cannot lock a user out of their second factor and vice versa. Attempts are
 * counted before they are checked (one atomic statement for all three), so N
 * parallel guesses are checked at most `points` times. An attempt that is
 * refused, or that succeeds, gives its points back, so the counts are of
 * failed guesses that were actually checked.
 *
 * - Burst, per account: 5 failures, then each further guess waits 30 s,
 *   doubling up to 15 minutes (a backoff). Recovery-only factors (backup
 *   codes) have a burst counter of their own, so wrong authenticator codes do
 *   not lock the "lost your device?" fallback, nor the reverse.
 * - Daily, per account, every second factor together: never more than 100
 *   failures in any 24 hours (NIST SP 800-63B), a rolling window that holds
 *   across any span, not just calendar-like windows.
 * - Per client address, across accounts: 50 per 15 minutes.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { consumeAll, giveBack, withNumbers, type ConsumeResult, type Counted, type LimitRule } from '../security/rate-limit.ts';

/** The short-term brake: 5 free failures, then waits that double (30 s, 1 min, 2 min, … 15 min); the streak clears after 5 quiet minutes. */
export const MFA_PER_ACCOUNT_BURST = { name: 'mfa:acct:5m', kind: 'backoff', points: 5, windowSeconds: 5 * 60, delaySeconds: 30, maxDelaySeconds: 15 * 60 } as const satisfies LimitRule;
/** The same brake for recovery-only factors, counted on its own. */
export const MFA_RECOVERY_BURST = { ...MFA_PER_ACCOUNT_BURST, name: 'mfa:recovery:5m' } as const satisfies LimitRule;
/** The daily ceiling, over every second factor: at most 100 in any 24 hours. */
export const MFA_PER_ACCOUNT_DAY = { name: 'mfa:acct:24h', kind: 'rolling', points: 100, windowSeconds: 24 * 3600 } as const satisfies LimitRule;
/** Per client address, across accounts. */
export const MFA_PER_ADDRESS = { name: 'mfa:ip:15m', points: 50, windowSeconds: 15 * 60 } as const satisfies LimitRule;

/** NIST SP 800-63B's ceiling; the policy schema refuses more, and this module holds to it whatever it is given. */
const NIST_DAILY_MAX = 100;
const DAY = 24 * 3600;

/** The numbers an admin may set in the global policy (`throttle`); the names (counter keys) and kinds stay fixed. */
export interface ThrottleLimits {
  perAccountBurst: { points: number; windowSeconds: number; delaySeconds?: number; maxDelaySeconds?: number };
  perAccountDay: { points: number; windowSeconds: number };
  perAddress: { points: number; windowSeconds: number };
}

export interface ThrottleVerdict {
  allowed: boolean;
  retryAfterSeconds: number;
  /** What was counted for an allowed attempt: `refundAttempt` gives it back on success. */
  attempts: ReadonlyArray<Counted & { result: ConsumeResult }>;
}

/** The three counters of one guess, with the policy's numbers. */
export function mfaCounters(accountId: string, ip: string, limits?: ThrottleLimits, recovery = false): Counted[] {
  const base = recovery ? MFA_RECOVERY_BURST : MFA_PER_ACCOUNT_BURST;
  const b = limits?.perAccountBurst;
  const burst: LimitRule = {
    ...base,
    points: b?.points ?? base.points,
    windowSeconds: b?.windowSeconds ?? base.windowSeconds,
    delaySeconds: b?.delaySeconds ?? base.delaySeconds,
    maxDelaySeconds: Math.max(b?.maxDelaySeconds ?? base.maxDelaySeconds, b?.delaySeconds ?? base.delaySeconds),
  };
  const day = limits?.perAccountDay;
  return [
    { rule: burst, subject: accountId },
    {
      rule: { ...MFA_PER_ACCOUNT_DAY, points: Math.min(NIST_DAILY_MAX, day?.points ?? MFA_PER_ACCOUNT_DAY.points), windowSeconds: Math.max(DAY, day?.windowSeconds ?? DAY) },
      subject: accountId,
    },
    { rule: withNumbers(MFA_PER_ADDRESS, limits?.perAddress), subject: ip },
  ];
}

/**
 * Counts one guess before it is checked. `recovery`: the guess is at a
 * recovery-only factor (its own burst counter; the daily ceiling is shared).
 * `at` stands in for the database's clock (tests).
 */
export async function takeAttempt(db: Kysely<Database>, accountId: string, ip: string, limits?: ThrottleLimits, options: { recovery?: boolean; at?: Date } = {}): Promise<ThrottleVerdict> {
  const counters = mfaCounters(accountId, ip, limits, options.recovery);
  const results = await consumeAll(db, counters, 1, options.at);
  const attempts = counters.map((c, i) => ({ ...c, result: results[i]! }));
  const blocked = results.filter((r) => !r.allowed);
  if (!blocked.length) return { allowed: true, retryAfterSeconds: 0, attempts };
  // Refused, so never checked: not a failed guess. Without this a burst of parallel requests would fill the daily ceiling.
  await giveBack(db, attempts);
  return { allowed: false, retryAfterSeconds: Math.max(...blocked.map((r) => r.retryAfterSeconds)), attempts: [] };
}

/** A successful attempt gives its points back, so the counters count failures. */
export async function refundAttempt(db: Kysely<Database>, verdict: ThrottleVerdict): Promise<void> {
  await giveBack(db, verdict.attempts);
}
