/**
 * Fixed-window counters in the database, shared by every provider process.
 * One statement both counts and reads the count (INSERT … ON CONFLICT DO
 * UPDATE … RETURNING), so N concurrent attempts are counted exactly N times
 * and the limit holds under any parallelism.
 *
 * Hand-written because rate-limiter-flexible's PostgreSQL store needs a pg
 * pool of its own and cannot run on PGlite.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface LimitRule {
  /** Namespace, e.g. `pwd:login`. */
  name: string;
  /** Attempts allowed per window. */
  points: number;
  windowSeconds: number;
}

export interface ConsumeResult {
  allowed: boolean;
  /** Attempts counted in this window, including this one. */
  count: number;
  retryAfterSeconds: number;
}

export async function consume(db: Kysely<Database>, rule: LimitRule, subject: string, weight = 1): Promise<ConsumeResult> {
  return (await consumeAll(db, [{ rule, subject }], weight))[0];
}

export interface Counted {
  rule: LimitRule;
  subject: string;
}

/**
 * Counts several counters in one statement (one round trip), each exactly as
 * `consume` would; results in the order given. The rows are written in key
 * order, so two requests sharing counters lock them in the same order and
 * cannot deadlock.
 */
export async function consumeAll<const T extends readonly Counted[]>(db: Kysely<Database>, counters: T, weight = 1): Promise<{ -readonly [K in keyof T]: ConsumeResult }> {
  const keyed = counters.map((c) => ({ ...c, key: `${c.rule.name}:${c.subject}` }));
  if (new Set(keyed.map((c) => c.key)).size !== keyed.length) throw new Error('consumeAll: one counter given twice');
  const rows = [...keyed].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((c) => sql`(${c.key}, ${weight}, now() + make_interval(secs => ${c.rule.windowSeconds}))`);
  const result = await sql<{ key: string; points: number; expires_at: Date }>`
    insert into rate_limits as r (key, points, expires_at)
    values ${sql.join(rows)}
    on conflict (key) do update set
      points = case when r.expires_at <= now() then ${weight} else r.points + ${weight} end,
      expires_at = case when r.expires_at <= now() then excluded.expires_at else r.expires_at end
    returning key, points, expires_at`.execute(db);
  const byKey = new Map(result.rows.map((r) => [r.key, r]));
  return keyed.map((c) => {
    const { points, expires_at } = byKey.get(c.key)!;
    const retryAfterSeconds = Math.max(1, Math.ceil((new Date(expires_at).getTime() - Date.now()) / 1000));
    return { allowed: points <= c.rule.points, count: points, retryAfterSeconds };
  }) as { -readonly [K in keyof T]: ConsumeResult };
}

export async function reset(db: Kysely<Database>, rule: LimitRule, subject: string): Promise<void> {
  await db.deleteFrom('rate_limits').where('key', '=', `${rule.name}:${subject}`).execute();
}
