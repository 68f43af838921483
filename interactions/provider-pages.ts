/** Pages node-oidc-provider renders itself (errors, logout), in Twofold's layout and the person's language. */
import type { KoaContextWithOIDC, ErrorOut } from 'oidc-provider';
import type { MessageRef } from '../src/i18n/catalogue.ts';
import { speakerFor, views } from './render.ts';

/** What the person is told for the library's errors, by OAuth error code; others get error.signInFailed. */
const FRIENDLY: Record<string, MessageRef> = {
  invalid_request: { key: 'error.invalidRequest' },
  invalid_client: { key: 'error.invalidClient' },
  invalid_redirect_uri: { key: 'error.invalidRedirectUri' },
  unauthorized_client: { key: 'error.unauthorizedClient' },
  access_denied: { key: 'error.accessDenied' },
  login_required: { key: 'error.loginRequired' },
  session_not_found: { key: 'error.sessionNotFound' },
  invalid_grant: { key: 'error.invalidGrant' },
  server_error: { key: 'error.server' },
};

function render(ctx: KoaContextWithOIDC, view: string, data: Record<string, unknown>): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = views().render(view, data);
}

export function renderErrorPage(ctx: KoaContextWithOIDC, out: ErrorOut, _error: unknown): void {
  const { lang, t } = speakerFor(ctx);
  if (ctx.status === 503) {
    // The database cannot be reached (the library keeps the error's 503): nothing the user or the app did wrong.
    return render(ctx, 'error', { lang, title: t('error.unavailableTitle'), message: t('error.unavailable') });
  }
  const friendly = Object.hasOwn(FRIENDLY, out.error) ? FRIENDLY[out.error]! : { key: 'error.signInFailed' };
  render(ctx, 'error', {
    lang,
    title: t('error.title'),
    // Some name the service (the app is not registered with it): its brand.
    message: t(friendly.key, { brand: views().brand.name }),
    // error_description is the library's own text, safe to show (it never carries stack traces); it is HTML-escaped.
    detail: out.error_description ? `${out.error}: ${out.error_description}` : out.error,
  });
}

export function renderLogoutPage(ctx: KoaContextWithOIDC, form: string): void {
  const { lang, t } = speakerFor(ctx);
  render(ctx, 'logout', { lang, title: t('logout.title'), form, clientName: ctx.oidc.client?.clientName, leaving: true });
}

export function renderLoggedOutPage(ctx: KoaContextWithOIDC): void {
  const { lang, t } = speakerFor(ctx);
  render(ctx, 'logged-out', { lang, title: t('logout.doneTitle'), clientName: ctx.oidc.client?.clientName, leaving: true });
}
