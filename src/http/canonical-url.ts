/**
 * Every public URL derives from ISSUER, never from the request.
 *
 * node-oidc-provider builds its endpoint URLs (discovery, redirects, form
 * actions) from Koa's `ctx.href`, which is the request's scheme and `Host`
 * (or `X-Forwarded-Host` when Koa trusts a proxy). Left alone, a forged `Host`
 * makes discovery advertise an attacker's endpoints, a malformed one makes URL
 * building throw (a 500), and an `https` issuer reached over plain HTTP
 * advertises `http://` endpoints. So the request's host, hostname, protocol and
 * href are pinned to the issuer's before anything else runs; `X-Forwarded-Host`
 * is never read.
 *
 * Pinning the protocol also pins `ctx.secure`, which both Koa's and
 * node-oidc-provider's cookie jars consult before they agree to set a `Secure`
 * cookie: with an `https` issuer, cookies are always `Secure` (a browser that
 * reached us over plain HTTP simply does not keep them, so nothing is
 * downgraded), and an `http` issuer (development) never claims TLS.
 *
 * Whether this hop really was TLS is a separate question, answered by
 * `arrivedOverTls`: the socket itself, or, only with TRUST_PROXY, a
 * well-formed `X-Forwarded-Proto` of exactly `https` or `http`. Anything else
 * (a list, garbage) is ignored and counts as "not known to be TLS", the
 * answer that sends no HSTS and warns the operator.
 */
import type { TLSSocket } from 'node:tls';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../logger.ts';

export interface CanonicalOptions {
  issuer: string;
  trustProxy: boolean;
  /** Told once when an https issuer gets a request not known to be TLS (a proxy without TRUST_PROXY, or plain HTTP). */
  log?: Pick<Logger, 'warn'>;
}

const FORWARDED_PROTO = /^(https?)$/i;

/** The scheme of this hop as far as we can know it: the socket, or a trusted, well-formed X-Forwarded-Proto. */
export function transportProtocol(ctx: Context, trustProxy: boolean): 'https' | 'http' {
  if ((ctx.req.socket as TLSSocket).encrypted) return 'https';
  if (!trustProxy) return 'http';
  const match = FORWARDED_PROTO.exec(ctx.get('x-forwarded-proto').trim());
  return match && match[1]!.toLowerCase() === 'https' ? 'https' : 'http';
}

/** Whether the request is known to have reached us over TLS (set by canonicalUrl). */
export function arrivedOverTls(ctx: Context): boolean {
  return ctx.state.transport === 'https';
}

/** The path and query of the request target, also when a client sent an absolute-form target (`GET http://evil/x`). */
function pathAndQuery(target: string): string {
  if (target.startsWith('/')) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

export function canonicalUrl(options: CanonicalOptions): Middleware {
  const issuer = new URL(options.issuer);
  const protocol = issuer.protocol.slice(0, -1);
  const { host, hostname } = issuer;
  let warned = false;
  return async (ctx, next) => {
    ctx.state.transport = transportProtocol(ctx, options.trustProxy);
    if (protocol === 'https' && ctx.state.transport !== 'https' && !warned && ctx.path !== '/healthz' && ctx.path !== '/readyz') {
      warned = true;
      options.log?.warn(
        { path: ctx.path },
        options.trustProxy
          ? 'ISSUER is https but a request came without X-Forwarded-Proto: https (missing, http, or not one well-formed value); have the proxy set it so HSTS is sent'
          : 'ISSUER is https but a request was not known to arrive over TLS; behind a TLS-terminating proxy set TRUST_PROXY=true (and have it send X-Forwarded-Proto) so client addresses and HSTS are right',
      );
    }
    const request = ctx.request;
    let url: URL | undefined;
    // Own properties shadow Koa's getters on this request only; ctx.host, ctx.href… delegate here.
    Object.defineProperties(request, {
      protocol: { value: protocol },
      host: { value: host },
      hostname: { value: hostname },
      href: { get: () => `${protocol}://${host}${pathAndQuery(request.originalUrl)}` },
      URL: {
        get: () => {
          try {
            return (url ??= new URL(request.href));
          } catch {
            return Object.create(null) as URL; // as Koa does for an unparsable target
          }
        },
      },
    });
    await next();
  };
}
