/** Koa middleware timing every request into the duration histogram, by route name, method and status class. */
import type { Middleware } from 'koa';
import type { Metrics } from './registry.ts';
import { routeName } from './route-name.ts';

const METHODS = new Set(['GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'PATCH']);

export function httpDuration(metrics: Metrics): Middleware {
  return async (ctx, next) => {
    const end = metrics.httpDuration.startTimer();
    try {
      await next();
    } finally {
      // Status class, not the code: a thrown error that a later middleware turns into a page still lands here as 5xx.
      const status = ctx.status >= 100 && ctx.status < 600 ? `${Math.floor(ctx.status / 100)}xx` : 'other';
      end({ route: routeName(ctx), method: METHODS.has(ctx.method) ? ctx.method : 'other', status });
    }
  };
}
