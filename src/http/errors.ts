/**
 * The last line of defence: anything thrown below becomes a clear answer
 * (an HTML page for people, JSON error/error_description for APIs), never a
 * stack trace. Overload becomes 503 with Retry-After; so does a database that
 * cannot be reached (`server_error`, as node-oidc-provider answers it too).
 */
import type { Context, Middleware } from 'koa';
import { OverloadedError } from '../security/semaphore.ts';
import { DatabaseUnavailableError } from '../db/outage.ts';
import { speakerFor, views } from '../../interactions/render.ts';
import type { MessageRef } from '../i18n/catalogue.ts';

/** What an app is told while the database cannot be reached (a person reads error.unavailable). */
export const UNAVAILABLE_MESSAGE = 'The service is temporarily unavailable. Please try again in a moment.';
/** Seconds a client is asked to wait before retrying after a 503 (a restart or failover usually takes a few). */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/** `description` is for apps (JSON); a person's page says `message` in their language. */
export class HttpError extends Error {
  readonly status: number;
  readonly error: string;
  readonly page: MessageRef;
  readonly expose = true;
  constructor(status: number, error: string, description: string, page: MessageRef) {
    super(description);
    this.status = status;
    this.error = error;
    this.page = page;
  }
}

/** A person's error page: its title and message from the catalogue, and the technical detail, if any, as it is. */
interface ErrorPage {
  title: MessageRef;
  message: MessageRef;
  detail?: string;
}

const SOMETHING_WRONG: MessageRef = { key: 'error.somethingWrongTitle' };

function wantsHtml(ctx: Context): boolean {
  return ctx.method === 'GET' || ctx.path.startsWith('/interaction/') ? ctx.accepts(['html', 'json']) === 'html' : false;
}

export function respondWithError(ctx: Context, status: number, error: string, description: string, page: ErrorPage): void {
  ctx.status = status;
  if (wantsHtml(ctx)) {
    const { lang, t } = speakerFor(ctx);
    ctx.type = 'html';
    ctx.body = views().render('error', {
      lang,
      title: t(page.title.key, page.title.params),
      message: t(page.message.key, page.message.params),
      detail: page.detail,
    });
  } else {
    ctx.body = { error, error_description: description };
  }
}

export function errorBoundary(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      // node-oidc-provider answers a database outage 503 itself (the error's statusCode); the wait is ours to say.
      if (ctx.status === 503 && !ctx.response.get('Retry-After')) ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
    } catch (err) {
      if (err instanceof DatabaseUnavailableError) {
        ctx.state.log?.warn({ err: err.message, code: err.code, path: ctx.path }, 'database unavailable');
        ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
        respondWithError(ctx, 503, 'server_error', UNAVAILABLE_MESSAGE, { title: { key: 'error.unavailableTitle' }, message: { key: 'error.unavailable' } });
        return;
      }
      if (err instanceof OverloadedError) {
        ctx.set('Retry-After', String(err.retryAfterSeconds));
        respondWithError(ctx, 503, 'temporarily_unavailable', 'The server is busy. Please try again in a moment.', {
          title: { key: 'error.busyTitle' },
          message: { key: 'error.busy' },
        });
        return;
      }
      if (err instanceof HttpError) {
        respondWithError(ctx, err.status, err.error, err.message, { title: SOMETHING_WRONG, message: err.page });
        return;
      }
      const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode;
      if (status && status >= 400 && status < 500) {
        // Body parser and similar client errors (too large, malformed); their own words, where safe to show, are the detail.
        const exposed = (err as { expose?: boolean }).expose ? (err as Error).message : undefined;
        respondWithError(ctx, status, 'invalid_request', exposed ?? 'The request could not be processed.', {
          title: SOMETHING_WRONG,
          message: { key: 'error.badRequest' },
          detail: exposed,
        });
        return;
      }
      ctx.state.log?.error({ err }, 'unhandled error');
      respondWithError(ctx, 500, 'server_error', 'Something went wrong on our side. Please try again.', {
        title: SOMETHING_WRONG,
        message: { key: 'error.server' },
      });
    }
  };
}
