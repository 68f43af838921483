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
}
