/**
 * The interaction policy, as data: `login` (who are you), `mfa` (prove a
 * further factor or enrol one), `consent` (third-party apps only).
 *
 * The library's own essential_acr(s) checks compare the session's single `acr`
 * string and would send a signed-in user back to the password page; Twofold's
 * `mfa` check asks the policy engine instead (acr_values and essential acr
 * alike) and, on step-up, asks only for what is missing. Whatever the engine
 * does not call satisfied opens the sign-in pages: a voluntary step too, on
 * every fresh request (skippable there), so an app that asked for a level is
 * never silently answered a lower one. Only a group's enrolment reminder waits
 * for the next password sign-in (the engine decides that, for `policy explain` too).
 */
import { errors, interactionPolicy as library, type KoaContextWithOIDC } from 'oidc-provider';
import type { Services } from '../services.ts';
import type { Evidence } from '../../factors/types.ts';
import { evaluate, requestFacts } from '../mfa/requirement.ts';
import { loadSession, saveSessionEvidence, touchSession } from '../mfa/session-evidence.ts';
import { applyIdle } from '../policy/lapse.ts';
import { epochSeconds } from '../clock.ts';
import { PASSWORD_EVIDENCE } from '../policy/levels.ts';
import { clientPolicyOf, globalPolicy } from '../policy/store.ts';
import { isTrustedDevice, markDeviceUsed, readDeviceCookie } from '../mfa/trusted-devices.ts';
import { addFactorRequest } from '../mfa/add-factor.ts';
import { clientAddress } from '../http/client-address.ts';

const { Prompt, Check } = library;

interface TwofoldResult {
  /** What the sign-in interaction just finished with (interactions/sign-in.ts finishSignIn). */
  twofold?: { evidence?: Evidence[]; added?: string; skipped?: boolean };
}

/**
 * What the session has proved and may still count. Just after an interaction,
 * its evidence becomes the session's. Otherwise the stored evidence, less any
 * level the session held but left idle too long (policy `levelIdle`): that is
 * written back at once, so later activity cannot revive it; any other use only
 * moves the session's activity stamp (coarsely, see session-evidence.ts).
 */
async function sessionEvidence(ctx: KoaContextWithOIDC, services: Services, now: number): Promise<Evidence[]> {
  const { db, config } = services;
  const session = ctx.oidc.session!;
  const accountId = session.accountId!;
  const fresh = (ctx.oidc.result as TwofoldResult | undefined)?.twofold?.evidence;
  if (fresh && ctx.oidc.result?.login?.accountId === accountId) {
    // The interaction just finished: its evidence becomes the session's.
    const kept = fresh.filter((e) => !e.remembered);
    await saveSessionEvidence(db, session.uid, accountId, kept, config.SESSION_TTL, now, { ip: clientAddress(ctx), userAgent: ctx.get('user-agent') });
    return kept;
  }
  const stored = await loadSession(db, session.uid, accountId);
  // A session from before the evidence table (or without a record) proved its password only.
  if (!stored) return [PASSWORD_EVIDENCE(session.loginTs ?? now)];
  const idle = applyIdle(stored.evidence, (await globalPolicy(db, config.MFA)).policy.levelIdle, stored.lastActiveAt, now);
  if (idle.lapsed.length) {
    await saveSessionEvidence(db, session.uid, accountId, idle.evidence, config.SESSION_TTL, now);
    return idle.evidence;
  }
  await touchSession(db, session.uid, stored, now);
  return stored.evidence;
}

export function mfaPrompt(services: Services) {
  return new Prompt(
    { name: 'mfa', requestable: false },
    new Check('twofold_requirement', 'a further authentication factor is required', 'interaction_required', async (ctx: KoaContextWithOIDC) => {
      const { session, params } = ctx.oidc;
      if (!session?.accountId) return Check.NO_NEED_TO_PROMPT;
      const now = epochSeconds(services.clock);
      const evidence = await sessionEvidence(ctx, services, now);
      // The app asked for a method to be added: the interaction does it (after the policy's own demands).
      if (addFactorRequest(params as Record<string, unknown>) && !(ctx.oidc.result as TwofoldResult | undefined)?.twofold?.added) return Check.REQUEST_PROMPT;
      const device = await isTrustedDevice(services.db, session.accountId, readDeviceCookie(ctx));
      // Right after the sign-in pages, what they settled (a skipped optional step) stands: each step is shown once per interaction.
      const finished = (ctx.oidc.result as TwofoldResult | undefined)?.twofold;
      const decision = await evaluate(services, {
        accountId: session.accountId,
        clientId: ctx.oidc.client?.clientId,
        request: requestFacts(params as Record<string, unknown>),
        evidence,
        trustedDevice: device,
        now,
        at: finished ? 'sign-in' : 'session',
        skipped: finished?.skipped,
      });
      switch (decision.type) {
        case 'satisfied':
          // The acr issued is the requested value that was met, per request.
          session.acr = decision.acr;
          session.amr = decision.amr;
          // Last used: when the device stood in for the second factor, not whenever a request carried its cookie.
          if (decision.remembered && device) await markDeviceUsed(services.db, device.id);
          return Check.NO_NEED_TO_PROMPT;
        case 'unmet':
          throw new errors.CustomOIDCProviderError(
            'unmet_authentication_requirements',
            'the requested authentication level cannot be reached for this account',
          );
        default:
          return Check.REQUEST_PROMPT;
      }
    }),
  );
}

export function interactionPolicy(services: Services) {
  const policy = library.base();
  const login = policy.get('login')!;
  login.checks.remove('essential_acr');
  login.checks.remove('essential_acrs');
  // A client's maximum authentication age: like max_age, but set by the admin, so a request cannot loosen it.
  login.checks.add(
    new Check('twofold_max_auth_age', 'the application requires a recent sign-in', 'login_required', (ctx: KoaContextWithOIDC) => {
      const { session, client, result } = ctx.oidc;
      if (!session?.accountId || !client || result?.login) return Check.NO_NEED_TO_PROMPT;
      const maxAuthAge = clientPolicyOf(client.twofold_policy, client.clientId).maxAuthAge;
      return maxAuthAge !== undefined && session.past(maxAuthAge) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  // Adding a sign-in method needs a recent sign-in, as changing a password would.
  login.checks.add(
    new Check('twofold_add_factor_recent', 'adding a sign-in method requires a recent sign-in', 'login_required', (ctx: KoaContextWithOIDC) => {
      const { session, params, result } = ctx.oidc;
      if (!session?.accountId || result?.login || !addFactorRequest(params as Record<string, unknown>)) return Check.NO_NEED_TO_PROMPT;
      return session.past(services.config.ADD_FACTOR_MAX_AUTH_AGE) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  policy.add(mfaPrompt(services), 1);
  return policy;
}
