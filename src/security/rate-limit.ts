/**
 * Throttle counters in the database, shared by every provider process. One
 * statement both counts and reads the count (INSERT … ON CONFLICT DO UPDATE …
 * RETURNING), so N concurrent attempts are counted exactly N times and the
 * limit holds under any parallelism: the row lock serialises the attempts on
 * one counter, and each sees the latest count.
 *
 * Three kinds of counter, all in the same two columns (points, expires_at):
 *
 * - `fixed`: `points` attempts per window; the window starts at the first
 *   attempt and does not move. Cheap, but a burst at the end of one window and
 *   another at the start of the next can reach twice `points` in one window's
 *   span. Fine for a coarse limit (a client address, sends).
 * - `rolling`: never more than `points` allowed attempts in ANY span of
 *   `windowSeconds` (the NIST SP 800-63B daily cap). Each allowed attempt
 *   moves the end of the window to `windowSeconds` after it, and the count
 *   clears only when a whole window passes without one. Each attempt is dated
 *   by the database, never earlier than the counter's last allowed attempt,
 *   so dates never go back in the order the row lock admits attempts. Proof:
 *   suppose points+1 allowed attempts, none given back, are dated within less
 *   than one window. Take them in lock order. The first moved the window end
 *   a window past its date; the window end only moves forward until a clear,
 *   and an attempt that clears is dated at or past that end, so every later
 *   attempt is dated past it too. Hence none of the points+1 cleared the
 *   count, and the last one found at least `points` counted and was refused.
 *   A give-back subtracts only an attempt that was no failure, and only in
 *   the run that counted it (see giveBack). Stricter than an exact sliding log
 *   (which would need one timestamp per attempt): the count of someone who
 *   fails once every day keeps growing until a failure-free day.
 * - `backoff`: the first `points` failures are free; after that each further
 *   attempt must wait `delaySeconds`, doubling with every failure, at most
 *   `maxDelaySeconds`; the streak clears after `windowSeconds` without an
 *   attempt once the wait is over. Attempts are dated as for `rolling`, so
 *   transactions that began out of order are not told to wait for nothing.
 *   An attempt made during the wait is refused
 *   and not counted (the conditional update leaves the row alone, and
 *   RETURNING omits it: that is how a refusal is told from an admission).
 *
 * Hand-written because rate-limiter-flexible's PostgreSQL store needs a pg
 * pool of its own and cannot run on PGlite.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.ts';

export type LimitRule =
  | {
      /** Namespace, e.g. `pwd:login`. */
      name: string;
      kind?: 'fixed' | 'rolling';
      /** Attempts allowed per window. */
      points: number;
      windowSeconds: number;
    }
  | {
      name: string;
      kind: 'backoff';
      /** Failures before the waits start. */
      points: number;
      /** Quiet time (after the current wait) that clears the streak. */
      windowSeconds: number;
      /** The first wait; each further failure doubles it. */
      delaySeconds: number;
      maxDelaySeconds: number;
    };

export interface ConsumeResult {
  allowed: boolean;
  /** Attempts counted in this window (the streak, for a backoff), including this one when it was counted. */
  count: number;
  retryAfterSeconds: number;
  /** Whether this attempt changed the counter (a refused backoff does not): what `giveBack` undoes. */
  counted: boolean;
  /** The counter's window end as this attempt left it (for a fixed window: which window to give back to). */
  windowEnd: Date;
}

export async function consume(db: Kysely<Database>, rule: LimitRule, subject: string, weight = 1, at?: Date): Promise<ConsumeResult> {
  return (await consumeAll(db, [{ rule, subject }], weight, at))[0];
}

export interface Counted {
  rule: LimitRule;
  subject: string;
}

const kindOf = (rule: LimitRule) => rule.kind ?? 'fixed';
const keyOf = (c: Counted) => `${c.rule.name}:${c.subject}`;
const secs = (n: RawBuilder<unknown> | number) => sql`make_interval(secs => ${n})`;

