/**
 * Hands the rest of the app a request whose body is `body`, after a middleware
 * has read the original. node-oidc-provider and co-body read the request
 * stream themselves (the provider refuses a body parsed upstream), so a stream
 * of the same headers (with the new length), method, URL and socket stands in
 * for it, and they read the body as they always do.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Context } from 'koa';
import getRawBody from 'raw-body';

/** node-oidc-provider's own body limit (lib/shared/selective_body.js), the largest any route here accepts. */
export const BODY_LIMIT = 56 * 1024;

/** The body each request was last handed on with: middlewares after the first read it from here, not again. */
const bodies = new WeakMap<Context, Buffer>();

/**
 * The request's body, read from the stream once per request (at most BODY_LIMIT) and handed on as a fresh
 * stream. Throws raw-body's errors (`type: 'entity.too.large'` above the limit).
 */
export async function readBody(ctx: Context): Promise<Buffer> {
  const known = bodies.get(ctx);
  if (known) return known;
  const raw = await getRawBody(ctx.req, { length: ctx.request.length, limit: BODY_LIMIT });
  replayBody(ctx, raw);
  return raw;
}

export function replayBody(ctx: Context, body: Buffer): void {
  const original = ctx.req;
  const headers = { ...original.headers, 'content-length': String(body.length) };
  // The body is whole now: no chunked framing for anyone downstream to expect.
  delete headers['transfer-encoding'];
  const replay = Object.assign(Readable.from([body], { objectMode: false }), {
    headers,
    rawHeaders: original.rawHeaders,
    method: original.method,
    url: original.url,
    httpVersion: original.httpVersion,
    httpVersionMajor: original.httpVersionMajor,
    httpVersionMinor: original.httpVersionMinor,
    socket: original.socket,
    connection: original.socket,
    complete: true,
    trailers: {},
    rawTrailers: [],
  }) as unknown as IncomingMessage;
  ctx.req = replay;
  ctx.request.req = replay;
  bodies.set(ctx, body);
}
