/**
 * First factors on the login page (passkeys): what the page offers before
 * anyone is identified, and the answer that signs a user in without a
 * password. The factor names the credential, the credential names the account;
 * the policy then decides, as after a password, whether anything more is
 * needed (a passkey with user verification is level 3 on its own).
 */
import type { Context } from 'koa';
import { clientAddress } from '../src/http/client-address.ts';
import { policyInput, requestFacts } from '../src/mfa/requirement.ts';
import { recordAudit } from '../src/security/audit.ts';
import { page, readForm, type InteractionDeps, type InteractionDetails } from './context.ts';
import { currentSignIn, interactionState, startSignIn } from './sign-in.ts';
import { advance, failureMessage } from './second-factor.ts';
import { factorLabel, speakerFor, type Speaker } from './render.ts';
import { showLogin } from './login.ts';
import { readKnownBrowser } from './known-browser.ts';

export interface FirstFactorView {
  id: string;
  label: string;
  partial: string;
  view: Record<string, unknown>;
}

/**
 * Whether the policy documents let this factor count for this sign-in (the
 * global list, the app's, and once the account is known its groups'). A factor
 * a document excludes must not sign anyone in, or the sign-in would start
 * with no first factor the policy counts.
 */
async function allowed(deps: InteractionDeps, details: InteractionDetails, factorId: string, accountId = ''): Promise<boolean> {
  const input = await policyInput(deps.services, { accountId, clientId: String(details.params.client_id), request: requestFacts(details.params), evidence: [] });
  const lists = [input.factors, input.client?.factors, ...(input.groups ?? []).map((g) => g.factors)];
  return lists.every((list) => !list || list.includes(factorId));
}

/** The login page's first-factor options (a passkey button with autofill), each with a fresh challenge; `label` in the person's language. */
export async function firstFactorViews(deps: InteractionDeps, details: InteractionDetails, speaker: Speaker): Promise<FirstFactorView[]> {
  const engine = deps.services.factors;
  const views: FirstFactorView[] = [];
  for (const { factor } of engine.registry.firstFactors()) {
    if (!(await allowed(deps, details, factor.id))) continue;
    const view = await engine.beginFirstFactor(factor.id, interactionState(deps, details));
    views.push({ id: factor.id, label: factorLabel(speaker, factor.id), partial: view.partial, view: view.data });
  }
  return views;
}

function strings(form: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(form)) if (typeof v === 'string') out[k] = v.slice(0, 16_384);
  return out;
}

export async function submitFirstFactor(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const engine = deps.services.factors;
  const factorId = String(ctx.params.factor);
  const registered = engine.registry.get(factorId);
  const speaker = speakerFor(ctx);
  const { t } = speaker;
  if (!registered?.factor.firstFactor) return page(ctx, 'error', { title: t('error.title'), message: t('login.methodUnavailable'), uid: details.uid, clientName }, 404);
  if (details.prompt.name !== 'login' || (await currentSignIn(deps, details))) return ctx.redirect(`/interaction/${details.uid}`);
  const audit = { ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), clientId: String(details.params.client_id), actor: 'user' };
  const input = strings(await readForm(ctx));
  const outcome = await engine.verifyFirstFactor(factorId, interactionState(deps, details), input, audit, readKnownBrowser(ctx, deps));
  if (!outcome.ok) {
    if (outcome.reason === 'locked') ctx.set('Retry-After', String(outcome.retryAfterSeconds ?? 60));
    const message = outcome.reason === 'wrong' && !outcome.message ? t('login.factorFailed', { factor: factorLabel(speaker, factorId) }) : failureMessage(ctx, outcome);
    return showLogin(ctx, deps, details, clientName, { error: message }, outcome.reason === 'locked' ? 429 : 401);
  }
  if (!(await allowed(deps, details, factorId, outcome.account.id))) {
    await recordAudit(deps.services.db, 'login.factor_not_allowed', { ...audit, accountId: outcome.account.id }, { factor: factorId });
    return showLogin(ctx, deps, details, clientName, { error: t('login.factorNotAllowed', { factor: factorLabel(speaker, factorId) }) }, 403);
  }
  await recordAudit(deps.services.db, 'login.first_factor_verified', { ...audit, accountId: outcome.account.id }, { factor: factorId, credential: outcome.evidence.credentialId });
  const signIn = await startSignIn(deps, details, outcome.account, outcome.evidence);
  if (outcome.notice) signIn.data.notice = outcome.notice;
  await advance(ctx, deps, details, signIn, clientName);
}
