/**
 * Backup codes offered again: an account with a second factor and no unused
 * backup code (the page of codes closed unsaved, the last one spent) is
 * offered a new set before its sign-in finishes, so a lost device does not
 * lock it out for good. Only after a factor other than the password was
 * proved in this sign-in, as adding a method needs (src/mfa/add-factor.ts): a
 * password alone never sets up something that stands in for the second
 * factor. The person may decline; the next sign-in offers again. The
 * recovery factor's `offerAgain` setting turns this off.
 */
import { epochSeconds } from '../src/clock.ts';
import type { InteractionDeps } from './context.ts';
import type { SignIn } from './sign-in.ts';

/** The recovery factor to offer now, or undefined. */
export async function recoveryToOffer(deps: InteractionDeps, signIn: SignIn): Promise<string | undefined> {
  const { factors: engine, config, clock } = deps.services;
  const recovery = engine.registry.offeredAfterFirstEnrollment();
  // The factor's setting (`offerAgain`, on unless the operator turns it off).
  if (!recovery || signIn.data.recoveryDeclined || (recovery.settings as { offerAgain?: unknown }).offerAgain === false) return undefined;
  const now = epochSeconds(clock);
  const proved = signIn.data.evidence.some((e) => e.factor !== 'password' && !e.remembered && now - e.at <= config.ADD_FACTOR_MAX_AUTH_AGE);
  if (!proved) return undefined;
  const credentials = await engine.store.list(signIn.account.id);
  if (!credentials.some((c) => engine.registry.get(c.factorId)?.factor.recoveryOnly === false)) return undefined;
  for (const c of credentials.filter((c) => c.factorId === recovery.factor.id)) {
    if ((await engine.store.remainingOneTimeCodes(c.id)) > 0) return undefined;
  }
  return recovery.factor.id;
}
