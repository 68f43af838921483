/**
 * The policy engine: a pure function from what is known about a sign-in (the
 * account's factors, the client, the request, the evidence so far, the policy
 * documents, now) to a decision. No I/O; every rule is a table test in
 * test/unit/policy*.test.ts.
 *
 * Combination rule: requirements come from the global policy, the account's
 * groups, the app and the request; the strictest wins. A narrower document can
 * raise the bar, never lower it: levels take the maximum, allowed factors the
 * intersection. Request parameters (acr_values) are the user's to edit, so they
 * can only raise what the documents demand.
 */
import type { Evidence, FactorKind } from '../../factors/types.ts';
import { AcrTable, type Level } from './acr-table.ts';
import { amrOf, levelOf } from './levels.ts';
import { applyLevelAges } from './lapse.ts';

export type MfaMode = 'off' | 'optional' | 'required';

/** A factor as the policy sees it. */
export interface FactorFacts {
  id: string;
  kinds: FactorKind[];
  phishingResistant: boolean;
  recoveryOnly: boolean;
}

export interface GroupRequirement {
  name: string;
  level?: 1 | 2 | 3;
  factors?: string[];
  /** Until then, members without a second factor may skip enrolment (and are reminded). */
  enrollmentDeadline?: number;
}

export interface ClientRequirement {
  name: string;
  mfa?: MfaMode;
  /** The level of the client's minimum acr. */
  minLevel?: 1 | 2 | 3;
  factors?: string[];
  trustedDevices?: 'allow' | 'deny';
  /** `deny`: synced passkeys (amr `swk`) do not count. */
  syncedPasskeys?: 'allow' | 'deny';
  /** A minimum acr that the ACR table does not know (it changed since): the requirement cannot be met. */
  unknownMinAcr?: string;
}

export interface PolicyInput {
  /** The global MFA mode. */
  mfa: MfaMode;
  /** The global minimum level. */
  minLevel?: 1 | 2 | 3;
  /** Globally allowed factors (absent: all). */
  factors?: string[];
  /** Seconds a level stays proved. */
  levelMaxAge?: { '2'?: number; '3'?: number };
  /** Whether trusted devices are enabled globally. */
  trustedDevices?: boolean;
  groups?: GroupRequirement[];
  client?: ClientRequirement;
  /** Factors the account has enrolled (at least one credential). */
  enrolled: FactorFacts[];
  /** Factors that may be enrolled. */
  available: FactorFacts[];
  request: {
    /** `acr_values`, voluntary, in order of preference. */
    acrValues: string[];
    /** Where acr_values came from, for the trace (default `request`; e.g. an app's default_acr_values). */
    acrValuesSource?: string;
    /**
     * Essential `acr` requests (the claims parameter's id_token and userinfo members, in that order): each must be met
     * by one of its values, so together they ask for the highest of their lowest known levels.
     */
    essentialAcr?: string[][];
  };
  /** What the session or this interaction has proved. */
  evidence: Evidence[];
  /**
   * Where the decision is made: `sign-in` (the default) while the user is at the sign-in pages, `session` when the
   * provider checks an existing session for single sign-on. A group's enrolment reminder waits for a sign-in; a
   * request's acr_values opens its step from a session too, on every request that asks (never a silent lower level).
   */
  at?: 'sign-in' | 'session';
  /** The user skipped the optional step in this interaction: what the evidence reaches is the answer, truthfully. */
  skipped?: boolean;
  /**
   * The browser carries a valid trusted-device cookie for this account, and
   * the factor whose proof created it (null: a device trusted before Twofold
   * recorded that; it stands in for any allowed factor the account has).
   */
  trustedDevice?: { factor: string | null };
  /** Epoch seconds. */
  now?: number;
  acrTable?: AcrTable;
}

/** One rule that contributed, and where it came from: what `twofold policy explain` prints. */
export interface TraceEntry {
  source: string;
  rule: string;
}

interface Common {
  level: Level;
  rule: string;
  trace: TraceEntry[];
}

export type Decision =
  | (Common & { type: 'satisfied'; acr: string | undefined; amr: string[]; evidence: Evidence[]; remembered?: boolean; reminder?: { deadline: number } })
  | (Common & {
      type: 'step_up';
      target: Level;
      factors: string[];
      /** Only a wish (voluntary acr_values) wants it: the user may skip, and the app gets the lower level. */
      optional: boolean;
      trustedDeviceAllowed: boolean;
      /** The account holds only recovery codes: one proves who the user is, then a real second factor is enrolled (the proof itself adds no level). */
      enrollAfter?: true;
    })
  | (Common & { type: 'enroll'; target: Level; factors: string[]; optional: boolean; reminder?: { deadline: number } })
  | (Common & { type: 'unmet'; target: Level });

