/**
 * The second step: prove a further factor, or enrol one, until the policy is
 * met. Every factor is handled the same way through the engine; nothing here
 * knows what a TOTP code or a backup code is.
 */
import type { Context } from 'koa';
import type { StepView, Failure, FailureReason, MessageRef } from '../factors/types.ts';
import type { VerifyOutcome } from '../src/mfa/engine.ts';
import { factorRequest } from '../src/http/factor-request.ts';
import { clientAddress } from '../src/http/client-address.ts';
import type { AuditContext } from '../src/security/audit.ts';
import { addFactorRequest, answersRequest } from '../src/mfa/add-factor.ts';
import { page, readForm, type InteractionDeps, type InteractionDetails } from './context.ts';
import { factorLabel, speakerFor, type Speaker } from './render.ts';
import { addEvidence, currentSignIn, decisionFor, failSignIn, finishSignIn, interactionState, saveSignIn, type SignIn, type Step } from './sign-in.ts';
import { globalPolicy } from '../src/policy/store.ts';
import { setDeviceCookie, trustDevice } from '../src/mfa/trusted-devices.ts';
import { recordAudit } from '../src/security/audit.ts';
import { waitParams } from '../src/mfa/wait-text.ts';
import { readKnownBrowser } from './known-browser.ts';
import { factorToAdd } from './choose-factor.ts';
import { recoveryToOffer } from './recovery-offer.ts';

function auditContext(ctx: Context, details: InteractionDetails): AuditContext {
  return { ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), clientId: String(details.params.client_id), actor: 'user' };
}

/** What a failure means when its factor says nothing more. */
const GENERAL: Record<FailureReason, MessageRef> = {
  wrong: { key: 'failure.wrong' },
  suspected_clone: { key: 'failure.wrong' },
  expired: { key: 'failure.expired' },
  already_used: { key: 'failure.alreadyUsed' },
  locked: { key: 'failure.locked' },
  invalid_input: { key: 'failure.invalidInput' },
  not_enrolled: { key: 'failure.notEnrolled' },
  unavailable: { key: 'failure.unavailable' },
};

/** A failure in the person's language: the factor's own message, or what its reason means in general. */
export function failureMessage(ctx: Context, failure: Failure & { retryAfterSeconds?: number }): string {
  const { t } = speakerFor(ctx);
  // Not being enrolled is the same news whatever the factor.
  if (failure.message && failure.reason !== 'not_enrolled') return t(failure.message.key, failure.message.params);
  return t(GENERAL[failure.reason].key, failure.reason === 'locked' ? waitParams(failure.retryAfterSeconds ?? 60) : undefined);
}

function strings(form: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  // WebAuthn answers (JSON with an attestation certificate chain) run to a few KiB.
  for (const [k, v] of Object.entries(form)) if (typeof v === 'string') out[k] = v.slice(0, 16_384);
  return out;
}

/** Renders whatever the sign-in needs next, or finishes it. */
export async function advance(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  error?: string,
  status = 200,
): Promise<void> {
  const engine = deps.services.factors;
  if (signIn.data.notice) {
    const { key, params } = signIn.data.notice;
    const { t } = speakerFor(ctx);
    return page(ctx, 'notice', { title: t('secondFactor.noticeTitle'), uid: details.uid, clientName, notice: t(key, params) }, status);
  }
  const followUp = signIn.data.offerFollowUp;
  if (followUp && engine.registry.get(followUp)) {
    const reoffer = signIn.data.recoveryOffer === true;
    return showEnroll(ctx, deps, details, signIn, clientName, followUp, { optional: reoffer, reoffer, factors: [followUp] }, error, status);
  }
  const decision = await decisionFor(ctx, deps, details, signIn);
  switch (decision.type) {
    case 'satisfied':
      if (await offerRecovery(deps, signIn)) return ctx.redirect(`/interaction/${details.uid}`);
      return finishSignIn(ctx, deps, signIn, decision);
    case 'unmet':
      return failSignIn(ctx, deps, signIn, 'unmet_authentication_requirements', 'the requested authentication level cannot be reached for this account');
    case 'refused':
      return failSignIn(ctx, deps, signIn, 'access_denied', decision.description);
    case 'enroll': {
      if (!decision.adding) return showEnroll(ctx, deps, details, signIn, clientName, String(ctx.query.factor ?? ''), decision, error, status);
      // Adding at the app's request: the person picks the method when there is a choice (choose-factor.ts answers with the list, or refuses a forged pick).
      const chosen = await factorToAdd(ctx, deps, details, signIn, clientName, decision.factors);
      return chosen && showEnroll(ctx, deps, details, signIn, clientName, chosen.factor, { ...decision, choosable: chosen.choosable }, error, status);
    }
    case 'step_up':
      return showChallenge(ctx, deps, details, signIn, clientName, decision, error, status);
  }
}

