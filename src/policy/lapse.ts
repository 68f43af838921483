/**
 * When a level stops being proved: its proofs grew too old (levelMaxAge), or
 * the session sat idle longer than the level allows (levelIdle, NIST SP
 * 800-63B rev 4's inactivity timeout). Either way the session falls back, and
 * only the proofs of the level still held are kept, so `acr` and `amr` say
 * truthfully what counts now. The session itself (its first factor) stays
 * signed in: what is asked again is the second factor, not the password.
 * Pure; decide() applies the ages, the provider's `mfa` check the idle limit.
 */
import type { Evidence } from '../../factors/types.ts';
import { levelOf } from './levels.ts';

export type LevelLimits = { '2'?: number; '3'?: number };

/**
 * The first factor: the newest password proof (prompt=login may prove it again
 * after a second factor, so it is not always the oldest proof), else the
 * oldest proof (a passkey sign-in).
 */
export function firstFactor(evidence: Evidence[]): Evidence | undefined {
  const passwords = evidence.filter((e) => e.factor === 'password');
  if (passwords.length) return passwords.reduce((a, b) => (a.at >= b.at ? a : b));
  return evidence.length ? evidence.reduce((a, b) => (a.at <= b.at ? a : b)) : undefined;
}

function min(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** Each level's limit, level 3 held to the shorter of both (a level-3 proof is also a level-2 one). */
export function limitsByLevel(limits: LevelLimits | undefined): { 3: number | undefined; 2: number | undefined } {
  return { 3: min(limits?.['3'], limits?.['2']), 2: limits?.['2'] };
}

/**
 * Drops what no longer holds each level, from the top down. `stillCounts(level)`
 * says which proofs still count toward that level (undefined: the level never
 * lapses). Level L is still proved when the proofs that count, plus the first
 * factor (the session is still signed in, unless that factor alone proved L,
 * as a passkey does), reach L. Falling back from level 3 drops the stale
 * phishing-resistant proofs (what made it level 3) and may leave a level 2 that
 * has lapsed too, which then drops every stale proof but the first factor.
 */
export function fallBack(
  evidence: Evidence[],
  stillCounts: (level: 2 | 3) => ((e: Evidence) => boolean) | undefined,
): { evidence: Evidence[]; lapsed: Array<2 | 3> } {
  let kept = evidence;
  const lapsed: Array<2 | 3> = [];
  for (const level of [3, 2] as const) {
    const counts = stillCounts(level);
    if (!counts || levelOf(kept) < level) continue;
    const first = firstFactor(kept);
    const stands = (e: Evidence) => e === first && levelOf([e]) < level;
    if (levelOf(kept.filter((e) => stands(e) || counts(e))) >= level) continue;
    kept = level === 3 ? kept.filter((e) => !e.phishingResistant || counts(e)) : kept.filter((e) => stands(e) || counts(e));
    if (levelOf(kept) >= level) kept = kept.filter((e) => stands(e) || counts(e));
    lapsed.push(level);
  }
  return { evidence: kept, lapsed };
}

/** levelMaxAge: a level whose proofs are older than its age no longer counts. */
export function applyLevelAges(evidence: Evidence[], maxAge: LevelLimits | undefined, now: number): { evidence: Evidence[]; notes: string[] } {
  const ages = limitsByLevel(maxAge);
  const { evidence: kept, lapsed } = fallBack(evidence, (level) => {
    const limit = ages[level];
    return limit === undefined ? undefined : (e) => now - e.at <= limit;
  });
  return { evidence: kept, notes: lapsed.map((level) => `level ${level} was proved more than ${ages[level]}s ago and no longer counts`) };
}

/**
 * levelIdle: a session unused for longer than a level's idle limit no longer
 * holds that level. Its last activity is the later of the recorded stamp and
 * its newest proof (a proof is activity); with neither, nothing lapses.
 */
export function applyIdle(
  evidence: Evidence[],
  idle: LevelLimits | undefined,
  lastActiveAt: number | undefined,
  now: number,
): { evidence: Evidence[]; lapsed: Array<2 | 3> } {
  const performed = evidence.filter((e) => !e.remembered).map((e) => e.at);
  const active = Math.max(lastActiveAt ?? -Infinity, ...performed);
  if (!Number.isFinite(active)) return { evidence, lapsed: [] };
  const limits = limitsByLevel(idle);
  return fallBack(evidence, (level) => {
    const limit = limits[level];
    return limit === undefined || now - active <= limit ? undefined : () => false;
  });
}
