/** Pages node-oidc-provider renders itself (errors, logout), in Twofold's layout. */
import type { KoaContextWithOIDC, ErrorOut } from 'oidc-provider';
import { views } from './render.ts';
import { UNAVAILABLE_MESSAGE } from '../src/http/errors.ts';

const FRIENDLY: Record<string, string> = {
  invalid_request: 'The app sent a request Twofold cannot accept.',
  invalid_client: 'The app is not registered with Twofold.',
  invalid_redirect_uri: 'The app asked to return to an address it has not registered.',
  unauthorized_client: 'The app is not allowed to make this request.',
  access_denied: 'Access was denied.',
  login_required: 'You need to sign in.',
  session_not_found: 'This sign-in has expired or was opened in another browser. Go back to the app and start again.',
  invalid_grant: 'This sign-in link has expired or was already used.',
  server_error: 'Something went wrong on our side. Please try again.',
};

export function renderErrorPage(ctx: KoaContextWithOIDC, out: ErrorOut, _error: unknown): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  if (ctx.status === 503) {
    // The database cannot be reached (the library keeps the error's 503): nothing the user or the app did wrong.
    ctx.body = views().render('error', { title: 'Temporarily unavailable', message: UNAVAILABLE_MESSAGE });
    return;
  }
  ctx.body = views().render('error', {
    title: 'Sign-in problem',
    message: FRIENDLY[out.error] ?? 'The sign-in could not continue.',
    // error_description is the library's own text, safe to show (it never carries stack traces); it is HTML-escaped.
    detail: out.error_description ? `${out.error}: ${out.error_description}` : out.error,
  });
}

export function renderLogoutPage(ctx: KoaContextWithOIDC, form: string): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = views().render('logout', { title: 'Sign out', form, clientName: ctx.oidc.client?.clientName, leaving: true });
}

export function renderLoggedOutPage(ctx: KoaContextWithOIDC): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = views().render('logged-out', { title: 'Signed out', clientName: ctx.oidc.client?.clientName, leaving: true });
}
