/**
 * The last line of defence: anything thrown below becomes a clear answer
 * (an HTML page for people, JSON error/error_description for APIs), never a
 * stack trace. Overload becomes 503 with Retry-After.
 */
import type { Context, Middleware } from 'koa';
import { OverloadedError } from '../security/semaphore.ts';
import { views } from '../../interactions/render.ts';

export class HttpError extends Error {
  readonly status: number;
  readonly error: string;
  readonly expose = true;
  constructor(status: number, error: string, description: string) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

function wantsHtml(ctx: Context): boolean {
  return ctx.method === 'GET' || ctx.path.startsWith('/interaction/') ? ctx.accepts(['html', 'json']) === 'html' : false;
}

export function respondWithError(ctx: Context, status: number, error: string, description: string): void {
  ctx.status = status;
  if (wantsHtml(ctx)) {
    ctx.type = 'html';
    ctx.body = views().render('error', { title: status === 503 ? 'Busy' : 'Something went wrong', message: description });
  } else {
    ctx.body = { error, error_description: description };
  }
}

export function errorBoundary(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof OverloadedError) {
        ctx.set('Retry-After', String(err.retryAfterSeconds));
        respondWithError(ctx, 503, 'temporarily_unavailable', 'The server is busy. Please try again in a moment.');
        return;
      }
      if (err instanceof HttpError) {
        respondWithError(ctx, err.status, err.error, err.message);
        return;
      }
      const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode;
      if (status && status >= 400 && status < 500) {
        // Body parser and similar client errors (too large, malformed).
        respondWithError(ctx, status, 'invalid_request', (err as { expose?: boolean }).expose ? (err as Error).message : 'The request could not be processed.');
        return;
      }
      ctx.state.log?.error({ err }, 'unhandled error');
      respondWithError(ctx, 500, 'server_error', 'Something went wrong on our side. Please try again.');
    }
  };
}
