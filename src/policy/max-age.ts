/**
 * A request's `max_age` (and an app's maximum authentication age) as the
 * provider applies it before the policy runs: when the session's
 * authentication is older, the user signs in again from the first factor and
 * nothing the session proved carries over; otherwise everything it proved
 * still counts (level ages aside, which decide() applies). The session's
 * authentication time is that of the last proof it performed (auth_time).
 * Pure; used by `twofold policy explain` so it says what a request would meet.
 */
import type { Evidence } from '../../factors/types.ts';
import { PASSWORD_EVIDENCE } from './levels.ts';

export interface MaxAgeOutcome {
  evidence: Evidence[];
  /** The session was too old: a fresh sign-in, from the password. */
  signInAgain: boolean;
  /** Seconds since the session's authentication. */
  age: number;
}

export function applyMaxAge(evidence: Evidence[], maxAge: number | undefined, now: number): MaxAgeOutcome {
  const performed = evidence.filter((e) => !e.remembered);
  const authTime = performed.length ? Math.max(...performed.map((e) => e.at)) : undefined;
  if (authTime === undefined) return { evidence: [PASSWORD_EVIDENCE(now)], signInAgain: true, age: 0 };
  const age = now - authTime;
  if (maxAge !== undefined && age > maxAge) return { evidence: [PASSWORD_EVIDENCE(now)], signInAgain: true, age };
  return { evidence: performed, signInAgain: false, age };
}
