/**
 * Adding a sign-in method later, at an app's request (like Keycloak's
 * application-initiated actions): the app's "Security settings" page sends the
 * user to the authorization endpoint with `twofold_enroll=<factor id>` (or
 * `any`). The user signs in as the policy demands, proves a method they
 * already have, enrols the new one and returns to the app. Declining returns
 * `access_denied`.
 *
 * Adding a method is as sensitive as changing a password, so it needs a recent
 * sign-in (config ADD_FACTOR_MAX_AUTH_AGE) and, when the account has any factor, a
 * fresh proof of one of them in that time: never a remembered device, never a
 * session from long ago. Backup codes count as that proof on purpose: they are
 * how a user who lost their phone enrols the new one. Backup codes themselves
 * are refused to an account that has no other factor: they back one up and are
 * never a user's only factor.
 */
import type { Evidence } from '../../factors/types.ts';
import type { FactorRegistry } from '../../factors/registry.ts';
import type { FactorFacts } from '../policy/decide.ts';

export const ADD_FACTOR_PARAM = 'twofold_enroll';
const ANY = 'any';

/** The factor an authorization request asks the user to add: an id, `any`, or undefined. */
export function addFactorRequest(params: Record<string, unknown>): string | undefined {
  const value = params[ADD_FACTOR_PARAM];
  return typeof value === 'string' && value ? value : undefined;
}

/** Why a value of the parameter is refused at the authorization endpoint, or undefined when it is fine. */
export function invalidAddFactorRequest(registry: FactorRegistry, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (value === ANY || (typeof value === 'string' && registry.get(value))) return undefined;
  return `${ADD_FACTOR_PARAM} must be "any" or one of: ${registry.ids().join(', ')}`;
}

/** Whether the factor just enrolled answers the request. */
export function answersRequest(requested: string, enrolled: string): boolean {
  return requested === ANY || requested === enrolled;
}

export type AddFactorPlan = { type: 'prove'; factors: string[] } | { type: 'enroll'; factors: string[] } | { type: 'refused'; description: string };

export interface AddFactorFacts {
  requested: string;
  /** Every factor the account has enrolled, whatever the policy allows. */
  enrolled: FactorFacts[];
  /** Which factor ids the policy lets count for this app (undefined: all). */
  allowed: string[] | undefined;
  /** Every registered factor. */
  available: FactorFacts[];
  evidence: Evidence[];
  now: number;
  /** Seconds within which the proof of an existing factor must have been made. */
  maxAge: number;
}

/** A proof made in this sign-in (or moments before it), of something other than the password. */
function freshFactorProof(evidence: Evidence[], now: number, maxAge: number): boolean {
  return evidence.some((e) => e.factor !== 'password' && !e.remembered && now - e.at <= maxAge);
}

/** What the user must do next to add the requested method. Pure: every rule is unit-tested. */
export function planAddFactor(facts: AddFactorFacts): AddFactorPlan {
  const isAllowed = (id: string) => !facts.allowed || facts.allowed.includes(id);
  const hasOther = facts.enrolled.some((f) => !f.recoveryOnly);
  // `any` offers recovery codes only where they would back something up, and last.
  const candidates =
    facts.requested === ANY
      ? [...facts.available.filter((f) => !f.recoveryOnly), ...(hasOther ? facts.available.filter((f) => f.recoveryOnly) : [])]
      : facts.available.filter((f) => f.id === facts.requested);
  const offered = candidates.filter((f) => isAllowed(f.id)).map((f) => f.id);
  if (!offered.length) {
    return {
      type: 'refused',
      description:
        facts.requested === ANY ? 'no sign-in method may be added for this application' : `the policy does not allow ${facts.requested} for this application`,
    };
  }
  // Recovery codes back up another method; they are never an account's only factor.
  if (!hasOther && candidates.every((f) => f.recoveryOnly)) {
    return { type: 'refused', description: `${facts.requested} only back up another sign-in method: add one first` };
  }
  if (facts.enrolled.length && !freshFactorProof(facts.evidence, facts.now, facts.maxAge)) {
    // Prefer what the policy lets count; a factor the app does not accept still proves who the user is.
    const permitted = facts.enrolled.filter((f) => isAllowed(f.id));
    return { type: 'prove', factors: (permitted.length ? permitted : facts.enrolled).map((f) => f.id) };
  }
  return { type: 'enroll', factors: offered };
}
