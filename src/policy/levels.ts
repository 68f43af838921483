/**
 * Levels from evidence: assurance is computed from the set of proofs a session
 * holds, not from the last one. Two proofs of the same kind (two codes from
 * the same phone, a TOTP and a backup code) never count as two factors.
 */
import type { AmrValue, Evidence } from '../../factors/types.ts';
import type { Level } from './acr-table.ts';

export function levelOf(evidence: Evidence[]): Level {
  if (evidence.length === 0) return 0;
  const kinds = new Set(evidence.flatMap((e) => e.kinds));
  if (kinds.size < 2) return 1;
  return evidence.some((e) => e.phishingResistant) ? 3 : 2;
}

/** RFC 8176 values for the proofs, plus `mfa` when they span two kinds or more. */
export function amrOf(evidence: Evidence[]): AmrValue[] {
  const values = new Set<AmrValue>(evidence.flatMap((e) => e.amr));
  // A remembered device proves nothing in this authentication, so it never makes it `mfa`.
  const performed = evidence.filter((e) => !e.remembered);
  if (new Set(performed.flatMap((e) => e.kinds)).size >= 2) values.add('mfa');
  return [...values];
}

/** Merges new proofs into old ones: one entry per factor and credential, the newest kept. */
export function mergeEvidence(previous: Evidence[], added: Evidence[]): Evidence[] {
  const byKey = new Map<string, Evidence>();
  for (const e of [...previous, ...added]) byKey.set(`${e.factor}:${e.credentialId ?? ''}`, e);
  return [...byKey.values()].sort((a, b) => a.at - b.at);
}

export const PASSWORD_EVIDENCE = (at: number): Evidence => ({ factor: 'password', kinds: ['know'], amr: ['pwd'], phishingResistant: false, at });