/** What every step page shows about the factor at hand, its buttons' words in the person's language. */
function stepData(speaker: Speaker, details: InteractionDetails, clientName: string | undefined, factorId: string, view: StepView, error: string | undefined) {
  const { t } = speaker;
  const submit = view.submit && { ...view.submit, label: t(view.submit.label.key, view.submit.label.params) };
  const actions = view.actions?.map((a) => ({ ...a, label: t(a.label.key, a.label.params) }));
  return {
    uid: details.uid,
    clientName,
    factorId,
    factorLabel: factorLabel(speaker, factorId),
    partial: view.partial,
    view: view.data,
    submit,
    actions,
    error,
  };
}

/** Factor ids with their labels, for "use … instead" links. */
function labelled(speaker: Speaker, ids: string[]): Array<{ id: string; label: string }> {
  return ids.map((id) => ({ id, label: factorLabel(speaker, id) }));
}

async function showChallenge(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  decision: Extract<Step, { type: 'step_up' }>,
  error: string | undefined,
  status: number,
): Promise<void> {
  const engine = deps.services.factors;
  const usable = decision.factors;
  const primary = usable.filter((id) => !engine.registry.get(id)?.factor.recoveryOnly);
  const asked = String(ctx.query.factor ?? '');
  const factorId =
    (usable.includes(asked) && asked) ||
    (signIn.account.last_factor_id && primary.includes(signIn.account.last_factor_id) && signIn.account.last_factor_id) ||
    primary[0] ||
    usable[0]!;
  const registered = engine.registry.get(factorId)!;
  // Begun once per step: a reload shows the same challenge (no second push, no new WebAuthn challenge).
  const step = await engine.challenge(factorId, signIn.account, signIn.state, auditContext(ctx, details), {
    returnUrl: `${deps.services.config.ISSUER}/interaction/${details.uid}/factor/${factorId}/return`,
  });
  const adding = decision.adding === true;
  // A device stands in only for the factor that proved the sign-in that trusted it, never for a recovery code, so the box is not offered there.
  const trustDays =
    decision.trustedDeviceAllowed && !registered.factor.recoveryOnly
      ? (await globalPolicy(deps.services.db, deps.services.config.MFA)).policy.trustedDevices.days
      : undefined;
  const speaker = speakerFor(ctx);
  if (step.over?.reason === 'locked') ctx.set('Retry-After', String(step.over.retryAfterSeconds ?? 60));
  page(
    ctx,
    'second-factor',
    {
      title: speaker.t(signIn.stepUp || adding ? 'secondFactor.confirmTitle' : 'secondFactor.title'),
      adding,
      optional: decision.optional && !adding,
      ...stepData(speaker, details, clientName, factorId, step.view, error ?? (step.over && failureMessage(ctx, step.over))),
      // A factor whose answer comes from outside the page: the page waits (polling, or "Check again"); once over, "Start again".
      ...(step.waits ? { wait: { over: step.over !== undefined, expiresAt: step.expiresAt } } : {}),
      trustDays,
      others: labelled(
        speaker,
        primary.filter((id) => id !== factorId),
      ),
      recovery: labelled(
        speaker,
        usable.filter((id) => id !== factorId && engine.registry.get(id)!.factor.recoveryOnly),
      ),
      // No backup codes to fall back on: the way out is an administrator (the page says so).
      noRecovery: !usable.some((id) => engine.registry.get(id)!.factor.recoveryOnly),
    },
    status,
  );
}

