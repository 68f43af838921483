/**
 * The client's address for throttling and audit. Behind a trusted proxy, Koa
 * (with maxIpsCount = 1) takes the right-most X-Forwarded-For entry, the one
 * our own proxy wrote; anything that is not an IP falls back to the socket
 * address, so a malformed header can never dodge a throttle.
 */
import net from 'node:net';
import type { Context } from 'koa';

export function clientAddress(ctx: Context): string {
  const candidate = ctx.ip;
  if (candidate && net.isIP(candidate.replace(/^::ffff:/, ''))) return candidate.replace(/^::ffff:/, '');
  return (ctx.req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
}
