/**
 * Security headers for every response. Pages get a strict CSP with
 * frame-ancestors 'none' (no clickjacking); node-oidc-provider's own CSP (for
 * form_post) is kept when it sets one. No form-action directive: browsers apply
 * it to the redirect back to the app after a form post.
 */
import type { Middleware } from 'koa';
import { arrivedOverTls } from './canonical-url.ts';

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "object-src 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function securityHeaders(options: { hsts: boolean }): Middleware {
  return async (ctx, next) => {
    await next();
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    // Only over a hop known to be TLS (ctx.secure follows the issuer, not the connection).
    if (options.hsts && arrivedOverTls(ctx)) ctx.set('Strict-Transport-Security', 'max-age=31536000');
    if (ctx.response.is('html')) {
      if (!ctx.response.get('Content-Security-Policy')) ctx.set('Content-Security-Policy', CSP);
      ctx.set('Cache-Control', 'no-store');
    }
  };
}
