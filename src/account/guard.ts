/**
 * What every account center route does before its own work: find the
 * signed-in person (or start a sign-in, for a page; refuse, for a form), and
 * for a form, read it and check that it is genuine (csrf.ts). Each refusal is
 * a page saying nothing was changed, with a 4xx status.
 */
import type { Context } from 'koa';
import coBody from 'co-body';
import { clientAddress } from '../http/client-address.ts';
import type { Acting } from '../self-service/acting.ts';
import { ACCOUNT_BASE, ACCOUNT_CLIENT_ID, isAccountPath } from './client.ts';
import { formIsGenuine } from './csrf.ts';
import { accountPage } from './page.ts';
import { startRoundTrip, type AccountDeps } from './round-trip.ts';
import { loadAccountSession, type CurrentAccount } from './session.ts';

/** The signed-in person; otherwise a page sends the browser to sign in (and back here), and a form is refused. */
export async function signedIn(ctx: Context, deps: AccountDeps): Promise<CurrentAccount | undefined> {
  const current = await loadAccountSession(ctx, deps.services);
  if (current) return current;
  if (ctx.method === 'GET' || ctx.method === 'HEAD') {
    await startRoundTrip(ctx, deps, { purpose: 'sign-in', returnTo: isAccountPath(ctx.originalUrl) ? ctx.originalUrl : ACCOUNT_BASE });
  } else {
    accountPage(ctx, 'error', { titleKey: 'account.error.signedOut.title', messageKey: 'account.error.signedOut.message', back: ACCOUNT_BASE }, 401);
  }
  return undefined;
}

/** The posted form's text fields (at most 32 KiB), when it comes from this origin with this session's token; else a 4xx page. */
export async function genuineForm(ctx: Context, deps: AccountDeps, current: CurrentAccount): Promise<Record<string, string> | undefined> {
  let body: unknown;
  try {
    body = await coBody.form(ctx.req, { limit: '32kb' });
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (!status || status >= 500) throw err;
    accountPage(ctx, 'error', { titleKey: 'account.error.title', messageKey: 'account.error.badRequest.message', back: ACCOUNT_BASE }, status, current);
    return undefined;
  }
  const form: Record<string, string> = {};
  if (body && typeof body === 'object') for (const [k, v] of Object.entries(body)) if (typeof v === 'string') form[k] = v;
  if (!formIsGenuine(ctx, deps.services.config.ISSUER, current.session, form)) {
    accountPage(ctx, 'error', { titleKey: 'account.error.forged.title', messageKey: 'account.error.forged.message', back: ACCOUNT_BASE }, 403, current);
    return undefined;
  }
  return form;
}

/** Who acts, for the audit trail: the account itself, from this request's address and browser, through the account center. */
export function actingFrom(ctx: Context): Acting {
  return { actor: 'user', ip: clientAddress(ctx), userAgent: ctx.get('user-agent').slice(0, 2048) || undefined, clientId: ACCOUNT_CLIENT_ID };
}

/** A 404 page: not one of this account's things (another account's id looks the same as an unknown one). */
export function notFound(ctx: Context, current: CurrentAccount): void {
  accountPage(ctx, 'error', { titleKey: 'account.error.notFound.title', messageKey: 'account.error.notFound.message', back: ACCOUNT_BASE }, 404, current);
}