async function showEnroll(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  asked: string,
  decision: { optional: boolean; factors: string[]; reminder?: { deadline: number }; adding?: true; choosable?: boolean; reoffer?: boolean },
  error: string | undefined,
  status: number,
): Promise<void> {
  const engine = deps.services.factors;
  const factorId = decision.factors.includes(asked) ? asked : decision.factors[0]!;
  const registered = engine.registry.get(factorId)!;
  const view = await engine.beginEnrollment(factorId, signIn.account, signIn.state);
  const adding = decision.adding === true;
  // An account holds one credential of such a factor: enrolling again replaces it (a new set of backup codes), and the page says so.
  const replaces = adding && !registered.factor.multiple && (await engine.store.list(signIn.account.id, factorId)).length > 0;
  const speaker = speakerFor(ctx);
  const ownTitle = registered.factor.enrollPage?.title;
  page(
    ctx,
    'enroll',
    {
      title: ownTitle
        ? speaker.t(ownTitle.key, ownTitle.params)
        : adding
          ? speaker.t('enroll.addTitle', { factor: factorLabel(speaker, factorId) })
          : speaker.t('enroll.title'),
      adding,
      replaces,
      intro: registered.factor.enrollPage?.intro ?? true,
      ...stepData(speaker, details, clientName, factorId, view, error),
      optional: decision.optional,
      // The deadline's day (UTC), as the person's language writes a date.
      reminder: decision.reminder
        ? new Intl.DateTimeFormat(speaker.lang, { dateStyle: 'long', timeZone: 'UTC' }).format(decision.reminder.deadline * 1000)
        : undefined,
      // Chosen from the list: the way to another method is back to the list.
      others: decision.choosable
        ? []
        : labelled(
            speaker,
            decision.factors.filter((id) => id !== factorId),
          ),
      choosable: decision.choosable,
      reoffer: decision.reoffer,
    },
    status,
  );
}

export async function submitFactor(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const signIn = await currentSignIn(deps, details);
  if (!signIn) return ctx.redirect(`/interaction/${details.uid}`);
  const factorId = String(ctx.params.factor);
  const decision = await decisionFor(ctx, deps, details, signIn);
  if (decision.type !== 'step_up' || !decision.factors.includes(factorId)) return ctx.redirect(`/interaction/${details.uid}`);
  const input = strings(await readForm(ctx));
  if (input.action) return submitAction(ctx, deps, details, signIn, clientName, factorId, 'challenge', input);
  const outcome = await deps.services.factors.verify(factorId, signIn.account, signIn.state, input, auditContext(ctx, details), readKnownBrowser(ctx, deps));
  return answered(ctx, deps, details, signIn, clientName, decision, factorId, outcome, input.trust === 'yes');
}

/** What a proof, a check or a return came to, as a page: the sign-in moves on, waits, or the step is shown with what went wrong. */
async function answered(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  decision: Extract<Step, { type: 'step_up' }>,
  factorId: string,
  outcome: VerifyOutcome,
  trust: boolean,
): Promise<void> {
  ctx.query = { ...ctx.query, factor: factorId };
  if (!outcome.ok && outcome.reason === 'pending') return ctx.redirect(`/interaction/${details.uid}?factor=${encodeURIComponent(factorId)}`);
  if (!outcome.ok) {
    if (outcome.reason === 'locked') ctx.set('Retry-After', String(outcome.retryAfterSeconds ?? 60));
    return advance(ctx, deps, details, signIn, clientName, failureMessage(ctx, outcome), outcome.reason === 'locked' ? 429 : 401);
  }
  await proved(ctx, deps, details, signIn, decision, factorId, outcome, trust);
  await proceed(ctx, deps, details, signIn);
}

/** A proof joins the sign-in's evidence; "don't ask again on this device" is honoured where the policy allows it. */
async function proved(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  decision: Extract<Step, { type: 'step_up' }>,
  factorId: string,
  outcome: Extract<VerifyOutcome, { ok: true }>,
  trust: boolean,
): Promise<void> {
  addEvidence(signIn, outcome.evidence);
  if (outcome.notice) signIn.data.notice = outcome.notice;
  if (trust && decision.trustedDeviceAllowed && !deps.services.factors.registry.get(factorId)?.factor.recoveryOnly) {
    const { config, db } = deps.services;
    const days = (await globalPolicy(db, config.MFA)).policy.trustedDevices.days;
    const device = await trustDevice(db, signIn.account.id, ctx.get('user-agent'), days, factorId);
    setDeviceCookie(ctx, device.cookie, device.expires, config.secureCookies);
    await recordAudit(db, 'device.trusted', { ...auditContext(ctx, details), accountId: signIn.account.id }, { device: device.id, days });
  }
}

/** The step of `factorId` when the sign-in is at it: the sign-in and the decision, or undefined. */
async function atStep(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  factorId: string,
): Promise<{ signIn: SignIn; decision: Extract<Step, { type: 'step_up' }> } | undefined> {
  const signIn = await currentSignIn(deps, details);
  if (!signIn) return undefined;
  const decision = await decisionFor(ctx, deps, details, signIn);
  if (decision.type !== 'step_up' || !decision.factors.includes(factorId)) return undefined;
  return { signIn, decision };
}

/**
 * A waiting factor's check, carrying no guess: GET answers JSON for the page's script
 * (`pending`, or where to go now), POST is the "Check again" button without script.
 * What ended the wait (an approval, a denial, the expiry) is kept by the engine, so the
 * page the script goes to next shows it.
 */
