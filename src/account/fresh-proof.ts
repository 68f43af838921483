/**
 * Fresh proof for sensitive changes: adding or removing a sign-in method, new
 * backup codes, signing out everywhere, a new password. The change is made
 * only when the account center session's last proof (the ID token's
 * auth_time) is at most ACCOUNT_FRESH_PROOF old and, for an account with a
 * second factor, covered two kinds of factor (amr `mfa`). Otherwise the
 * browser goes through the provider's own sign-in pages for one, as any app
 * steps up: `max_age` (the session's authentication must be recent, else the
 * password is asked again) and, when the account has a second factor, an
 * essential `acr` of level 2 in the claims parameter, which cannot be skipped
 * and is never met by a trusted device (the account center's client denies
 * them). Then back to the page of the change, to confirm it.
 */
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { TWOFOLD_ACR } from '../policy/acr-table.ts';
import { epochSeconds } from '../clock.ts';
import type { AuthorizationParams } from './provider-link.ts';
import type { AccountSession, CurrentAccount } from './session.ts';
import { startRoundTrip, type AccountDeps } from './round-trip.ts';

/** Whether the account has a second factor to prove (backup codes alone back nothing up). */
export async function hasSecondFactor(services: Services, accountId: string): Promise<boolean> {
  const registry = services.factors.registry;
  return (await services.factors.store.list(accountId)).some((c) => {
    const registered = registry.get(c.factorId);
    return registered !== undefined && !registered.factor.recoveryOnly;
  });
}

/** Whether the session's last proof is fresh enough for a change: recent, and of two kinds when the account has a second factor. */
export function isFresh(session: Pick<AccountSession, 'authTime' | 'amr'>, now: number, windowSeconds: number, secondFactor: boolean): boolean {
  return now - session.authTime <= windowSeconds && (!secondFactor || session.amr.includes('mfa'));
}

/**
 * The authorization request that asks for a fresh proof. `max_age` is half the window, so the proof is still fresh
 * when the person, back at the account center, confirms the change.
 */
export function freshProofParams(windowSeconds: number, secondFactor: boolean): AuthorizationParams {
  const idToken: Record<string, unknown> = { sid: null };
  if (secondFactor) idToken.acr = { essential: true, values: [TWOFOLD_ACR[2]] };
  return { max_age: String(Math.floor(windowSeconds / 2)), claims: JSON.stringify({ id_token: idToken }) };
}

/**
 * True when the change may go ahead now. Otherwise the browser has been sent for a proof (a 303 to the sign-in
 * pages), comes back to `returnTo` (an account center page, where the person confirms the change), and the caller
 * stops: nothing was changed.
 */
export async function requireFreshProof(ctx: Context, deps: AccountDeps, current: CurrentAccount, returnTo: string): Promise<boolean> {
  const { services } = deps;
  const secondFactor = await hasSecondFactor(services, current.account.id);
  if (isFresh(current.session, epochSeconds(services.clock), services.config.ACCOUNT_FRESH_PROOF, secondFactor)) return true;
  await startRoundTrip(ctx, deps, { purpose: 'proof', returnTo, sub: current.account.id }, freshProofParams(services.config.ACCOUNT_FRESH_PROOF, secondFactor));
  return false;
}

/** Whether a change would need a proof first (the page says so before the person presses the button). */
export async function needsFreshProof(services: Services, current: CurrentAccount): Promise<boolean> {
  const secondFactor = await hasSecondFactor(services, current.account.id);
  return !isFresh(current.session, epochSeconds(services.clock), services.config.ACCOUNT_FRESH_PROOF, secondFactor);
}
