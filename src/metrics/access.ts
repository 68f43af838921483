/**
 * Who may read the metrics: never anyone by default. On the main listener a
 * scrape must bring the bearer token; on a listener of its own (loopback by
 * default) the token is asked for too when one is configured.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Middleware } from 'koa';
import type { Registry } from 'prom-client';

/** Compared as digests, so neither the length nor the content of the token leaks through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = crypto
    .createHash('sha256')
    .update(match?.[1] ?? '')
    .digest();
  const wanted = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, wanted) && match !== null;
}

/** What a refused scrape is told (RFC 6750): the scheme, and whether a token came at all. */
function refusal(header: string | undefined): { status: 401; challenge: string; body: { error: string; error_description: string } } {
  const sent = header !== undefined && header !== '';
  return {
    status: 401,
    challenge: sent ? 'Bearer realm="metrics", error="invalid_token"' : 'Bearer realm="metrics"',
    body: sent
      ? { error: 'invalid_token', error_description: 'the metrics token is not valid' }
      : { error: 'unauthorized', error_description: 'a bearer token is required' },
  };
}

/** The text a scrape gets, from a registry or (in a cluster primary) from every worker. */
export type MetricsSource = { contentType: string; metrics(): Promise<string> };

export function fromRegistry(registry: Registry): MetricsSource {
  return { contentType: registry.contentType, metrics: () => registry.metrics() };
}

/** GET /metrics on the main listener, for the token; every other request passes on. */
export function metricsRoute(source: MetricsSource, token: string): Middleware {
  return async (ctx, next) => {
    if (ctx.path !== '/metrics') return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    const header = ctx.get('authorization') || undefined;
    if (!tokenMatches(header, token)) {
      const r = refusal(header);
      ctx.status = r.status;
      ctx.set('WWW-Authenticate', r.challenge);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = r.body;
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = source.contentType;
    ctx.body = await source.metrics();
  };
}

export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

/** A listener that serves GET /metrics and nothing else. */
export async function startMetricsListener(source: MetricsSource, options: { host: string; port: number; token?: string }): Promise<MetricsListener> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
    if (options.token !== undefined && !tokenMatches(req.headers.authorization, options.token)) {
      const r = refusal(req.headers.authorization);
      return void res
        .writeHead(r.status, { 'www-authenticate': r.challenge, 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(r.body));
    }
    source.metrics().then(
      (text) => res.writeHead(200, { 'content-type': source.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text),
      () => res.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host || undefined, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