export async function checkFactor(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const factorId = String(ctx.params.factor);
  const json = ctx.method === 'GET';
  const stepPage = `/interaction/${details.uid}?factor=${encodeURIComponent(factorId)}`;
  const at = deps.services.factors.registry.get(factorId)?.factor.waits ? await atStep(ctx, deps, details, factorId) : undefined;
  if (!at) {
    if (!json) return ctx.redirect(`/interaction/${details.uid}`);
    return answerJson(ctx, { status: 'moved', next: `/interaction/${details.uid}` });
  }
  const { signIn, decision } = at;
  const trust = json ? ctx.query.trust === 'yes' : strings(await readForm(ctx)).trust === 'yes';
  const outcome = await deps.services.factors.check(factorId, signIn.account, signIn.state, auditContext(ctx, details), readKnownBrowser(ctx, deps));
  if (!json) return answered(ctx, deps, details, signIn, clientName, decision, factorId, outcome, trust);
  if (!outcome.ok && outcome.reason === 'pending')
    return answerJson(ctx, { status: 'pending', ...(outcome.expiresAt ? { expiresAt: new Date(outcome.expiresAt).toISOString() } : {}) });
  if (!outcome.ok) return answerJson(ctx, { status: outcome.reason === 'expired' ? 'expired' : 'failed', next: stepPage });
  // Saved with the proof; the page the script goes to finishes the sign-in or shows the next step.
  await proved(ctx, deps, details, signIn, decision, factorId, outcome, trust);
  await saveSignIn(signIn, deps);
  answerJson(ctx, { status: 'done', next: `/interaction/${details.uid}` });
}

function answerJson(ctx: Context, body: Record<string, unknown>): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'json';
  ctx.body = body;
}

/** "Start again": the waiting challenge ends and a new one is begun when the page is shown. */
export async function restartFactor(ctx: Context, deps: InteractionDeps, details: InteractionDetails): Promise<void> {
  const factorId = String(ctx.params.factor);
  if (deps.services.factors.registry.get(factorId) && (await atStep(ctx, deps, details, factorId)))
    await deps.services.factors.restartChallenge(factorId, interactionState(deps, details));
  ctx.redirect(`/interaction/${details.uid}?factor=${encodeURIComponent(factorId)}`);
}

/**
 * The browser coming back to a factor's challenge (a redirect from another site): the factor
 * reads what it brought, through the engine, as a plain request (query, form, its declared headers).
 */
export async function returnToFactor(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const factorId = String(ctx.params.factor);
  const registered = deps.services.factors.registry.get(factorId);
  const at = registered?.factor.routes?.return ? await atStep(ctx, deps, details, factorId) : undefined;
  if (!at) return ctx.redirect(`/interaction/${details.uid}`);
  const request = await factorRequest(ctx, registered!.factor.routes!.return!.headers ?? []);
  if (!request.ok) return advance(ctx, deps, details, at.signIn, clientName, failureMessage(ctx, { ok: false, reason: 'invalid_input' }), 400);
  const outcome = await deps.services.factors.handleReturn(
    factorId,
    at.signIn.account,
    at.signIn.state,
    request.request,
    auditContext(ctx, details),
    readKnownBrowser(ctx, deps),
  );
  return answered(ctx, deps, details, at.signIn, clientName, at.decision, factorId, outcome, false);
}

/**
 * After a step that moved the sign-in along: when nothing more is needed, it is
 * finished in this response (a redirect to the provider's resume URL, so a reload
 * does not post the form again), which saves the browser a request and the
 * database the reads of showing the interaction again; otherwise the sign-in is
 * saved and the browser sent to the next page.
 */
async function proceed(ctx: Context, deps: InteractionDeps, details: InteractionDetails, signIn: SignIn): Promise<void> {
  if (!signIn.data.notice && !signIn.data.offerFollowUp) {
    const next = await decisionFor(ctx, deps, details, signIn);
    if (next.type === 'satisfied' && !(await offerRecovery(deps, signIn))) return finishSignIn(ctx, deps, signIn, next);
  }
  await saveSignIn(signIn, deps);
  ctx.redirect(`/interaction/${details.uid}`);
}

/** Before a sign-in finishes: backup codes again for an account that has none left (recovery-offer.ts). Saved when offered. */
async function offerRecovery(deps: InteractionDeps, signIn: SignIn): Promise<boolean> {
  const offer = await recoveryToOffer(deps, signIn);
  if (!offer) return false;
  signIn.data.offerFollowUp = offer;
  signIn.data.recoveryOffer = true;
  await saveSignIn(signIn, deps);
  return true;
}

