/**
 * Second-factor throttles, separate from the password's, so wrong passwords
 * cannot lock a user out of their second factor and vice versa. Attempts are
 * counted before they are checked (one atomic statement for all counters), so
 * N parallel guesses are checked at most `points` times. An attempt that is
 * refused, or that succeeds, gives its points back, so the counts are of
 * failed guesses that were actually checked.
 *
 * A check that carries no guess (a waiting factor's poll: the engine gives
 * the factor no input) is counted only once it is definitive: an answer still
 * pending touches no counter, a failure (a denied approval) counts one. See
 * FactorEngine.check.
 *
 * Everything is counted per account *and factor*: wrong authenticator codes
 * never lock the backup codes, a passkey or an emailed code, nor the reverse.
 * A browser that has completed a sign-in to the account (a known browser, see
 * src/security/device-cookie.ts) is counted on its own, so someone who has
 * the password cannot lock the owner's own browser out:
 *
 * - Burst (a backoff: 5 failures, then waits from 30 s doubling up to 15
 *   minutes): unknown browsers share one per account and factor; each known
 *   browser has its own.
 * - Daily, per account and factor, every browser together: never more than
 *   100 failures in any 24 hours (NIST SP 800-63B), a rolling window. Unknown
 *   browsers together may use only a share of it (half unless set), so what
 *   they leave is always there for the known ones.
 * - Per client address, across accounts (unknown browsers): 50 per 15 minutes.
 *
 * Before any factor is proved (a passkey on the login page naming a
 * credential) no account is proved either: such failures count per
 * credential, per known browser and per address, never on the account's
 * counters, so forged assertions naming someone's credential cannot lock
 * their account.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { attempt, dailyCeiling, refund, withNumbers, type Counted, type LimitRule, type Verdict } from '../security/rate-limit.ts';

/** Unknown browsers' brake, per account and factor: 5 free failures, then waits that double (30 s, 1 min, 2 min, … 15 min); the streak clears after 5 quiet minutes. */
export const MFA_PER_ACCOUNT_BURST = {
  name: 'mfa:acct:5m',
  kind: 'backoff',
  points: 5,
  windowSeconds: 5 * 60,
  delaySeconds: 30,
  maxDelaySeconds: 15 * 60,
} as const satisfies LimitRule;
/** The same brake for each known browser, per account and factor. */
export const MFA_KNOWN_BROWSER_BURST = { ...MFA_PER_ACCOUNT_BURST, name: 'mfa:known:5m' } as const satisfies LimitRule;
/** The daily ceiling, per account and factor, over every browser: at most 100 in any 24 hours. */
export const MFA_PER_ACCOUNT_DAY = { name: 'mfa:acct:24h', kind: 'rolling', points: 100, windowSeconds: 24 * 3600 } as const satisfies LimitRule;
/** Unknown browsers' share of the daily ceiling (points: half of it unless the policy says). */
export const MFA_UNKNOWN_BROWSERS_DAY = { name: 'mfa:unknown:24h', kind: 'rolling', points: 50, windowSeconds: 24 * 3600 } as const satisfies LimitRule;
/** Per client address, across accounts. */
export const MFA_PER_ADDRESS = { name: 'mfa:ip:15m', points: 50, windowSeconds: 15 * 60 } as const satisfies LimitRule;
/** Before a factor is proved: per credential named, from unknown browsers (the burst's numbers). */
export const FIRST_FACTOR_PER_CREDENTIAL = { ...MFA_PER_ACCOUNT_BURST, name: 'ff:cred:5m' } as const satisfies LimitRule;
/** Before a factor is proved: per known browser of the credential's account (the known browser's numbers). */
export const FIRST_FACTOR_KNOWN_BROWSER = { ...MFA_PER_ACCOUNT_BURST, name: 'ff:known:5m' } as const satisfies LimitRule;

/**
 * Challenges of a waiting factor begun, per account and factor: each one reaches a person outside the
 * browser (a push to their phone), so someone holding the password cannot flood them with requests to
 * approve. Not a guess: counted apart from the guesses' counters.
 */
export const WAITING_CHALLENGES = { name: 'wait:begin:15m', points: 10, windowSeconds: 15 * 60 } as const satisfies LimitRule;

