/**
 * What every fuzz suite shares: the size (FUZZ_RUNS), the seed (FUZZ_SEED), hostile text, a way to send any request
 * as bytes, and a snapshot of the stored rows, so a property can say "refused, and nothing changed".
 *
 * Sizes: FUZZ_RUNS is the number of inputs per property (default 60, the CI size); `npm run fuzz:long` sets it so the
 * whole folder runs at least 100,000 inputs. Seeds: FUZZ_SEED replays a run; without it CI uses a fixed seed (the
 * same cases every time) and a developer's machine draws a fresh one. A failure names the seed and path to replay.
 */
import { expect } from '@jest/globals';
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.ts';
import { BUILT_IN_LANGUAGES, Catalogue } from '../../src/i18n/catalogue.ts';

export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 150);
/** The share of FUZZ_RUNS a second, slower database gets (PostgreSQL beside PGlite). */
export const SECOND_DATABASE_SHARE = Number(process.env.FUZZ_SECOND_SHARE ?? 0.25);

const fixedSeed = process.env.CI ? 20261206 : undefined;
export const FUZZ_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (fixedSeed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0);

/** Generous for one request on a loaded machine; a hang is a failure, not a wait. */
export const PER_INPUT_TIMEOUT_MS = 20_000;

/** Jest's limit for a property of `runs` inputs: generous (a loaded machine), yet a hang still ends. */
export const timeoutFor = (runs: number) => Math.max(60_000, Math.round(runs) * 300);

/** Counts inputs across a file, for the long run's report. */
export const counted = { inputs: 0 };

/** Runs a property with the fuzz size and seed; a failure says how to replay it. */
export async function fuzz<T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, runs = FUZZ_RUNS): Promise<void> {
  const property = fc.asyncProperty(arbitrary, async (value) => {
    counted.inputs++;
    await predicate(value);
  });
  const out = await fc.check(property, { numRuns: Math.max(1, Math.round(runs)), seed: FUZZ_SEED, endOnFailure: process.env.FUZZ_SHRINK !== '1' });
  if (out.failed) {
    const why = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    throw new Error(
      `fuzz property failed after ${out.numRuns} inputs; replay with FUZZ_SEED=${out.seed} (path ${out.counterexamplePath}; FUZZ_SHRINK=1 to shrink)\n` +
        `input: ${short(fc.stringify(out.counterexample), 3000)}\n${short(why, 3000)}`,
    );
  }
}

export const short = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

