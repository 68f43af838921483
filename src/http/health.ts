/** /healthz: the process answers. /readyz: and its database does too. */
import Router from '@koa/router';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { ping } from '../db/database.ts';

export function healthRoutes(db: Kysely<Database>, isShuttingDown: () => boolean): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (isShuttingDown()) {
      ctx.status = 503;
      ctx.body = { status: 'shutting_down' };
      return;
    }
    try {
      await ping(db);
      ctx.body = { status: 'ready' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'database_unreachable' };
    }
  });
  return router;
}
