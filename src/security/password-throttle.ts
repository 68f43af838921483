/**
 * Password throttles (OWASP's device-cookie approach, docs/security.md
 * "Lockouts"). Failures count per account, whichever login (username or
 * email) was typed; a login that names no account counts under a keyed hash
 * of the name, on the same counters with the same numbers, so lockout
 * reveals nothing about which accounts exist.
 *
 * - A browser that has completed a sign-in to the account (known, see
 *   ./device-cookie.ts) has a counter of its own: 20 free
 *   failures, then waits from 30 s doubling to 15 minutes.
 * - Every other browser shares the account's counter for unknown browsers
 *   (the same backoff), and the per-address counter (100 per 15 minutes,
 *   across accounts).
 * - Over all of them, at most 100 failures per account in any 24 hours
 *   (NIST SP 800-63B), of which unknown browsers may use only a share (half
 *   unless set): an attacker's failures leave the known browsers theirs.
 *
 * The numbers come from the global policy's `throttle`; these are the
 * defaults and the counter names.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { attempt, clearCounters, dailyCeiling, refund, reset, withNumbers, type Counted, type LimitRule, type Verdict } from './rate-limit.ts';

/** Unknown browsers together, per account: 20 free failures, then waits that double from 30 s to 15 minutes; 15 quiet minutes clear the streak. */
export const PASSWORD_UNKNOWN_BROWSERS = {
  name: 'pwd:acct',
  kind: 'backoff',
  points: 20,
  windowSeconds: 15 * 60,
  delaySeconds: 30,
  maxDelaySeconds: 15 * 60,
} as const satisfies LimitRule;
/** Each known browser, per account: the same numbers, on its own. */
export const PASSWORD_KNOWN_BROWSER = { ...PASSWORD_UNKNOWN_BROWSERS, name: 'pwd:known' } as const satisfies LimitRule;
/** Every browser, per account: at most 100 failures in any 24 hours. */
export const PASSWORD_PER_ACCOUNT_DAY = { name: 'pwd:acct:24h', kind: 'rolling', points: 100, windowSeconds: 24 * 3600 } as const satisfies LimitRule;
/** Unknown browsers' share of the daily cap (points: half of it unless the policy says). */
export const PASSWORD_UNKNOWN_BROWSERS_DAY = { name: 'pwd:unknown:24h', kind: 'rolling', points: 50, windowSeconds: 24 * 3600 } as const satisfies LimitRule;
/** Per client address, across every login: slows spraying one password over many accounts. */
export const PASSWORD_PER_ADDRESS: LimitRule = { name: 'pwd:ip', points: 100, windowSeconds: 15 * 60 };

/** The rule names whose subjects are an account id: what clearing an account's lock deletes. */
export const ACCOUNT_SCOPED_PASSWORD_RULES = [
  PASSWORD_UNKNOWN_BROWSERS.name,
  PASSWORD_KNOWN_BROWSER.name,
  PASSWORD_PER_ACCOUNT_DAY.name,
  PASSWORD_UNKNOWN_BROWSERS_DAY.name,
] as const;

type Numbers = { points: number; windowSeconds: number };
type Burst = Numbers & { delaySeconds?: number; maxDelaySeconds?: number };

/** The numbers an admin may set (the global policy's `throttle`). */
export interface PasswordLimits {
  passwordUnknownBrowsers?: Burst;
  passwordKnownBrowser?: Burst;
  passwordPerAccountDay?: Numbers;
  passwordUnknownBrowsersDay?: Numbers;
  passwordPerAddress?: Numbers;
}

function backoff(base: Extract<LimitRule, { kind: 'backoff' }>, b: Burst | undefined): Extract<LimitRule, { kind: 'backoff' }> {
  const delaySeconds = b?.delaySeconds ?? base.delaySeconds;
  return {
    ...base,
    points: b?.points ?? base.points,
    windowSeconds: b?.windowSeconds ?? base.windowSeconds,
    delaySeconds,
    maxDelaySeconds: Math.max(b?.maxDelaySeconds ?? base.maxDelaySeconds, delaySeconds),
  };
}

/**
 * Who is guessing: `subject` is the account's id, or for a login that names no
 * account a keyed hash of it; `knownDevice` the browser's device id when it is
 * known to that account.
 */
export interface PasswordGuess {
  subject: string;
  ip: string;
  knownDevice?: string;
}

/** The counters of one password guess, with the policy's numbers. The first is the streak a success clears. */
export function passwordCounters(guess: PasswordGuess, limits?: PasswordLimits): Counted[] {
  const { day, share } = dailyCeiling(limits?.passwordPerAccountDay, limits?.passwordUnknownBrowsersDay, {
    day: PASSWORD_PER_ACCOUNT_DAY,
    share: PASSWORD_UNKNOWN_BROWSERS_DAY,
  });
  if (guess.knownDevice) {
    return [
      { rule: backoff(PASSWORD_KNOWN_BROWSER, limits?.passwordKnownBrowser), subject: `${guess.subject}:${guess.knownDevice}` },
      { rule: day, subject: guess.subject },
    ];
  }
  return [
    { rule: backoff(PASSWORD_UNKNOWN_BROWSERS, limits?.passwordUnknownBrowsers), subject: guess.subject },
    { rule: share, subject: guess.subject },
    { rule: day, subject: guess.subject },
    { rule: withNumbers(PASSWORD_PER_ADDRESS, limits?.passwordPerAddress), subject: guess.ip },
  ];
}

/** Counts one password guess before it is checked; a refused one is given back everywhere. */
export async function takePasswordAttempt(db: Kysely<Database>, guess: PasswordGuess, limits?: PasswordLimits): Promise<Verdict> {
  return attempt(db, passwordCounters(guess, limits));
}

/**
 * The right password: the guess is given back, and the streak of the counter
 * it came through (this known browser's, or the unknown browsers') clears. The
 * daily cap keeps the earlier failures: it counts them for a whole day.
 */
export async function passwordSucceeded(db: Kysely<Database>, guess: PasswordGuess, verdict: Verdict, limits?: PasswordLimits): Promise<void> {
  await refund(db, verdict);
  const [streak] = passwordCounters(guess, limits);
  await reset(db, streak!.rule, streak!.subject);
}

/** Deletes every password counter of an account (its known browsers' included). */
export async function clearPasswordCounters(db: Kysely<Database>, accountId: string): Promise<number> {
  return clearCounters(
    db,
    ACCOUNT_SCOPED_PASSWORD_RULES.map((name) => [name, accountId] as const),
  );
}
