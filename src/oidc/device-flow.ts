/**
 * The device authorization grant (RFC 8628) for CLIs and TVs: the device asks
 * /device_auth for a user code, the person enters it at /device, signs in
 * through the normal interaction (password, second factor, step-up as the
 * policy and the device's acr_values say), confirms, and the device's next
 * poll of /token gets tokens carrying that sign-in's acr and amr.
 *
 * User codes are stored as keyed hashes like every bearer value (adapter.ts);
 * guessing them is slowed per client address here (§5.1).
 */
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Services } from '../services.ts';
import { attempt, refund, type LimitRule } from '../security/rate-limit.ts';
import { clientAddress } from '../http/client-address.ts';
import {
  renderDeviceSuccess,
  renderUserCodeConfirm,
  renderUserCodeFormExpired,
  renderUserCodeInput,
  renderUserCodeThrottled,
} from '../../interactions/device-pages.ts';
import { DEVICE_CODE_GRANT } from './clients.ts';

/**
 * Wrong user codes per client address: ten free, then a wait that doubles from 30 s up to 15 minutes, cleared by a
 * quiet quarter of an hour. A wait, never a lock: a person behind the same address can always enter a code later,
 * and no code or account is ever locked by someone else's guesses. With 20^8 possible codes alive for minutes, a
 * guesser gets a few codes an hour.
 */
export const USER_CODE_GUESSES = {
  name: 'device:user_code',
  kind: 'backoff',
  points: 10,
  windowSeconds: 15 * 60,
  delaySeconds: 30,
  maxDelaySeconds: 15 * 60,
} as const satisfies LimitRule;

/** features.deviceFlow: base-20 codes without vowels (no words), shown as XXXX-XXXX; pages in Twofold's layout. */
export function deviceFlowFeature(services: Services): NonNullable<NonNullable<Configuration['features']>['deviceFlow']> {
  return {
    enabled: services.config.DEVICE_FLOW,
    charset: 'base-20',
    mask: '****-****',
    userCodeInputSource: async (ctx, form, out, err) => renderUserCodeInput(ctx, form, out, err),
    userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => renderUserCodeConfirm(ctx, form, client, deviceInfo, userCode),
    successSource: async (ctx) => renderDeviceSuccess(ctx),
  };
}

/**
 * Whether the library failed the way it does on a device page reached without the browser session that started
 * the flow: it refuses the request, then fails (a TypeError) to store the session it had only just made for its
 * error page, one not yet saved (no `exp`). Anything else (a database outage) goes on to its own answer.
 */
function failedOnFreshSession(ctx: KoaContextWithOIDC, err: unknown): boolean {
  const session = ctx.oidc?.session;
  return err instanceof TypeError && !!session && typeof session.exp !== 'number';
}

/**
 * Counts every user code entered at the verification page (the form post) before the library looks it up, and
 * gives the attempt back when the code was found: what stays counted are wrong guesses.
 */
export function throttleUserCodes(provider: Provider, services: Services): void {
  // The library's own route (Twofold keeps its default), as the provider app sees paths (mounted at the issuer's path).
  const path = '/device';
  const page = provider.urlFor('code_verification');
  provider.use(async (ctx, next) => {
    // The library's router is not strict: /device/ is /device too, and must be counted the same.
    if (ctx.method !== 'POST' || ctx.path.replace(/\/+$/, '') !== path) return next();
    const verdict = await attempt(services.db, [{ rule: USER_CODE_GUESSES, subject: clientAddress(ctx) }]);
    if (!verdict.allowed) return renderUserCodeThrottled(ctx as KoaContextWithOIDC, page, verdict.retryAfterSeconds);
    try {
      await next();
    } catch (err) {
      // A post without a live browser session (a stale tab, cookies cleared): that form could never be sent anyway.
      if (!failedOnFreshSession(ctx as KoaContextWithOIDC, err)) throw err;
      return renderUserCodeFormExpired(ctx as KoaContextWithOIDC, page);
    }
    if ((ctx as KoaContextWithOIDC).oidc?.entities?.DeviceCode) await refund(services.db, verdict);
  });
}

/**
 * GET /device/:uid (the library's device_resume) without the browser session that started it (a stale link, cookies
 * cleared, a guess), or any other request under /device/: the library would answer 500 (failedOnFreshSession); it is
 * an expired page like the form's.
 */
export function expiredDeviceResume(provider: Provider): void {
  const page = provider.urlFor('code_verification');
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/device/') || ctx.path === '/device/auth') return next();
    try {
      await next();
    } catch (err) {
      if (!failedOnFreshSession(ctx as KoaContextWithOIDC, err)) throw err;
      renderUserCodeFormExpired(ctx as KoaContextWithOIDC, page);
    }
  });
}

/** POST /device/auth by a client not registered with --device-flow: refused as unauthorized_client. */
export function deviceGrantRefusal(provider: Provider): void {
  provider.use(async (ctx, next) => {
    await next();
    // The library says invalid_request; RFC 6749 §5.2 (RFC 8628 §3.2) has a name for a client without the grant.
    const client = (ctx as KoaContextWithOIDC).oidc?.client;
    const body = ctx.body as { error?: string } | undefined;
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && client && !client.grantTypeAllowed(DEVICE_CODE_GRANT) && body?.error === 'invalid_request') {
      body.error = 'unauthorized_client';
    }
  });
}