/** Prints how many inputs a file ran, when a size was asked for (the long run's report). */
export function report(file: string, started: number): void {
  if (process.env.FUZZ_DEBUG)
    process.stderr.write(
      `${[...histogram]
        .sort()
        .map(([k, n]) => `${k}: ${n}`)
        .join('\n')}\n`,
    );
  if (process.env.FUZZ_RUNS)
    process.stderr.write(`fuzz ${file}: ${counted.inputs} inputs in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${FUZZ_SEED})\n`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Hostile text.

/** Pieces that have broken parsers somewhere: NUL, surrogates, percent sequences (bad UTF-8 among them), separators. */
const PIECES = [
  '\0',
  '%00',
  '\ud800',
  '\udfff',
  '\ud83d\ude00',
  '%ED%A0%80',
  '%ED%BF%BF',
  '%FF',
  '%C3',
  '%C3%28',
  '%E2%82',
  '%F4%90%80%80',
  '%',
  '%%',
  '%zz',
  '%2',
  '+',
  '&',
  '=',
  '#',
  '?',
  '"',
  "'",
  '\\',
  '<script>',
  '{{x}}',
  '${x}',
  '[',
  ']',
  '{',
  '}',
  ':',
  ';',
  ',',
  '\n',
  '\r\n',
  '\t',
  ' ',
  '\u2028',
  '\u00df',
  '\u200b',
  '\ufeff',
  '\uffff',
  '../',
  '%2e%2e%2f',
  'null',
  'undefined',
  '[]',
  '{}',
  'true',
  '-1',
  '0',
  '1e999',
  'NaN',
  '__proto__',
  'constructor',
];

/** The pieces PostgreSQL cannot store (or that decode to them), asked for often. */
const NASTY = ['\0', '\0', '%00', '\ud800', '\udc00', '%ED%A0%80', '%FF', '%C3', '%C0%80'];
const nasty = fc.tuple(fc.string({ maxLength: 4 }), fc.constantFrom(...NASTY), fc.string({ maxLength: 4 })).map((a) => a.join(''));

/** Any text, leaning to the pieces above, sometimes long. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: nasty },
  { weight: 4, arbitrary: fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 6 })), { maxLength: 8 }).map((a) => a.join('')) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 500, maxLength: 5000 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a'.repeat(70_000)) },
);

/** Text from `known` (so requests get past the first check), mutated now and then, or hostile. */
export function textFrom(known: string[]): fc.Arbitrary<string> {
  const k = fc.constantFrom(...known);
  return fc.oneof(
    { weight: 3, arbitrary: k },
    { weight: 1, arbitrary: fc.tuple(k, fc.constantFrom(...PIECES)).map(([v, p]) => v + p) },
    { weight: 1, arbitrary: fc.tuple(k, fc.constantFrom(...NASTY)).map(([v, p]) => v + p) },
    { weight: 1, arbitrary: fc.tuple(k, fc.nat()).map(([v, n]) => v.slice(0, n % (v.length + 1))) },
    { weight: 2, arbitrary: hostileText },
  );
}

/** Text a process's argv can carry: no NUL (a C string ends there), well-formed (argv is decoded as UTF-8). */
export const argvText: fc.Arbitrary<string> = hostileText.map((s) => Buffer.from(s.replaceAll('\0', ''), 'utf8').toString('utf8'));

// ---------------------------------------------------------------------------------------------------------------------
// Requests as bytes.

export type Params = Array<[string, string]>;

/** `arbitrary` one time in `n`, else undefined. */
export function rarely<T>(arbitrary: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });
}

/**
 * Parameters: a well-formed request (every key of `required`, some of `optional`, with values an app would send), then
 * spoiled a little: up to two values replaced by hostile text, up to two dropped, one repeated, one unknown added. Most
 * requests are thus valid but for one or two things, so they get past the first check and into the code behind it.
 */
export function paramsOf(required: Record<string, fc.Arbitrary<string>>, optional: Record<string, fc.Arbitrary<string>> = {}): fc.Arbitrary<Params> {
  const keys = [...Object.keys(required), ...Object.keys(optional)];
  return fc
    .record({
      base: fc.record({ ...required, ...optional }, { requiredKeys: Object.keys(required) }),
      // How many values to spoil (mostly one), and which: indexes into the parameters the request has.
      spoil: fc.array(fc.nat(), { minLength: 0, maxLength: 2 }).chain((a) => (a.length === 0 ? fc.constantFrom([] as number[], [0]) : fc.constant(a))),
      values: fc.array(hostileText, { minLength: 2, maxLength: 2 }),
      drop: rarely(fc.constantFrom(...keys), 4),
      repeat: rarely(fc.constantFrom(...keys), 8),
      extra: rarely(fc.tuple(hostileText, hostileText), 4),
    })
    .map(({ base, spoil, values, drop, repeat, extra }) => {
      const params: Params = Object.entries(base as Record<string, string>).filter(([k]) => k !== drop);
      spoil.forEach((n, i) => {
        if (params.length) params[n % params.length] = [params[n % params.length]![0], values[i]!];
      });
      if (repeat !== undefined) params.push([repeat, params.find(([k]) => k === repeat)?.[1] ?? '']);
      if (extra) params.push(extra);
      return params;
    });
}

/** A value's bytes in a URL or a form: encoded as a browser would, or written raw (percent sequences pass as they are). */
const encode = (s: string, raw: boolean) => (raw ? s : encodeURIComponent(Buffer.from(s, 'utf8').toString('utf8')));

