/**
 * `twofold_enroll=any`: which method is added is the person's choice, among
 * those planAddFactor offers once an existing factor was proved. The choice is
 * the `factor` query parameter, as every "use … instead" link of the sign-in
 * pages already is: nothing is stored until the enrolment itself succeeds, so
 * going back to the list, or forging the parameter, changes nothing.
 *
 * Each method on the list says how enrolling it meets what the account has,
 * as the engine will store it (FactorEngine.finishEnrollment): a factor that
 * allows several credentials adds another, one that allows a single credential
 * replaces the one there is.
 */

/** What enrolling the method does to the account: a first one, one more, or a replacement of the only one. */
export type ChoiceEffect = 'new' | 'another' | 'replaces';

export interface Choice {
  id: string;
  effect: ChoiceEffect;
}

export interface AddableFactor {
  id: string;
  /** Whether an account may hold several credentials of it (FactorDescriptor.multiple). */
  multiple: boolean;
}

export interface ChoiceFacts {
  /** What planAddFactor offers, in its order. */
  offered: AddableFactor[];
  /** The factor ids the account holds a credential of. */
  enrolled: readonly string[];
  /** The `factor` parameter of the request, if any. */
  asked: string | undefined;
}

export type ChoiceStep =
  /** `choosable`: the person reached it through the list and may go back to it. */
  | { type: 'enroll'; factor: string; choosable: boolean }
  | { type: 'choose'; choices: Choice[] }
  /** A method that is not on the list: refused, whatever the page offered. */
  | { type: 'refused'; asked: string };

/** Whether to show the list, the enrolment of the method chosen, or a refusal. Pure: unit-tested. */
export function chooseFactorToAdd(facts: ChoiceFacts): ChoiceStep {
  const { offered, asked } = facts;
  if (!offered.length) throw new Error('chooseFactorToAdd needs at least one factor to offer');
  // One method (an app that named it, or a policy that leaves one): nothing to choose.
  if (offered.length === 1) return { type: 'enroll', factor: offered[0]!.id, choosable: false };
  if (!asked) return { type: 'choose', choices: offered.map((f) => ({ id: f.id, effect: effectOf(f, facts.enrolled) })) };
  if (offered.some((f) => f.id === asked)) return { type: 'enroll', factor: asked, choosable: true };
  return { type: 'refused', asked };
}

function effectOf(factor: AddableFactor, enrolled: readonly string[]): ChoiceEffect {
  if (!enrolled.includes(factor.id)) return 'new';
  return factor.multiple ? 'another' : 'replaces';
}
