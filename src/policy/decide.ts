/**
 * The policy engine: a pure function from what is known about a sign-in to a
 * decision. No I/O; every rule is a table test in test/unit/policy.
 */
import type { Evidence, FactorKind } from '../../factors/types.ts';
import { AcrTable, type Level } from './acr-table.ts';
import { amrOf, levelOf } from './levels.ts';

export type MfaMode = 'off' | 'optional' | 'required';

/** A factor as the policy sees it. */
export interface FactorFacts {
  id: string;
  kinds: FactorKind[];
  phishingResistant: boolean;
  recoveryOnly: boolean;
}

export interface PolicyInput {
  mfa: MfaMode;
  /** Factors the account has enrolled (at least one credential). */
  enrolled: FactorFacts[];
  /** Factors that may be enrolled. */
  available: FactorFacts[];
  request: {
    /** `acr_values`, voluntary, in order of preference. */
    acrValues: string[];
    /** Values of an essential `acr` claim: one must be met. */
    essentialAcr?: string[];
  };
  /** What the session or this interaction has proved. */
  evidence: Evidence[];
  acrTable?: AcrTable;
}

export type Decision =
  | { type: 'satisfied'; level: Level; acr: string | undefined; amr: string[]; rule: string }
  | { type: 'step_up'; level: Level; target: Level; factors: string[]; rule: string }
  | { type: 'enroll'; level: Level; target: Level; factors: string[]; optional: boolean; rule: string }
  | { type: 'unmet'; level: Level; target: Level; rule: string };

/** The highest level reachable from `evidence` plus any one more proof from `factors`. */
function reachable(evidence: Evidence[], factors: FactorFacts[]): Level {
  let best = levelOf(evidence);
  for (const f of factors) {
    const l = levelOf([...evidence, { factor: f.id, kinds: f.kinds, amr: [], phishingResistant: f.phishingResistant, at: 0 }]);
    if (l > best) best = l;
  }
  return best;
}

/** Factors whose one more proof lifts the evidence to `target`. */
function factorsReaching(evidence: Evidence[], factors: FactorFacts[], target: Level): string[] {
  return factors
    .filter((f) => levelOf([...evidence, { factor: f.id, kinds: f.kinds, amr: [], phishingResistant: f.phishingResistant, at: 0 }]) >= target)
    .map((f) => f.id);
}

export function decide(input: PolicyInput): Decision {
  const table = input.acrTable ?? new AcrTable();
  const achieved = levelOf(input.evidence);
  const primary = input.enrolled.filter((f) => !f.recoveryOnly);
  const hasSecondFactor = primary.length > 0;

  // What the policy demands, whatever the request says.
  let policyTarget: Level = 1;
  let rule = 'one factor is enough';
  if (input.mfa === 'required') {
    policyTarget = 2;
    rule = 'global policy: MFA required';
  } else if (input.mfa === 'optional' && hasSecondFactor) {
    policyTarget = 2;
    rule = 'global policy: MFA for accounts that enrolled a second factor';
  }

  // Enrolment inside sign-in: only while the account has no second factor
  // (adding one to an account that has one needs a proof of it first).
  const enrollable = hasSecondFactor ? [] : input.available.filter((f) => !f.recoveryOnly);
  const withEnrolled = reachable(input.evidence, primary.concat(input.enrolled.filter((f) => f.recoveryOnly)));
  const maxReachable = Math.max(withEnrolled, reachable(input.evidence, enrollable)) as Level;

  // What the request asks for.
  const essential = (input.request.essentialAcr ?? []).map((v) => table.levelOf(v)).filter((l): l is 1 | 2 | 3 => l !== undefined);
  const voluntary = input.request.acrValues.map((v) => table.levelOf(v)).find((l) => l !== undefined);
  let target: Level = policyTarget;
  let hardTarget: Level = policyTarget;
  if (input.request.essentialAcr?.length) {
    if (!essential.length) return { type: 'unmet', level: achieved, target: 3, rule: 'essential acr: none of the requested values is known' };
    const wanted = Math.min(...essential) as Level;
    if (wanted > target) {
      target = wanted;
      hardTarget = wanted;
      rule = `essential acr requested (level ${wanted})`;
    }
  } else if (voluntary !== undefined && voluntary > target) {
    // A voluntary request the account cannot reach gets the best it can.
    const best = Math.max(policyTarget, Math.min(voluntary, maxReachable)) as Level;
    if (best > target) {
      target = best;
      rule = voluntary > best ? `acr_values asked level ${voluntary}; level ${best} is the best this account can reach` : `acr_values requested (level ${voluntary})`;
    }
  }

  const requested = input.request.essentialAcr?.length ? input.request.essentialAcr : input.request.acrValues;
  if (achieved >= target) {
    return { type: 'satisfied', level: achieved, acr: table.acrFor(achieved, requested), amr: amrOf(input.evidence), rule };
  }
  if (withEnrolled >= target) {
    const all = input.enrolled;
    return { type: 'step_up', level: achieved, target, factors: factorsReaching(input.evidence, all, target), rule };
  }
  const canEnroll = factorsReaching(input.evidence, enrollable, target);
  if (canEnroll.length) {
    // Enrolment may be skipped only when nothing but a voluntary request wants it.
    const optional = hardTarget <= achieved;
    return { type: 'enroll', level: achieved, target, factors: canEnroll, optional, rule };
  }
  if (hardTarget > achieved) return { type: 'unmet', level: achieved, target: hardTarget, rule: `${rule}; no factor this account has or may enrol reaches it` };
  return { type: 'satisfied', level: achieved, acr: table.acrFor(achieved, requested), amr: amrOf(input.evidence), rule: `${rule}; best achievable` };
}
