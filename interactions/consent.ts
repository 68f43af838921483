/** The consent step, shown only to third-party apps. */
import type { Context } from 'koa';
import type { MessageRef } from '../src/i18n/catalogue.ts';
import { page, type InteractionDeps, type InteractionDetails } from './context.ts';
import { rememberConsent } from '../src/oidc/remembered-consent.ts';
import { speakerFor } from './render.ts';

/** What a scope lets the app do, in words; a scope without an entry is shown as it is named. */
const SCOPE_TEXT: Record<string, MessageRef> = {
  openid: { key: 'consent.scope.openid' },
  profile: { key: 'consent.scope.profile' },
  email: { key: 'consent.scope.email' },
  offline_access: { key: 'consent.scope.offlineAccess' },
};

interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export function showConsent(ctx: Context, details: InteractionDetails, clientName: string | undefined, accountName?: string): void {
  const missing = (details.prompt.details ?? {}) as ConsentDetails;
  const { t } = speakerFor(ctx);
  const scopes = (missing.missingOIDCScope ?? []).map((s) => (Object.hasOwn(SCOPE_TEXT, s) ? t(SCOPE_TEXT[s]!.key) : s));
  page(ctx, 'consent', { title: t('consent.title'), uid: details.uid, clientName, accountName, scopes });
}

export async function submitConsent(ctx: Context, deps: InteractionDeps, details: InteractionDetails): Promise<void> {
  const provider = deps.provider();
  const { prompt, params, session, grantId } = details;
  const missing = (prompt.details ?? {}) as ConsentDetails;
  const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
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