/** The wait (seconds) a backoff imposes after a streak of `n` failures. */
function delay(rule: Extract<LimitRule, { kind: 'backoff' }>, n: RawBuilder<unknown>): RawBuilder<number> {
  return sql<number>`(case when ${n} >= ${rule.points} then least(${rule.maxDelaySeconds}::float8, ${rule.delaySeconds}::float8 * power(2::float8, least(${n} - ${rule.points}, 40))) else 0 end)`;
}

/** The row a first attempt creates. */
function inserted(rule: LimitRule, key: string, weight: number, t: RawBuilder<unknown>) {
  if (rule.kind === 'backoff') return sql`(${key}, 1, ${t} + ${secs(delay(rule, sql`1`))} + ${secs(rule.windowSeconds)})`;
  return sql`(${key}, ${weight}, ${t} + ${secs(rule.windowSeconds)})`;
}

/** A counter's new (points, expires_at), and whether the attempt may change it, from its row `r` at time `t`. */
function updated(
  rule: LimitRule,
  weight: number,
  t: RawBuilder<unknown>,
): { points: RawBuilder<unknown>; expires: RawBuilder<unknown>; go: RawBuilder<unknown> } {
  const W = secs(rule.windowSeconds);
  const reset = sql`r.expires_at <= ${t}`;
  if (rule.kind === 'backoff') {
    const n = sql`(case when ${reset} then 1 else r.points + 1 end)`;
    // Dated no earlier than the streak's last failure (the window end less the quiet time and the wait): a
    // transaction that began a moment before the one the lock admitted first is not told to wait for nothing.
    const dated = sql`greatest(${t}, r.expires_at - ${W} - ${secs(delay(rule, sql`r.points`))})`;
    // Admitted when the streak has cleared or its current wait (the window end less the quiet time) is over.
    return {
      points: n,
      expires: sql`(case when ${reset} then ${t} else ${dated} end) + ${secs(delay(rule, n))} + ${W}`,
      go: sql`(${reset} or ${dated} >= r.expires_at - ${W})`,
    };
  }
  if (kindOf(rule) === 'rolling') {
    // Dated no earlier than the counter's last allowed attempt (the window end less a window), so dates increase in lock order.
    const dated = sql`greatest(${t}, r.expires_at - ${W})`;
    return {
      points: sql`case when ${reset} then ${weight} else r.points + ${weight} end`,
      expires: sql`case when ${reset} then ${t} + ${W} when r.points + ${weight} <= ${rule.points} then ${dated} + ${W} else r.expires_at end`,
      go: sql`true`,
    };
  }
  return {
    points: sql`case when ${reset} then ${weight} else r.points + ${weight} end`,
    expires: sql`case when ${reset} then ${t} + ${W} else r.expires_at end`,
    go: sql`true`,
  };
}

/** `case r.key when … then … end` over the counters. */
function byKey(keyed: Array<{ key: string }>, pick: (i: number) => RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`(case r.key ${sql.join(
    keyed.map((c, i) => sql`when ${c.key} then ${pick(i)}`),
    sql` `,
  )} end)`;
}

/**
 * Counts several counters in one statement (one round trip), each exactly as
 * `consume` would; results in the order given. The rows are written in key
 * order, so two requests sharing counters lock them in the same order and
 * cannot deadlock. `at` stands in for the database's clock (tests).
 */
