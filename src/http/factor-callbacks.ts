/**
 * POST /factor/:id/callback: a server's call to a factor (a phone's approval
 * relayed by its push service), outside any interaction and any browser. The
 * factor authenticates it itself (a signature with a key it holds, a nonce and
 * a timestamp checked once across processes); this route only turns the
 * request into plain data and the factor's answer into JSON.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { FailureReason } from '../../factors/types.ts';
import { clientAddress } from './client-address.ts';
import { factorRequest } from './factor-request.ts';

const STATUS: Record<FailureReason, number> = {
  invalid_input: 400,
  wrong: 401,
  suspected_clone: 401,
  not_enrolled: 404,
  already_used: 409,
  expired: 410,
  locked: 429,
  unavailable: 503,
};

function answer(ctx: Context, status: number, body: Record<string, unknown>): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'json';
  ctx.body = body;
}

export function factorCallbackRoutes(services: Services): Router {
  const router = new Router();
  router.post('/factor/:factor/callback', async (ctx) => {
    const engine = services.factors;
    const id = String(ctx.params.factor);
    const declared = engine.registry.get(id)?.factor.routes?.callback;
    if (!declared) return answer(ctx, 404, { error: 'not_found' });
    const request = await factorRequest(ctx, declared.headers ?? []);
    if (!request.ok) return answer(ctx, 400, { error: 'invalid_input' });
    const result = await engine.handleCallback(id, request.request, { ip: clientAddress(ctx), userAgent: ctx.get('user-agent') });
    if (!result) return answer(ctx, 404, { error: 'not_found' });
    if (result.ok) return answer(ctx, 200, result.body ?? { ok: true });
    answer(ctx, STATUS[result.reason] ?? 400, { error: result.reason });
  });
  return router;
}
