/**
 * The device flow's pages (RFC 8628), which node-oidc-provider renders itself
 * (features.deviceFlow's *Source hooks), in Twofold's layout: enter the code
 * shown on the device, confirm it is the right device, done. The sign-in in
 * between is the normal interaction (/interaction/:uid), policy and all.
 */
import type { KoaContextWithOIDC, ErrorOut, Client } from 'oidc-provider';
import type { MessageRef } from '../src/i18n/catalogue.ts';
import { speakerFor, views } from './render.ts';

/** What the person is told when a code is refused: the library's re-render errors, by name. */
const CODE_PROBLEMS: Record<string, MessageRef> = {
  NoCodeError: { key: 'device.enterCode' },
  NotFoundError: { key: 'device.codeNotFound' },
  ExpiredError: { key: 'device.codeExpired' },
  AlreadyUsedError: { key: 'device.codeUsed' },
};

/**
 * The form's anti-forgery value: the one node-oidc-provider just put in its own form (and checks on the post).
 * Our template draws the form itself: the library's has an inline onfocus handler, which the CSP forbids.
 */
function xsrfOf(form: string): string {
  return /name="xsrf" value="([^"]*)"/.exec(form)?.[1] ?? '';
}

/** `data` carries the page's `lang`, from the speaker that wrote its texts. */
function html(ctx: KoaContextWithOIDC, name: string, data: { lang: string } & Record<string, unknown>, status?: number): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  if (status) ctx.status = status;
  ctx.body = views().render(name, data);
}

/** The code entry page; again with the reason when a code was refused, or when the person cancelled. */
export function renderUserCodeInput(ctx: KoaContextWithOIDC, form: string, out?: ErrorOut, err?: Error): void {
  const { lang, t } = speakerFor(ctx);
  const base = { lang, title: t('device.title'), action: ctx.oidc.urlFor('code_verification'), xsrf: xsrfOf(form) };
  if (!err) return html(ctx, 'device-code', { ...base, message: t(CODE_PROBLEMS.NoCodeError!.key) });
  if (err.name === 'AbortedError') {
    return html(ctx, 'device-code', { ...base, title: t('device.notConnectedTitle'), notice: t('device.aborted') });
  }
  const problem = Object.hasOwn(CODE_PROBLEMS, err.name) ? CODE_PROBLEMS[err.name] : undefined;
  if (problem) return html(ctx, 'device-code', { ...base, problem: t(problem.key), code: (err as { userCode?: string }).userCode }, 400);
  // Anything else the library refused (its error is safe to show, HTML-escaped by the view); the status is its own.
  html(ctx, 'device-code', { ...base, problem: t('device.failed'), detail: out?.error_description ?? out?.error });
}

/** Before the sign-in: the person checks that the code and the app are the device in front of them. */
export function renderUserCodeConfirm(ctx: KoaContextWithOIDC, form: string, client: Client, _deviceInfo: unknown, userCode: string): void {
  const { lang, t } = speakerFor(ctx);
  html(ctx, 'device-confirm', {
    lang,
    title: t('device.title'),
    action: ctx.oidc.urlFor('code_verification'),
    xsrf: xsrfOf(form),
    userCode,
    deviceName: client.clientName ?? client.clientId,
  });
}

/** After the sign-in: the device gets its tokens on its next poll. */
export function renderDeviceSuccess(ctx: KoaContextWithOIDC): void {
  const { lang, t } = speakerFor(ctx);
  const client = ctx.oidc.client;
  html(ctx, 'device-done', { lang, title: t('device.connectedTitle'), deviceName: client?.clientName ?? client?.clientId, leaving: true });
}

/** Too many wrong codes from one address (RFC 8628 §5.1): a wait, never a lock. */
export function renderUserCodeThrottled(ctx: KoaContextWithOIDC, page: string, retryAfterSeconds: number): void {
  const { lang, t } = speakerFor(ctx);
  ctx.set('Retry-After', String(retryAfterSeconds));
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  html(ctx, 'device-code', { lang, title: t('device.title'), problem: t('device.throttled', { minutes }), again: page }, 429);
}

/** A code posted from a page whose browser session is gone: start again from a fresh page. */
export function renderUserCodeFormExpired(ctx: KoaContextWithOIDC, page: string): void {
  const { lang, t } = speakerFor(ctx);
  html(ctx, 'device-code', { lang, title: t('device.title'), problem: t('device.formExpired'), again: page }, 400);
}
