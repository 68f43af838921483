/**
 * How long apps may cache the JWKS. A rotation publishes the next keys
 * KEY_PUBLISH_DELAY before they sign (src/oidc/keys.ts); an app that honours
 * Cache-Control refetches at least twice within that window, so it holds the
 * new keys before the first token they sign. Without a delay, no caching.
 */
import type { Middleware } from 'koa';

/** Seconds of max-age for a given publication delay: half of it, at most ten minutes. */
export function jwksMaxAge(publishDelaySeconds: number): number {
  return Math.min(600, Math.floor(publishDelaySeconds / 2));
}

export function jwksCacheControl(path: string, publishDelaySeconds: number): Middleware {
  const maxAge = jwksMaxAge(publishDelaySeconds);
  const value = maxAge > 0 ? `public, max-age=${maxAge}` : 'no-cache';
  return async (ctx, next) => {
    await next();
    if (ctx.path === path && ctx.status === 200) ctx.set('Cache-Control', value);
  };
}
