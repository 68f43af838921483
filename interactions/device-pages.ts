/**
 * The device flow's pages (RFC 8628), which node-oidc-provider renders itself
 * (features.deviceFlow's *Source hooks), in Twofold's layout: enter the code
 * shown on the device, confirm it is the right device, done. The sign-in in
 * between is the normal interaction (/interaction/:uid), policy and all.
 */
import type { KoaContextWithOIDC, ErrorOut, Client } from 'oidc-provider';
import { views } from './render.ts';

/** What the person is told when a code is refused: the library's re-render errors, by name. */
const CODE_PROBLEMS: Record<string, string> = {
  NoCodeError: 'Enter the code shown on your device.',
  NotFoundError: 'That code is not valid. Check the code shown on your device and try again.',
  ExpiredError: 'That code has expired. Start again on your device to get a new one.',
  AlreadyUsedError: 'That code was already used. Start again on your device to get a new one.',
};

/**
 * The form's anti-forgery value: the one node-oidc-provider just put in its own form (and checks on the post).
 * Our template draws the form itself: the library's has an inline onfocus handler, which the CSP forbids.
 */
function xsrfOf(form: string): string {
  return /name="xsrf" value="([^"]*)"/.exec(form)?.[1] ?? '';
}

function html(ctx: KoaContextWithOIDC, name: string, data: Record<string, unknown>, status?: number): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  if (status) ctx.status = status;
  ctx.body = views().render(name, data);
}

/** The code entry page; again with the reason when a code was refused, or when the person cancelled. */
export function renderUserCodeInput(ctx: KoaContextWithOIDC, form: string, out?: ErrorOut, err?: Error): void {
  const action = ctx.oidc.urlFor('code_verification');
  const base = { title: 'Connect a device', action, xsrf: xsrfOf(form) };
  if (!err) return html(ctx, 'device-code', { ...base, message: CODE_PROBLEMS.NoCodeError });
  if (err.name === 'AbortedError') {
    return html(ctx, 'device-code', { ...base, title: 'Device not connected', notice: 'The sign-in was cancelled: the device was told it was refused. To connect a device, enter the code it shows.' });
  }
  const problem = CODE_PROBLEMS[err.name];
  if (problem) return html(ctx, 'device-code', { ...base, problem, code: (err as { userCode?: string }).userCode }, 400);
  // Anything else the library refused (its error is safe to show, HTML-escaped by the view); the status is its own.
  html(ctx, 'device-code', { ...base, problem: 'The sign-in could not continue. Start again on your device.', detail: out?.error_description ?? out?.error });
}

/** Before the sign-in: the person checks that the code and the app are the device in front of them. */
export function renderUserCodeConfirm(ctx: KoaContextWithOIDC, form: string, client: Client, _deviceInfo: unknown, userCode: string): void {
  html(ctx, 'device-confirm', {
    title: 'Connect a device',
    action: ctx.oidc.urlFor('code_verification'),
    xsrf: xsrfOf(form),
    userCode,
    deviceName: client.clientName ?? client.clientId,
  });
}

/** After the sign-in: the device gets its tokens on its next poll. */
export function renderDeviceSuccess(ctx: KoaContextWithOIDC): void {
  const client = ctx.oidc.client;
  html(ctx, 'device-done', { title: 'Device connected', deviceName: client?.clientName ?? client?.clientId, leaving: true });
}

/** Too many wrong codes from one address (RFC 8628 §5.1): a wait, never a lock. */
export function renderUserCodeThrottled(ctx: KoaContextWithOIDC, page: string, retryAfterSeconds: number): void {
  ctx.set('Retry-After', String(retryAfterSeconds));
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  html(ctx, 'device-code', {
    title: 'Connect a device',
    problem: `Too many codes were tried from your network. Wait ${minutes === 1 ? 'a minute' : `${minutes} minutes`} and try again.`,
    again: page,
  }, 429);
}

/** A code posted from a page whose browser session is gone: start again from a fresh page. */
export function renderUserCodeFormExpired(ctx: KoaContextWithOIDC, page: string): void {
  html(ctx, 'device-code', { title: 'Connect a device', problem: 'This page has expired. Enter the code again.', again: page }, 400);
}
