/** What the login page offers before anyone is identified: the first factors (passkeys) the policy lets count. */
import { policyInput, requestFacts } from '../src/mfa/requirement.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';
import { interactionState } from './sign-in.ts';
import { factorLabel, type Speaker } from './render.ts';

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
export async function allowed(deps: InteractionDeps, details: InteractionDetails, factorId: string, accountId = ''): Promise<boolean> {
  const input = await policyInput(deps.services, {
    accountId,
    clientId: String(details.params.client_id),
    request: requestFacts(details.params),
    evidence: [],
  });
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
