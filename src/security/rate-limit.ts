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
  const key = `${rule.name}:${subject}`;
  const row = await sql<{ points: number; expires_at: Date }>`
    insert into rate_limits as r (key, points, expires_at)
    values (${key}, ${weight}, now() + make_interval(secs => ${rule.windowSeconds}))
    on conflict (key) do update set
      points = case when r.expires_at <= now() then ${weight} else r.points + ${weight} end,
      expires_at = case when r.expires_at <= now() then excluded.expires_at else r.expires_at end
    returning points, expires_at`.execute(db);
  const { points, expires_at } = row.rows[0]!;
  const retryAfterSeconds = Math.max(1, Math.ceil((new Date(expires_at).getTime() - Date.now()) / 1000));
  return { allowed: points <= rule.points, count: points, retryAfterSeconds };
}

export async function reset(db: Kysely<Database>, rule: LimitRule, subject: string): Promise<void> {
  await db.deleteFrom('rate_limits').where('key', '=', `${rule.name}:${subject}`).execute();
}