export async function submitEnroll(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const signIn = await currentSignIn(deps, details);
  if (!signIn) return ctx.redirect(`/interaction/${details.uid}`);
  const engine = deps.services.factors;
  const factorId = String(ctx.params.factor);
  const offered = signIn.data.offerFollowUp === factorId;
  if (!offered) {
    const decision = await decisionFor(ctx, deps, details, signIn);
    // Enrolment inside sign-in only when the policy asks for it, or the app asked for a method
    // to be added and an existing one was proved afresh: never on the password alone.
    if (decision.type !== 'enroll' || !decision.factors.includes(factorId)) return ctx.redirect(`/interaction/${details.uid}`);
  }
  const input = strings(await readForm(ctx));
  if (input.action) return submitAction(ctx, deps, details, signIn, clientName, factorId, 'enroll', input);
  const outcome = await engine.finishEnrollment(
    factorId,
    signIn.account,
    signIn.state,
    input,
    auditContext(ctx, details),
    readKnownBrowser(ctx, deps),
    speakerFor(ctx).lang,
  );
  if (!outcome.ok) {
    ctx.query = { ...ctx.query, factor: factorId };
    return advance(ctx, deps, details, signIn, clientName, failureMessage(ctx, outcome), outcome.reason === 'locked' ? 429 : 400);
  }
  if (outcome.evidence) addEvidence(signIn, outcome.evidence);
  const requested = addFactorRequest(details.params);
  if (requested && !offered && answersRequest(requested, factorId)) signIn.data.added = factorId;
  if (offered) {
    delete signIn.data.offerFollowUp;
    delete signIn.data.recoveryOffer;
  } else {
    // After a first enrolment, the factor the registry offers next (backup codes), unless the account has it.
    const next = engine.registry.offeredAfterFirstEnrollment();
    if (next && next.factor.id !== factorId && !(await engine.store.list(signIn.account.id, next.factor.id)).length) signIn.data.offerFollowUp = next.factor.id;
  }
  await proceed(ctx, deps, details, signIn);
}

/**
 * A button that moves the step along without finishing it (send a code, send
 * another, call instead): the factor acts, and the same step is shown again,
 * with what went wrong if it failed (a code not sent leaves nothing behind).
 */
async function submitAction(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  factorId: string,
  step: 'enroll' | 'challenge',
  input: Record<string, string>,
): Promise<void> {
  const outcome = await deps.services.factors.act(
    factorId,
    step,
    signIn.account,
    signIn.state,
    input.action!,
    input,
    auditContext(ctx, details),
    speakerFor(ctx).lang,
  );
  if (outcome.ok) return ctx.redirect(`/interaction/${details.uid}?factor=${encodeURIComponent(factorId)}`);
  if (outcome.retryAfterSeconds) ctx.set('Retry-After', String(outcome.retryAfterSeconds));
  ctx.query = { ...ctx.query, factor: factorId };
  const status = outcome.reason === 'locked' ? 429 : outcome.reason === 'unavailable' ? 503 : 400;
  return advance(ctx, deps, details, signIn, clientName, failureMessage(ctx, outcome), status);
}

/** "Skip for now": only a step the policy calls optional (a wish) can be skipped; the app then gets the level reached. */
export async function skipStep(ctx: Context, deps: InteractionDeps, details: InteractionDetails): Promise<void> {
  const signIn = await currentSignIn(deps, details);
  if (signIn?.data.offerFollowUp && signIn.data.recoveryOffer) {
    // Backup codes offered again may be declined, for this sign-in.
    delete signIn.data.offerFollowUp;
    delete signIn.data.recoveryOffer;
    signIn.data.recoveryDeclined = true;
    return proceed(ctx, deps, details, signIn);
  }
  if (signIn) {
    const decision = await decisionFor(ctx, deps, details, signIn);
    if ((decision.type === 'enroll' || decision.type === 'step_up') && decision.optional && !decision.adding) {
      signIn.data.skipped = true;
      return proceed(ctx, deps, details, signIn);
    }
  }
  ctx.redirect(`/interaction/${details.uid}`);
}

export async function acknowledgeNotice(ctx: Context, deps: InteractionDeps, details: InteractionDetails): Promise<void> {
  const signIn = await currentSignIn(deps, details);
  if (signIn?.data.notice) {
    delete signIn.data.notice;
    return proceed(ctx, deps, details, signIn);
  }
  ctx.redirect(`/interaction/${details.uid}`);
}
