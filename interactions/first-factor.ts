/**
 * First factors on the login page (passkeys): what the page offers before
 * anyone is identified, and the answer that signs a user in without a
 * password. The factor names the credential, the credential names the account;
 * the policy then decides, as after a password, whether anything more is
 * needed (a passkey with user verification is level 3 on its own).
 */
import type { Context } from 'koa';
import { clientAddress } from '../src/http/client-address.ts';
import { recordAudit } from '../src/security/audit.ts';
import { page, readForm, type InteractionDeps, type InteractionDetails } from './context.ts';
import { currentSignIn, interactionState, startSignIn } from './sign-in.ts';
import { advance, failureMessage } from './second-factor.ts';
import { factorLabel, speakerFor } from './render.ts';
import { allowed } from './first-factor-views.ts';
import { showLogin } from './login.ts';
import { readKnownBrowser } from './known-browser.ts';

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
  if (!registered?.factor.firstFactor)
    return page(ctx, 'error', { title: t('error.title'), message: t('login.methodUnavailable'), uid: details.uid, clientName }, 404);
  if (details.prompt.name !== 'login' || (await currentSignIn(deps, details))) return ctx.redirect(`/interaction/${details.uid}`);
  const audit = { ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), clientId: String(details.params.client_id), actor: 'user' };
  const input = strings(await readForm(ctx));
  const outcome = await engine.verifyFirstFactor(factorId, interactionState(deps, details), input, audit, readKnownBrowser(ctx, deps));
  if (!outcome.ok) {
    if (outcome.reason === 'locked') ctx.set('Retry-After', String(outcome.retryAfterSeconds ?? 60));
    const message =
      outcome.reason === 'wrong' && !outcome.message ? t('login.factorFailed', { factor: factorLabel(speaker, factorId) }) : failureMessage(ctx, outcome);
    return showLogin(ctx, deps, details, clientName, { error: message }, outcome.reason === 'locked' ? 429 : 401);
  }
  if (!(await allowed(deps, details, factorId, outcome.account.id))) {
    await recordAudit(deps.services.db, 'login.factor_not_allowed', { ...audit, accountId: outcome.account.id }, { factor: factorId });
    return showLogin(ctx, deps, details, clientName, { error: t('login.factorNotAllowed', { factor: factorLabel(speaker, factorId) }) }, 403);
  }
  await recordAudit(
    deps.services.db,
    'login.first_factor_verified',
    { ...audit, accountId: outcome.account.id },
    { factor: factorId, credential: outcome.evidence.credentialId },
  );
  const signIn = await startSignIn(deps, details, outcome.account, outcome.evidence);
  if (outcome.notice) signIn.data.notice = outcome.notice;
  await advance(ctx, deps, details, signIn, clientName);
}
