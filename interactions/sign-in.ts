/**
 * Where a sign-in stands inside one interaction, and what comes next. The
 * state (which account passed the password, the evidence gathered) lives
 * server-side, keyed by the interaction; the provider hears nothing until the
 * whole requirement is met, so a half-finished sign-in can obtain nothing.
 */
import type { Context } from 'koa';
import type { Account } from '../src/db/schema.ts';
import type { Evidence, MessageRef } from '../factors/types.ts';
import { findAccountById } from '../src/accounts/accounts.ts';
import { InteractionState } from '../src/mfa/step-state.ts';
import { isTrustedDevice, readDeviceCookie } from '../src/mfa/trusted-devices.ts';
import { policyInput, requestFacts } from '../src/mfa/requirement.ts';
import { addFactorRequest, planAddFactor } from '../src/mfa/add-factor.ts';
import { loadSessionEvidence } from '../src/mfa/session-evidence.ts';
import { mergeEvidence, PASSWORD_EVIDENCE } from '../src/policy/levels.ts';
import { allowedFactors, decide, type Decision } from '../src/policy/decide.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';
import { epochSeconds } from '../src/clock.ts';
import { rememberBrowser } from './known-browser.ts';

export interface SignInState {
  accountId: string;
  evidence: Evidence[];
  /** The user chose to skip the optional step (an enrolment or a proof only a wish asked for). */
  skipped?: boolean;
  /** The factor to offer next (the registry's offerAfterFirstEnrollment: backup codes), once another was enrolled in this sign-in. */
  offerFollowUp?: string;
  /** The follow-up is backup codes offered again to an account that has none left (recovery-offer.ts): it may be declined. */
  recoveryOffer?: boolean;
  /** The person declined that offer in this sign-in. */
  recoveryDeclined?: boolean;
  /** A message to show before continuing (e.g. "2 backup codes left"), in the language of the page that shows it. */
  notice?: MessageRef;
  /** The factor added at the app's request (twofold_enroll), once enrolled. */
  added?: string;
  /** When the account's password was set as this sign-in began: a change since (a reset) voids the sign-in. */
  passwordSetAt?: string | null;
}

export interface SignIn {
  state: InteractionState;
  account: Account;
  data: SignInState;
  /** Step-up on an existing provider session (no password in this interaction). */
  stepUp: boolean;
}

const KEY = 'signin';

export function interactionState(deps: InteractionDeps, details: InteractionDetails): InteractionState {
  return InteractionState.of(deps.services, details.uid);
}

/** The sign-in in progress: after a password in this interaction, or a step-up of the session. */
export async function currentSignIn(deps: InteractionDeps, details: InteractionDetails): Promise<SignIn | undefined> {
  const state = interactionState(deps, details);
  const data = await state.get<SignInState>(KEY);
  if (data) {
    const account = await findAccountById(deps.services.db, data.accountId);
    if (!account || account.disabled || passwordStamp(account) !== data.passwordSetAt) return undefined;
    return { state, account, data, stepUp: false };
  }
  if (details.prompt.name === 'mfa' && details.session?.accountId) {
    const account = await findAccountById(deps.services.db, details.session.accountId);
    if (!account || account.disabled) return undefined;
    const evidence = (details.session.uid ? await loadSessionEvidence(deps.services.db, details.session.uid, account.id) : undefined) ?? [
      PASSWORD_EVIDENCE(epochSeconds(deps.services.clock)),
    ];
    return { state, account, data: { accountId: account.id, evidence, passwordSetAt: passwordStamp(account) }, stepUp: true };
  }
  return undefined;
}

/** What a password change moves (src/accounts/password-change.ts): a sign-in that began before it is void. */
function passwordStamp(account: Account): string | null {
  return account.password_changed_at?.toISOString() ?? null;
}

export async function saveSignIn(signIn: SignIn, deps: InteractionDeps): Promise<void> {
  await signIn.state.set(KEY, signIn.data, deps.services.config.INTERACTION_TTL);
}

