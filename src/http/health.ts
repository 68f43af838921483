/**
 * /healthz: the process answers. /readyz: and its database does too.
 *
 * /readyz asks the database every time (one `select 1`, at most
 * READY_PING_TIMEOUT_MS), so it turns 503 as soon as the database is gone and
 * 200 with the first answer after it is back; the pool reconnects on its own.
 * It also says what this process saw: during an outage, since when
 * (`{"status":"database_unreachable","since":…}`); after one, when it began
 * and ended (`lastOutage`), so a probe or an operator can tell a recovery from
 * a provider that never noticed.
 */
import Router from '@koa/router';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { databaseHealth, ping } from '../db/database.ts';
import { DatabaseHealth, type Outage } from '../db/outage.ts';

/** A readiness probe must answer in time even when the database hangs instead of refusing. */
const READY_PING_TIMEOUT_MS = 2000;

class PingTimeout extends Error {
  readonly code = 'ping_timeout';
}

function pingWithin(db: Kysely<Database>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PingTimeout(`no answer from the database within ${ms} ms`)), ms);
  });
  return Promise.race([ping(db), timeout]).finally(() => clearTimeout(timer));
}

const shown = (o: Outage) => ({ began: o.began.toISOString(), ...(o.ended ? { ended: o.ended.toISOString() } : {}), cause: o.cause });

export function healthRoutes(db: Kysely<Database>, isShuttingDown: () => boolean): Router {
  const health = databaseHealth(db) ?? new DatabaseHealth();
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
      await pingWithin(db, READY_PING_TIMEOUT_MS);
      health.succeeded();
      ctx.body = { status: 'ready', ...(health.last ? { lastOutage: shown(health.last) } : {}) };
    } catch (err) {
      health.failed(err);
      ctx.status = 503;
      ctx.body = { status: 'database_unreachable', since: health.current!.began.toISOString() };
    }
  });
  return router;
}
