/**
 * The known-browser cookie at the edge: read on every guess (so the
 * throttles can give a known browser its own counters), written when a
 * sign-in completes. HttpOnly, SameSite=Strict (only our own pages post to
 * /interaction), Secure behind TLS, scoped to /interaction.
 */
import type { Context } from 'koa';
import type { Account } from '../src/db/schema.ts';
import { KNOWN_BROWSER_COOKIE, KNOWN_BROWSER_DAYS, rememberAccount, type KnownBrowser } from '../src/security/device-cookie.ts';
import type { InteractionDeps } from './context.ts';

/** The browser's signed record, if it carries a valid one (a forged or damaged cookie counts as none). */
export function readKnownBrowser(ctx: Context, deps: InteractionDeps): KnownBrowser | undefined {
  return deps.services.deviceCookies.open(ctx.cookies.get(KNOWN_BROWSER_COOKIE) ?? undefined);
}

/** After a completed sign-in: this browser is known to the account from now on (the cookie is renewed for another KNOWN_BROWSER_DAYS). */
export function rememberBrowser(ctx: Context, deps: InteractionDeps, account: Pick<Account, 'id'>): void {
  const browser = rememberAccount(readKnownBrowser(ctx, deps), account.id);
  ctx.cookies.set(KNOWN_BROWSER_COOKIE, deps.services.deviceCookies.seal(browser), {
    httpOnly: true,
    sameSite: 'strict',
    secure: deps.services.config.secureCookies,
    path: '/interaction',
    expires: new Date(Date.now() + KNOWN_BROWSER_DAYS * 86400 * 1000),
    overwrite: true,
  });
}