/** `first`: the proof that identified the account (the password, or a first factor such as a passkey). */
export async function startSignIn(
  deps: InteractionDeps,
  details: InteractionDetails,
  account: Account,
  first: Evidence = PASSWORD_EVIDENCE(epochSeconds(deps.services.clock)),
): Promise<SignIn> {
  const state = interactionState(deps, details);
  const signIn: SignIn = { state, account, data: { accountId: account.id, evidence: [first], passwordSetAt: passwordStamp(account) }, stepUp: false };
  await saveSignIn(signIn, deps);
  return signIn;
}

export function addEvidence(signIn: SignIn, evidence: Evidence): void {
  signIn.data.evidence = mergeEvidence(signIn.data.evidence, [evidence]);
}

/**
 * What this sign-in needs next: the policy's decision, then, when the app asked
 * for a method to be added (twofold_enroll), the proof and enrolment that takes.
 */
export type Step = (Decision & { adding?: true }) | { type: 'refused'; description: string };

export async function decisionFor(ctx: Context, deps: InteractionDeps, details: InteractionDetails, signIn: SignIn): Promise<Step> {
  const now = epochSeconds(deps.services.clock);
  const input = await policyInput(deps.services, {
    accountId: signIn.account.id,
    clientId: String(details.params.client_id),
    request: requestFacts(details.params),
    evidence: signIn.data.evidence,
    trustedDevice: await isTrustedDevice(deps.services.db, signIn.account.id, readDeviceCookie(ctx)),
    now,
    at: 'sign-in',
    skipped: signIn.data.skipped,
  });
  const decision = decide(input);
  const requested = addFactorRequest(details.params);
  // The policy comes first: what it still demands (a proof, a required enrolment) is done before anything is added.
  if (!requested || signIn.data.added || decision.type === 'step_up' || decision.type === 'unmet' || (decision.type === 'enroll' && !decision.optional))
    return decision;
  const plan = planAddFactor({
    requested,
    enrolled: input.enrolled,
    allowed: allowedFactors(input),
    available: input.available,
    evidence: signIn.data.evidence,
    now,
    maxAge: deps.services.config.ADD_FACTOR_MAX_AUTH_AGE,
  });
  const common = { level: decision.level, target: decision.level, trace: decision.trace };
  switch (plan.type) {
    case 'refused':
      return plan;
    case 'prove':
      return {
        ...common,
        type: 'step_up',
        factors: plan.factors,
        optional: false,
        trustedDeviceAllowed: false,
        rule: 'adding a sign-in method: first prove one the account has',
        adding: true,
      };
    case 'enroll':
      return { ...common, type: 'enroll', factors: plan.factors, optional: false, rule: 'adding a sign-in method', adding: true };
  }
}

/** auth_time: when the last proof performed in this authentication was made. */
function authTime(signIn: SignIn, now: number): number {
  const performed = signIn.data.evidence.filter((e) => !e.remembered);
  return performed.length ? Math.max(...performed.map((e) => e.at)) : now;
}

/**
 * Resolves the whole interaction with one interactionFinished, once the
 * requirement is met. auth_time becomes now: the authentication that reached
 * this level completed now (step-up included), so max_age counts from here.
 */
export async function finishSignIn(ctx: Context, deps: InteractionDeps, signIn: SignIn, decision: Extract<Decision, { type: 'satisfied' }>): Promise<void> {
  await signIn.state.clear();
  // Whoever got this far met the whole requirement: from now on this browser has throttle counters of its own for the account.
  rememberBrowser(ctx, deps, signIn.account);
  await deps.provider().interactionFinished(
    ctx.req,
    ctx.res,
    {
      login: { accountId: signIn.account.id, amr: decision.amr, acr: decision.acr, ts: authTime(signIn, epochSeconds(deps.services.clock)), remember: true },
      // A remembered device is re-checked on every request, never stored as proof.
      // A skipped optional step travels with the result, so the provider's check does not ask again in this request.
      twofold: { evidence: signIn.data.evidence.filter((e) => !e.remembered), added: signIn.data.added, skipped: signIn.data.skipped },
    },
    { mergeWithLastSubmission: false },
  );
  ctx.respond = false;
}

export async function failSignIn(ctx: Context, deps: InteractionDeps, signIn: SignIn | undefined, error: string, description: string): Promise<void> {
  await signIn?.state.clear();
  await deps.provider().interactionFinished(ctx.req, ctx.res, { error, error_description: description }, { mergeWithLastSubmission: false });
  ctx.respond = false;
}