/** The rule names whose subjects start with an account id: what clearing an account's lock deletes. */
export const ACCOUNT_SCOPED_MFA_RULES = [
  MFA_PER_ACCOUNT_BURST.name,
  MFA_KNOWN_BROWSER_BURST.name,
  MFA_PER_ACCOUNT_DAY.name,
  MFA_UNKNOWN_BROWSERS_DAY.name,
  FIRST_FACTOR_KNOWN_BROWSER.name,
  WAITING_CHALLENGES.name,
] as const;

type Burst = { points: number; windowSeconds: number; delaySeconds?: number; maxDelaySeconds?: number };
type Numbers = { points: number; windowSeconds: number };

/** The numbers an admin may set in the global policy (`throttle`); the names (counter keys) and kinds stay fixed. */
export interface ThrottleLimits {
  perAccountBurst: Burst;
  knownBrowserBurst?: Burst;
  perAccountDay: Numbers;
  unknownBrowsersDay?: Numbers;
  perAddress: Numbers;
}

/** Who is guessing: the account and factor guessed at, from which address, and the browser's device id when it is known there. */
export interface Guess {
  accountId: string;
  factorId: string;
  ip: string;
  knownDevice?: string;
}

export type ThrottleVerdict = Verdict;

function burst(base: Extract<LimitRule, { kind: 'backoff' }>, b: Burst | undefined): LimitRule {
  return {
    ...base,
    points: b?.points ?? base.points,
    windowSeconds: b?.windowSeconds ?? base.windowSeconds,
    delaySeconds: b?.delaySeconds ?? base.delaySeconds,
    maxDelaySeconds: Math.max(b?.maxDelaySeconds ?? base.maxDelaySeconds, b?.delaySeconds ?? base.delaySeconds),
  };
}

/** The counters of one second-factor guess, with the policy's numbers. */
export function mfaCounters(guess: Guess, limits?: ThrottleLimits): Counted[] {
  const scope = `${guess.accountId}:${guess.factorId}`;
  const { day, share } = dailyCeiling(limits?.perAccountDay, limits?.unknownBrowsersDay, { day: MFA_PER_ACCOUNT_DAY, share: MFA_UNKNOWN_BROWSERS_DAY });
  if (guess.knownDevice) {
    return [
      { rule: burst(MFA_KNOWN_BROWSER_BURST, limits?.knownBrowserBurst), subject: `${scope}:${guess.knownDevice}` },
      { rule: day, subject: scope },
    ];
  }
  return [
    { rule: burst(MFA_PER_ACCOUNT_BURST, limits?.perAccountBurst), subject: scope },
    { rule: share, subject: scope },
    { rule: day, subject: scope },
    { rule: withNumbers(MFA_PER_ADDRESS, limits?.perAddress), subject: guess.ip },
  ];
}

/** The counters of a guess before any factor is proved: a credential was named (and, through it, an account). */
export function firstFactorCounters(guess: { credentialId: string; accountId: string; ip: string; knownDevice?: string }, limits?: ThrottleLimits): Counted[] {
  if (guess.knownDevice) return [{ rule: burst(FIRST_FACTOR_KNOWN_BROWSER, limits?.knownBrowserBurst), subject: `${guess.accountId}:${guess.knownDevice}` }];
  return [
    { rule: burst(FIRST_FACTOR_PER_CREDENTIAL, limits?.perAccountBurst), subject: guess.credentialId },
    { rule: withNumbers(MFA_PER_ADDRESS, limits?.perAddress), subject: guess.ip },
  ];
}

/** Counts one second-factor guess before it is checked. `at` stands in for the database's clock (tests). */
export async function takeAttempt(db: Kysely<Database>, guess: Guess, limits?: ThrottleLimits, options: { at?: Date } = {}): Promise<ThrottleVerdict> {
  return attempt(db, mfaCounters(guess, limits), options.at);
}

/** Counts one guess made before any factor is proved, never on the account's own counters. */
export async function takeFirstFactorAttempt(
  db: Kysely<Database>,
  guess: { credentialId: string; accountId: string; ip: string; knownDevice?: string },
  limits?: ThrottleLimits,
  options: { at?: Date } = {},
): Promise<ThrottleVerdict> {
  return attempt(db, firstFactorCounters(guess, limits), options.at);
}

/** A successful attempt gives its points back, so the counters count failures. */
export async function refundAttempt(db: Kysely<Database>, verdict: ThrottleVerdict): Promise<void> {
  await refund(db, verdict);
}
