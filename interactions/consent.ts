/** The consent step, shown only to third-party apps. */
import type { Context } from 'koa';
import { page, type InteractionDeps, type InteractionDetails } from './context.ts';
import { rememberConsent } from '../src/oidc/remembered-consent.ts';

const SCOPE_TEXT: Record<string, string> = {
  openid: 'Know who you are',
  profile: 'See your name and username',
  email: 'See your email address',
  offline_access: 'Stay signed in when you are not using it',
};

interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export function showConsent(ctx: Context, details: InteractionDetails, clientName: string | undefined, accountName?: string): void {
  const missing = (details.prompt.details ?? {}) as ConsentDetails;
  const scopes = (missing.missingOIDCScope ?? []).map((s) => SCOPE_TEXT[s] ?? s);
  page(ctx, 'consent', { title: 'Allow access?', uid: details.uid, clientName: clientName ?? 'This app', accountName, scopes });
}

export async function submitConsent(ctx: Context, deps: InteractionDeps, details: InteractionDetails): Promise<void> {
  const provider = deps.provider();
  const { prompt, params, session, grantId } = details;
  const missing = (prompt.details ?? {}) as ConsentDetails;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
  if (!grant) throw new Error('grant disappeared during consent');
  if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  const savedId = await grant.save();
  // Remembered for the account and app, so another browser session continues this grant (src/oidc/existing-grant.ts).
  await rememberConsent(deps.services.db, { accountId: grant.accountId!, clientId: grant.clientId!, grantId: savedId });
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: savedId } }, { mergeWithLastSubmission: true });
  ctx.respond = false;
}