const probe = (f: FactorFacts): Evidence => ({ factor: f.id, kinds: f.kinds, amr: [], phishingResistant: f.phishingResistant, at: 0 });

/** The highest level reachable from `evidence` plus any one more proof from `factors`. */
function reachable(evidence: Evidence[], factors: FactorFacts[]): Level {
  let best = levelOf(evidence);
  for (const f of factors) best = Math.max(best, levelOf([...evidence, probe(f)])) as Level;
  return best;
}

/** Factors whose one more proof lifts the evidence to `target`. */
function factorsReaching(evidence: Evidence[], factors: FactorFacts[], target: Level): string[] {
  return factors.filter((f) => levelOf([...evidence, probe(f)]) >= target).map((f) => f.id);
}

/**
 * Which factors may count at all: the intersection of every document's list (undefined: all). With `trace`, each
 * narrowing is credited to the document that made it.
 */
export function allowedFactors(input: Pick<PolicyInput, 'factors' | 'groups' | 'client'>, trace?: TraceEntry[]): string[] | undefined {
  const documents: Array<[string, string[] | undefined]> = [
    ['global', input.factors],
    ...(input.groups ?? []).map((g): [string, string[] | undefined] => [`group ${g.name}`, g.factors]),
    [`client ${input.client?.name ?? ''}`, input.client?.factors],
  ];
  let sofar: string[] | undefined;
  for (const [source, list] of documents) {
    if (!list) continue;
    const next: string[] = sofar ? sofar.filter((id) => list.includes(id)) : [...list];
    const narrowed = !sofar || next.length < sofar.length;
    trace?.push({
      source,
      rule: narrowed ? `allowed factors narrowed to: ${next.join(', ') || '(none)'}` : `allowed factors: ${list.join(', ')} (narrows nothing further)`,
    });
    sofar = next;
  }
  return sofar;
}