export async function consumeAll<const T extends readonly Counted[]>(
  db: Kysely<Database>,
  counters: T,
  weight = 1,
  at?: Date,
): Promise<{ -readonly [K in keyof T]: ConsumeResult }> {
  const keyed = [...counters].map((c) => ({ ...c, key: keyOf(c) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (new Set(keyed.map((c) => c.key)).size !== keyed.length) throw new Error('consumeAll: one counter given twice');
  if (weight !== 1 && keyed.some((c) => kindOf(c.rule) !== 'fixed')) throw new Error('consumeAll: a weight is for fixed windows only');
  // Milliseconds, so a window end read back into a Date names the same instant (giveBack matches on it).
  const t = at ? sql`${at.toISOString()}::timestamptz` : sql`date_trunc('milliseconds', now())`;
  const plans = keyed.map((c) => updated(c.rule, weight, t));
  const result = await sql<{ key: string; points: number; expires_at: Date; now: Date }>`
    insert into rate_limits as r (key, points, expires_at)
    values ${sql.join(keyed.map((c) => inserted(c.rule, c.key, weight, t)))}
    on conflict (key) do update set
      points = ${byKey(keyed, (i) => plans[i]!.points)},
      expires_at = ${byKey(keyed, (i) => plans[i]!.expires)}
    where ${byKey(keyed, (i) => plans[i]!.go)}
    returning key, points, expires_at, ${t} as now`.execute(db);
  const rows = new Map(result.rows.map((r) => [r.key, { ...r, counted: true }]));
  const refused = keyed.filter((c) => !rows.has(c.key)).map((c) => c.key);
  if (refused.length) {
    // Backoffs that refused left their rows alone: read them for the wait.
    const left = await sql<{
      key: string;
      points: number;
      expires_at: Date;
      now: Date;
    }>`select key, points, expires_at, ${t} as now from rate_limits where key in (${sql.join(refused)})`.execute(db);
    for (const r of left.rows) rows.set(r.key, { ...r, counted: false });
  }
  return counters.map((c) => {
    const row = rows.get(keyOf(c));
    if (!row) throw new Error(`consumeAll: counter ${keyOf(c)} vanished`);
    const now = new Date(row.now).getTime();
    const end = new Date(row.expires_at).getTime();
    // A backoff's wait ends a quiet window before its streak clears.
    const freeAt = c.rule.kind === 'backoff' ? end - c.rule.windowSeconds * 1000 : end;
    const allowed = c.rule.kind === 'backoff' ? row.counted : row.points <= c.rule.points;
    return {
      allowed,
      count: row.points,
      counted: row.counted,
      windowEnd: new Date(row.expires_at),
      retryAfterSeconds: Math.max(1, Math.ceil((freeAt - now) / 1000)),
    };
  }) as { -readonly [K in keyof T]: ConsumeResult };
}

/**
 * Gives attempts back (one statement): a success, or an attempt another
 * counter refused, is not a failed guess; nor is a flood's excess, counted
 * while in flight. Only to the run that counted the attempt, never to a later
 * one: a fixed window gives back only to the window that counted it; a
 * rolling or backoff counter only while its window end is less than a window
 * past the end the attempt saw (clearing the count moves the end at least a
 * window past it). A backoff's wait shrinks with its streak. Never below zero.
 */
export async function giveBack(db: Kysely<Database>, attempts: ReadonlyArray<Counted & { result: ConsumeResult }>): Promise<void> {
  const keyed = attempts.filter((a) => a.result.counted).map((a) => ({ ...a, key: keyOf(a) }));
  if (!keyed.length) return;
  const n = sql`r.points`;
  const less = sql`greatest(r.points - 1, 0)`;
  // The rows are locked in key order first, as consumeAll locks them, so the two cannot deadlock.
  await sql`
    update rate_limits as r set
      points = ${less},
      expires_at = ${byKey(keyed, (i) => {
        const rule = keyed[i]!.rule;
        return rule.kind === 'backoff' ? sql`r.expires_at - ${secs(sql`${delay(rule, n)} - ${delay(rule, less)}`)}` : sql`r.expires_at`;
      })}
    from (select key from rate_limits where key in (${sql.join(keyed.map((a) => a.key))}) order by key for update) as locked
    where r.key = locked.key and (${sql.join(
      keyed.map((a) => {
        const end = sql`${a.result.windowEnd.toISOString()}::timestamptz`;
        const sameRun = kindOf(a.rule) === 'fixed' ? sql`r.expires_at = ${end}` : sql`r.expires_at < ${end} + ${secs(a.rule.windowSeconds)}`;
        return sql`(r.key = ${a.key} and ${sameRun})`;
      }),
      sql` or `,
    )})`.execute(db);
}

/** NIST SP 800-63B's ceiling on failures per account; the policy schema refuses more, and the throttles hold to it whatever they are given. */
const NIST_DAILY_MAX = 100;
type RuleNumbers = { points: number; windowSeconds: number };
const DAY = 24 * 3600;

/**
 * A daily ceiling held to NIST's (at most 100 in at least 24 hours), and the
 * unknown browsers' share of it: fewer points than the ceiling (half unless
 * set) over a window at least as long, so whatever unknown browsers do, the
 * known ones keep the rest.
 */
export function dailyCeiling(
  day: RuleNumbers | undefined,
  share: RuleNumbers | undefined,
  defaults: { day: LimitRule; share: LimitRule },
): { day: LimitRule; share: LimitRule } {
  const points = Math.min(NIST_DAILY_MAX, day?.points ?? defaults.day.points);
  const windowSeconds = Math.max(DAY, day?.windowSeconds ?? DAY);
  const sharePoints = points < 2 ? points : Math.min(share?.points ?? Math.floor(points / 2), points - 1);
  return {
    day: { ...defaults.day, points, windowSeconds },
    share: { ...defaults.share, points: Math.max(1, sharePoints), windowSeconds: Math.max(windowSeconds, share?.windowSeconds ?? windowSeconds) },
  };
}

/** A built-in rule with an admin's numbers (the global policy's `throttle`); its name, the counter key, stays fixed. */
export function withNumbers<R extends LimitRule>(rule: R, numbers?: { points: number; windowSeconds: number }): R {
  return numbers ? { ...rule, points: numbers.points, windowSeconds: numbers.windowSeconds } : rule;
}

export async function reset(db: Kysely<Database>, rule: LimitRule, subject: string): Promise<void> {
  await db.deleteFrom('rate_limits').where('key', '=', `${rule.name}:${subject}`).execute();
}

/** One guess as its counters saw it: allowed or not, and what to give back if it was no failure. */
export interface Verdict {
  allowed: boolean;
  retryAfterSeconds: number;
  /** What was counted for an allowed attempt: `refund` gives it back on success. */
  attempts: ReadonlyArray<Counted & { result: ConsumeResult }>;
}

/**
 * Counts one guess on all its counters before it is checked (one statement),
 * so parallel guesses cannot outrun any limit. A guess some counter refuses
 * is never checked, so it is given back to every counter that counted it:
 * a flood of parallel requests does not fill a daily ceiling.
 */
export async function attempt(db: Kysely<Database>, counters: readonly Counted[], at?: Date): Promise<Verdict> {
  const results = await consumeAll(db, counters, 1, at);
  const attempts = counters.map((c, i) => ({ ...c, result: results[i]! }));
  const blocked = results.filter((r) => !r.allowed);
  if (!blocked.length) return { allowed: true, retryAfterSeconds: 0, attempts };
  await giveBack(db, attempts);
  return { allowed: false, retryAfterSeconds: Math.max(...blocked.map((r) => r.retryAfterSeconds)), attempts: [] };
}

/** A guess that succeeded gives its points back, so the counters count failures. */
export async function refund(db: Kysely<Database>, verdict: Verdict): Promise<void> {
  await giveBack(db, verdict.attempts);
}

/**
 * Deletes counters by rule name and subject: each `[rule name, subject]` pair
 * clears the counter `name:subject` and every counter whose subject extends it
 * (`name:subject:…`, e.g. one per factor or per browser). Returns how many of
 * the deleted counters held any attempts (a counter whose attempts were all
 * given back holds none). Compared by prefix, not LIKE, so a `_` or `%` in a
 * subject is only itself.
 */
export async function clearCounters(db: Kysely<Database>, scopes: ReadonlyArray<readonly [name: string, subject: string]>): Promise<number> {
  if (!scopes.length) return 0;
  const result = await db
    .deleteFrom('rate_limits')
    .where((eb) =>
      eb.or(
        scopes.flatMap(([name, subject]) => {
          const key = `${name}:${subject}`;
          return [eb('key', '=', key), eb(sql`substr(key, 1, ${key.length + 1})`, '=', `${key}:`)];
        }),
      ),
    )
    .returning('points')
    .execute();
  return result.filter((r) => r.points > 0).length;
}