export function urlEncoded(params: Params, raw: boolean): string {
  return params.map(([k, v]) => `${encode(k, raw)}=${encode(v, raw)}`).join('&');
}

export type BodyKind = 'form' | 'form-raw' | 'json' | 'utf16' | 'text' | 'bytes' | 'none';

export const bodyKind: fc.Arbitrary<BodyKind> = fc.constantFrom<BodyKind>(
  'form',
  'form',
  'form',
  'form',
  'form',
  'form-raw',
  'form-raw',
  'json',
  'utf16',
  'text',
  'bytes',
  'none',
);

/** Headers a request may carry; values a server can receive (printable latin1). */
const headerValue = (s: string) =>
  Buffer.from(s.slice(0, 300), 'utf8')
    .toString('latin1')
    .replace(/[^\x20-\x7e\xa0-\xff]/g, '');

export function headerText(): fc.Arbitrary<string> {
  return hostileText.map(headerValue);
}

export interface FuzzRequest {
  method: string;
  path: string;
  query: Params;
  queryRaw: boolean;
  body: Params;
  kind: BodyKind;
  bytes?: Uint8Array;
  headers: Record<string, string>;
}

/** Sends a request as bytes; never throws for an answer, whatever its status. */
export async function send(origin: string, r: FuzzRequest): Promise<Response> {
  const query = r.query.length ? `?${urlEncoded(r.query, r.queryRaw)}` : '';
  const headers: Record<string, string> = { ...r.headers };
  let body: Uint8Array | string | undefined;
  const canHaveBody = r.method !== 'GET' && r.method !== 'HEAD';
  if (canHaveBody) {
    switch (r.kind) {
      case 'form':
      case 'form-raw':
        headers['content-type'] ??= 'application/x-www-form-urlencoded';
        body = Buffer.from(urlEncoded(r.body, r.kind === 'form-raw'), 'utf8');
        break;
      case 'json':
        headers['content-type'] ??= 'application/json';
        // JSON.stringify escapes lone surrogates (\ud800): the escape PostgreSQL's jsonb refuses.
        body = JSON.stringify(Object.fromEntries(r.body));
        break;
      case 'utf16':
        headers['content-type'] = 'application/x-www-form-urlencoded; charset=utf-16le';
        body = Buffer.from(urlEncoded(r.body, true), 'utf16le');
        break;
      case 'text':
        headers['content-type'] ??= 'text/plain';
        body = urlEncoded(r.body, true);
        break;
      case 'bytes':
        body = r.bytes ?? new Uint8Array();
        break;
      case 'none':
        break;
    }
  }
  return fetch(`${origin}${r.path}${query}`, {
    method: r.method,
    headers,
    body: body as BodyInit | undefined,
    redirect: 'manual',
    signal: AbortSignal.timeout(PER_INPUT_TIMEOUT_MS),
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Stored rows.

/** Every table of the schema. */
export const ALL_TABLES = [
  'accounts',
  'groups',
  'account_groups',
  'clients',
  'resource_servers',
  'oidc_payloads',
  'signing_keys',
  'provider_secrets',
  'credentials',
  'one_time_codes',
  'challenge_codes',
  'interaction_state',
  'session_evidence',
  'policy_documents',
  'trusted_devices',
  'audit_events',
  'rate_limits',
  'consents',
  'factor_answers',
  'factor_nonces',
] as const;

/**
 * What an input refused after the guard (a wrong password, a malformed factor form) may still change: audit events and
 * throttle counters record refused attempts by design (the throttle suites test those), and a sign-in page shown again
 * carries a fresh challenge in its step state (interaction_state). Every other row must stay as it was. An input the
 * guard refuses changes nothing at all: it never reaches the code that writes.
 */
export const MAY_RECORD_REFUSALS: readonly string[] = ['audit_events', 'rate_limits', 'interaction_state'];

/**
 * Counts every row each table gains, loses or changes, with row-level triggers installed in the test database only (an
 * UPDATE that leaves a row as it was is no change). Comparing counters costs one small read per input, however large
 * the tables grow over a long run, where digesting every row each time would not.
 */
export async function installChangeCounters(db: Kysely<Database>, tables: readonly string[] = ALL_TABLES): Promise<void> {
  await sql`create table if not exists fuzz_changes (tbl text primary key, n bigint not null)`.execute(db);
  await sql`create or replace function fuzz_count() returns trigger language plpgsql as $$
    begin
      insert into fuzz_changes values (TG_TABLE_NAME, 1) on conflict (tbl) do update set n = fuzz_changes.n + 1;
      return null;
    end $$`.execute(db);
  for (const t of tables) {
    await sql`drop trigger if exists fuzz_count_rows on ${sql.table(t)}`.execute(db);
    await sql`drop trigger if exists fuzz_count_updates on ${sql.table(t)}`.execute(db);
    await sql`create trigger fuzz_count_rows after insert or delete on ${sql.table(t)} for each row execute function fuzz_count()`.execute(db);
    await sql`create trigger fuzz_count_updates after update on ${sql.table(t)} for each row when (old.* is distinct from new.*) execute function fuzz_count()`.execute(
      db,
    );
  }
}

export async function snapshot(db: Kysely<Database>): Promise<Record<string, string>> {
  const { rows } = await sql<{ tbl: string; n: string }>`select tbl, n::text as n from fuzz_changes`.execute(db);
  return Object.fromEntries(ALL_TABLES.map((t) => [t, rows.find((r) => r.tbl === t)?.n ?? '0']));
}

/** The guard's refusals (src/http/input-guard.ts): its JSON description, or its page in either language. */
const GUARD = new RegExp(
  [
    /contains a NUL character, a lone surrogate or malformed UTF-8/,
    /the request body (is too large|could not be read|is not valid)/,
    ...BUILT_IN_LANGUAGES.map((l) => escape(new Catalogue().text(l, 'input.refused.title'))),
  ]
    .map((r) => (typeof r === 'string' ? r : r.source))
    .join('|'),
);
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface Answer {
  status: number;
  text: string;
}

/** Tracks the rows across inputs: a refused input (4xx) must leave them as they were; an accepted one sets a new baseline. */
export class RowWatch {
  #last: Record<string, string> | undefined;
  constructor(readonly db: Kysely<Database>) {}

  #installed = false;

  async reset(): Promise<void> {
    if (!this.#installed) await installChangeCounters(this.db);
    this.#installed = true;
    this.#last = await snapshot(this.db);
  }

  /** `strict`: nothing at all may change on a refusal (the guard's refusals always are). */
  async after(answer: Answer, what: unknown, strict = false): Promise<void> {
    const now = await snapshot(this.db);
    if (answer.status >= 400 && this.#last) {
      const byGuard = strict || GUARD.test(answer.text);
      const changed = Object.keys(now).filter((t) => now[t] !== this.#last![t] && (byGuard || !MAY_RECORD_REFUSALS.includes(t)));
      expect({ refused: answer.status, byGuard, changed, what }).toEqual({ refused: answer.status, byGuard, changed: [], what });
    }
    this.#last = now;
  }
}

/** FUZZ_DEBUG=1: how many answers of each status each route got, printed with the report (for tuning the arbitraries). */
export const histogram = new Map<string, number>();

/** The answer, after checking it is not a server error; the body is read in full (a reset connection shows here). */
export async function answerOf(res: Response, what: unknown): Promise<Answer> {
  const text = await res.text();
  if (process.env.FUZZ_DEBUG) {
    const key = `${res.status} ${String(what)
      .split(' ')
      .slice(0, 3)
      .join(' ')
      .replace(/\/interaction\/[^/ ]+/, '')} ${GUARD.test(text) ? 'guard' : ''}`;
    histogram.set(key, (histogram.get(key) ?? 0) + 1);
  }
  expect({ status: res.status >= 500 ? res.status : 'ok', what, text: res.status >= 500 ? text.slice(0, 300) : '' }).toEqual({ status: 'ok', what, text: '' });
  return { status: res.status, text };
}
