/**
 * Audit events: every sensitive action leaves a row (who, what, from where).
 * Writing an event never throws into the caller's flow; a failure is logged.
 */
import type { Kysely } from 'kysely';
import type { AuditEvent, Database } from '../db/schema.ts';
import { logger } from '../logger.ts';

export interface AuditContext {
  accountId?: string | null;
  clientId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  /** Who acted: `user`, `admin:cli`, `system`… */
  actor?: string | null;
}

/**
 * Told of each event after its row was written (the metrics count them). Keyed by the database object a process
 * opened, so servers sharing one process (tests) hear only the events written through their own database.
 */
export type AuditListener = (type: string, details: Record<string, unknown>) => void;
const listeners = new WeakMap<Kysely<Database>, Set<AuditListener>>();

/** Tells `listener` of every event recorded through `db` from now on; returns the way to stop. */
export function observeAudit(db: Kysely<Database>, listener: AuditListener): () => void {
  let set = listeners.get(db);
  if (!set) listeners.set(db, (set = new Set()));
  set.add(listener);
  return () => void set.delete(listener);
}

export async function recordAudit(db: Kysely<Database>, type: string, context: AuditContext, details: Record<string, unknown> = {}): Promise<void> {
  try {
    await db
      .insertInto('audit_events')
      .values({
        type,
        account_id: context.accountId ?? null,
        client_id: context.clientId ?? null,
        ip: context.ip ?? null,
        user_agent: context.userAgent?.slice(0, 512) ?? null,
        actor: context.actor ?? null,
        details: JSON.stringify(details),
      })
      .execute();
  } catch (err) {
    logger.error({ err, type }, 'could not record audit event');
    return;
  }
  for (const listener of listeners.get(db) ?? []) {
    try {
      listener(type, details);
    } catch (err) {
      logger.error({ err, type }, 'an audit listener failed'); // counting must never break the action it counts
    }
  }
}

export interface AuditQuery {
  accountId?: string;
  type?: string;
  limit?: number;
}

export async function listAudit(db: Kysely<Database>, query: AuditQuery = {}): Promise<AuditEvent[]> {
  let q = db
    .selectFrom('audit_events')
    .selectAll()
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(query.limit ?? 100);
  if (query.accountId) q = q.where('account_id', '=', query.accountId);
  if (query.type) q = q.where('type', '=', query.type);
  return q.execute();
}
