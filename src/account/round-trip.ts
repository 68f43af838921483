/**
 * The round trips through the provider's sign-in pages: signing in to the
 * account center, a fresh proof for a change, adding a sign-in method
 * (`twofold_enroll`). Each starts with an authorization request (its PKCE
 * verifier, state and nonce kept sealed in a cookie) and ends at the callback,
 * which redeems the code and (re)starts the account center session from the
 * ID token.
 */
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { epochSeconds } from '../clock.ts';
import { logger } from '../logger.ts';
import { ACCOUNT_BASE, isAccountPath } from './client.ts';
import type { AuthorizationParams, PendingSignIn, ProviderLink } from './provider-link.ts';
import { readAccountSession, refreshAccountSession, savePendingSignIn, startAccountSession, takePendingSignIn } from './session.ts';
import { accountPage } from './page.ts';

export interface AccountDeps {
  services: Services;
  link: ProviderLink;
}

/** The claims every round trip asks for: `sid`, which ties the account center session to the provider's. */
const SID_CLAIMS = JSON.stringify({ id_token: { sid: null } });

/** Sends the browser to the authorization endpoint (303), keeping what the callback needs. */
export async function startRoundTrip(
  ctx: Context,
  deps: AccountDeps,
  what: { purpose: PendingSignIn['purpose']; returnTo: string; sub?: string },
  params: AuthorizationParams = {},
): Promise<void> {
  const returnTo = isAccountPath(what.returnTo) ? what.returnTo : ACCOUNT_BASE;
  const { url, pending } = await deps.link.authorizationRequest(
    ctx,
    { ...what, returnTo, startedAt: epochSeconds(deps.services.clock) },
    { claims: SID_CLAIMS, ...params },
  );
  savePendingSignIn(ctx, deps.services, pending);
  ctx.status = 303;
  ctx.redirect(url);
}

/** Adds `notice=<code>` to an account center path (the page shows that notice from the catalogue). */
export function withNotice(path: string, notice: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}notice=${encodeURIComponent(notice)}`;
}

/** GET /account/callback: the provider's answer to a round trip. */
export async function finishRoundTrip(ctx: Context, deps: AccountDeps): Promise<void> {
  const { services } = deps;
  const pending = takePendingSignIn(ctx, services);
  if (!pending) {
    // Reloaded, opened twice, expired, or started in another browser: nothing to redeem here.
    return accountPage(ctx, 'error', { titleKey: 'account.error.expired.title', messageKey: 'account.error.expired.message', back: ACCOUNT_BASE }, 400);
  }
  const result = await deps.link.redeem(ctx, pending);
  if (!result.ok) {
    const current = readAccountSession(ctx, services);
    // Declining to add a method, or cancelling a proof, is a choice: back to where it started, nothing changed.
    if (result.error === 'access_denied' && current && pending.purpose !== 'sign-in') {
      ctx.status = 303;
      return ctx.redirect(withNotice(pending.returnTo, pending.purpose === 'add' ? 'notAdded' : 'proofCancelled'));
    }
    (ctx.state.log ?? logger).info({ error: result.error, description: result.description, purpose: pending.purpose }, 'account center sign-in did not finish');
    const key = result.error === 'access_denied' ? 'cancelled' : result.error === 'unmet_authentication_requirements' ? 'unmet' : 'failed';
    return accountPage(ctx, 'error', { titleKey: `account.error.${key}.title`, messageKey: `account.error.${key}.message`, back: ACCOUNT_BASE }, 400);
  }
  const { claims } = result;
  const existing = readAccountSession(ctx, services);
  const sameAccount = pending.sub === undefined || pending.sub === claims.sub;
  if (existing && existing.sub === claims.sub && typeof claims.sid === 'string' && typeof claims.auth_time === 'number') {
    // The same person proved something again: what it proved replaces what the session held; open forms stay valid.
    refreshAccountSession(ctx, services, {
      ...existing,
      sid: claims.sid,
      authTime: claims.auth_time,
      amr: Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === 'string') : [],
      ...(typeof claims.acr === 'string' ? { acr: claims.acr } : {}),
    });
  } else if (!startAccountSession(ctx, services, claims)) {
    return accountPage(ctx, 'error', { titleKey: 'account.error.failed.title', messageKey: 'account.error.failed.message', back: ACCOUNT_BASE }, 400);
  }
  ctx.status = 303;
  // Someone else came back from a proof (another account signed in meanwhile): their own overview, not the change.
  if (!sameAccount) return ctx.redirect(ACCOUNT_BASE);
  ctx.redirect(pending.purpose === 'add' ? withNotice(pending.returnTo, 'added') : pending.returnTo);
}