export function decide(input: PolicyInput): Decision {
  const table = input.acrTable ?? new AcrTable();
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const trace: TraceEntry[] = [];

  const allowed = allowedFactors(input, trace);
  const isAllowed = (id: string) => id === 'password' || !allowed || allowed.includes(id);
  const enrolledAllowed = input.enrolled.filter((f) => isAllowed(f.id));
  const available = input.available.filter((f) => isAllowed(f.id));

  // Recovery codes are a fallback for a factor the account has, never a factor of their own:
  // they count only alongside an allowed factor that is not recovery-only.
  const primary = enrolledAllowed.filter((f) => !f.recoveryOnly);
  const recoveryCounts = primary.length > 0;
  const enrolledAll = recoveryCounts ? enrolledAllowed : [];
  const recoveryIds = new Set([...input.enrolled, ...input.available].filter((f) => f.recoveryOnly).map((f) => f.id));
  if (!recoveryCounts && input.enrolled.some((f) => f.recoveryOnly))
    trace.push({ source: 'account', rule: 'backup codes alone are not a second factor (no allowed factor they back up)' });

  // A remembered device is never carried as evidence: it is re-checked (cookie, revocation, binding) every time.
  const synced = (e: Evidence) => e.amr.includes('swk');
  const counted = input.evidence.filter(
    (e) => isAllowed(e.factor) && !e.remembered && !(input.client?.syncedPasskeys === 'deny' && synced(e)) && (recoveryCounts || !recoveryIds.has(e.factor)),
  );
  if (input.client?.syncedPasskeys === 'deny') trace.push({ source: `client ${input.client.name}`, rule: 'synced passkeys do not count' });
  const fresh = applyLevelAges(counted, input.levelMaxAge, now);
  for (const note of fresh.notes) trace.push({ source: 'global', rule: note });
  const evidence = fresh.evidence;
  const achieved = levelOf(evidence);

  // Whether the account opted in to a second factor, whatever this app allows:
  // narrowing the allowed factors must never lower what `optional` demands.
  const hasSecondFactor = input.enrolled.some((f) => !f.recoveryOnly);

  // What the documents demand (hard), whatever the request says.
  let hard: Level = 1;
  let rule = 'one factor is enough';
  const raise = (level: Level, source: string, why: string) => {
    trace.push({ source, rule: why });
    if (level > hard) {
      hard = level;
      rule = `${source}: ${why}`;
    }
  };
  const mode = (m: MfaMode | undefined, source: string) => {
    if (m === 'required') raise(2, source, 'MFA required');
    else if (m === 'optional' && hasSecondFactor) raise(2, source, 'MFA for accounts that enrolled a second factor');
    else if (m) trace.push({ source, rule: `MFA ${m}${m === 'optional' ? ' (no second factor enrolled)' : ''}` });
  };
  mode(input.mfa, 'global');
  if (input.minLevel && input.minLevel > 1) raise(input.minLevel, 'global', `minimum level ${input.minLevel}`);

  // Groups: a deadline lets members without a second factor skip enrolment until it passes.
  let graceUntil: number | undefined;
  for (const g of input.groups ?? []) {
    if (!g.level || g.level < 2) {
      if (g.level) raise(g.level, `group ${g.name}`, `level ${g.level}`);
      continue;
    }
    if (!hasSecondFactor && g.enrollmentDeadline !== undefined && now < g.enrollmentDeadline) {
      trace.push({ source: `group ${g.name}`, rule: `level ${g.level}, enrolment due by ${new Date(g.enrollmentDeadline * 1000).toISOString()} (reminding)` });
      graceUntil = Math.min(graceUntil ?? Infinity, g.enrollmentDeadline);
      continue;
    }
    // A deadline only gives grace to members without a second factor: say which of the two made it count now.
    const why =
      g.enrollmentDeadline === undefined
        ? ''
        : now >= g.enrollmentDeadline
          ? ' (enrolment deadline passed)'
          : ' (second factor enrolled; the enrolment deadline does not apply)';
    raise(g.level, `group ${g.name}`, `level ${g.level}${why}`);
  }

  if (input.client) {
    mode(input.client.mfa, `client ${input.client.name}`);
    if (input.client.minLevel) raise(input.client.minLevel, `client ${input.client.name}`, `minimum acr (level ${input.client.minLevel})`);
    if (input.client.unknownMinAcr) {
      const why = `minimum acr ${input.client.unknownMinAcr} is not in the ACR table`;
      trace.push({ source: `client ${input.client.name}`, rule: why });
      return { type: 'unmet', level: achieved, target: 3, rule: `client ${input.client.name}: ${why}`, trace };
    }
  }

  // Enrolment inside sign-in: only while the account has no second factor
  // (adding one to an account that has one needs a proof of it first).
  const enrollable = hasSecondFactor ? [] : available.filter((f) => !f.recoveryOnly);
  const withEnrolled = reachable(evidence, enrolledAll);
  const maxReachable = Math.max(withEnrolled, reachable(evidence, enrollable)) as Level;

  // What the request asks for.
  let target: Level = hard;
  // What raised the target above the documents' demand, if anything: the request's acr_values, or a group's reminder.
  let wish: 'request' | 'reminder' | undefined;
  const essentialRequests = input.request.essentialAcr ?? [];
  const voluntary = input.request.acrValues.map((v) => table.levelOf(v)).find((l) => l !== undefined);
  if (essentialRequests.length) {
    // One request is met by any of its values (its lowest known level); every request must be met (the highest of those).
    let wanted: Level = 1;
    for (const values of essentialRequests) {
      const known = values.map((v) => table.levelOf(v)).filter((l): l is 1 | 2 | 3 => l !== undefined);
      if (!known.length) return { type: 'unmet', level: achieved, target: 3, rule: 'essential acr: none of the requested values is known', trace };
      wanted = Math.max(wanted, Math.min(...known)) as Level;
    }
    trace.push({ source: 'request', rule: `essential acr (level ${wanted})` });
    if (wanted > hard) {
      hard = wanted;
      target = wanted;
      rule = `request: essential acr (level ${wanted})`;
    }
  } else if (voluntary !== undefined) {
    // A voluntary request the account cannot reach gets the best it can.
    const best = Math.max(hard, Math.min(voluntary, maxReachable)) as Level;
    const why = voluntary > best ? `acr_values asked level ${voluntary}; level ${best} is the best this account can reach` : `acr_values (level ${voluntary})`;
    const source = input.request.acrValuesSource ?? 'request';
    trace.push({ source, rule: why });
    if (best > target) {
      target = best;
      rule = `${source}: ${why}`;
      wish = 'request';
    }
  }
  // A group in its enrolment grace period still wants level 2: as a voluntary wish, so the user is reminded.
  const reminder = graceUntil !== undefined ? { deadline: graceUntil } : undefined;
  if (reminder && target < 2 && maxReachable >= 2) {
    target = 2;
    wish = 'reminder';
  }

  // The acr issued: the first value met, the ID token's request before userinfo's.
  const requested = essentialRequests.length ? essentialRequests.flat() : input.request.acrValues;
  const satisfied = (level: Level, ev: Evidence[], why: string, remembered = false): Decision => ({
    type: 'satisfied',
    level,
    acr: table.acrFor(level, requested),
    amr: amrOf(ev),
    evidence: ev,
    rule: why,
    trace,
    ...(remembered ? { remembered } : {}),
    ...(reminder ? { reminder } : {}),
  });

  if (achieved >= target) return satisfied(achieved, evidence, rule);

  // A trusted device stands in for a second factor the account has: level 2 at most, only where every document allows it,
  // and only for a factor this app accepts (the one whose proof created it), never for recovery codes.
  const deviceAllowed = input.trustedDevices === true && input.client?.trustedDevices !== 'deny' && target === 2;
  const device = input.trustedDevice;
  const deviceFactorOk = device !== undefined && (device.factor === null ? primary.length > 0 : primary.some((f) => f.id === device.factor));
  if (device && deviceAllowed && !deviceFactorOk)
    trace.push({
      source: 'device',
      rule: `a trusted device was presented, but ${device.factor ?? 'no factor'} it was created with is not one this app accepts`,
    });
  if (device && deviceAllowed && achieved >= 1 && deviceFactorOk) {
    const remembered: Evidence = { factor: 'trusted-device', kinds: ['have'], amr: [], phishingResistant: false, at: now, remembered: true };
    trace.push({ source: 'device', rule: 'a trusted device stands in for the second factor (level 2 at most)' });
    return satisfied(2, [...evidence, remembered], `${rule}; met by a trusted device`, true);
  }
  // What the documents demand is met and only a wish wants more: the step is offered, and may be skipped. A skip
  // answers with the level reached, truthfully; a reminder does not interrupt single sign-on (it waits for a sign-in).
  const optional = hard <= achieved;
  if (optional && input.skipped) return satisfied(achieved, evidence, `${rule}; the user skipped the optional step`);
  if (optional && wish === 'reminder' && input.at === 'session')
    return satisfied(achieved, evidence, `${rule}; the reminder is shown at the next sign-in, not on single sign-on`);
  if (withEnrolled >= target) {
    return {
      type: 'step_up',
      level: achieved,
      target,
      factors: factorsReaching(evidence, enrolledAll, target),
      optional,
      rule,
      trace,
      trustedDeviceAllowed: deviceAllowed,
    };
  }
  const canEnroll = factorsReaching(evidence, enrollable, target);
  // An account holding only recovery codes proves one before it may enrol (adding a factor to an account that
  // has one needs a proof of it): the codes are who the user is, not a second factor.
  const recoveryHeld = hasSecondFactor ? [] : input.enrolled.filter((f) => f.recoveryOnly);
  const recoveryProved = input.evidence.some((e) => !e.remembered && recoveryHeld.some((f) => f.id === e.factor));
  if (canEnroll.length && recoveryHeld.length && !recoveryProved) {
    if (hard > achieved) {
      return {
        type: 'step_up',
        level: achieved,
        target,
        factors: recoveryHeld.map((f) => f.id),
        optional: false,
        rule: `${rule}; the account has only backup codes: prove one, then set up a second factor`,
        trace,
        trustedDeviceAllowed: false,
        enrollAfter: true,
      };
    }
    return satisfied(achieved, evidence, `${rule}; best achievable (backup codes alone cannot enrol a factor without a proof)`);
  }
  if (canEnroll.length) {
    // Enrolment may be skipped only when nothing but a wish (voluntary acr_values, a group's grace period) wants it.
    return { type: 'enroll', level: achieved, target, factors: canEnroll, optional, rule, trace, ...(reminder ? { reminder } : {}) };
  }
  if (hard > achieved) return { type: 'unmet', level: achieved, target: hard, rule: `${rule}; no factor this account has or may enrol reaches it`, trace };
  return satisfied(achieved, evidence, `${rule}; best achievable`);
}
