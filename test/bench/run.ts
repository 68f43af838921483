/**
 * `npm run bench`: Twofold's benchmark, side by side with its ceilings, in one run.
 *
 *   npm run bench                       # full run (about 6 minutes), PGlite in a temporary folder
 *   DATABASE_URL=postgres://…/fresh npm run bench
 *   DATABASE_URL=postgres://…/postgres npm run bench -- --fresh-db   # a database made for the run, dropped after
 *   npm run bench -- --quick            # about a minute, for development and CI
 *   npm run bench -- --json out.json    # also write the figures as JSON (stable keys)
 *
 * It seeds a database (accounts with a password and a TOTP credential each, a
 * first-party app), builds and starts the provider as `npm start` does (a
 * process of its own, `node .build/main.js`), and drives real HTTP from a separate
 * driver process (driver.ts). The ceilings run in the same run with the same
 * driver: raw argon2id (argon2-ceiling.ts), a bare node-oidc-provider
 * (bare-provider.ts) in memory, and the same bare provider with a minimal
 * durable adapter of its own (bare-adapter.ts) on the run's database: the
 * PostgreSQL server (a table of its own), or PGlite in its process. See
 * docs/benchmarks.md.
 *
 * Options: --quick, --json FILE, --concurrency N (sign-in; default: swept in a
 * full run, 4 in --quick), --refresh-concurrency N, --overload-concurrency N,
 * --workers N (PostgreSQL only), --fresh-db (with DATABASE_URL: create a
 * fresh database on that server for the run, and drop it after), --accounts N, --cpu-prof DIR (profile the
 * provider's main thread into DIR), --only-signin (with --cpu-prof: just the
 * measured sign-in load), --keep (keep the temporary folder).
 *
 * Only 127.0.0.1 is ever contacted. Every phase is bounded in time and count.
 * Exit code: 0 when every operation succeeded; 1 on any error (targets that are
 * missed are reported, not failed: no figure here is a test of speed).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import type { StatementCounts } from './statement-counter.ts';
import type { FromDriver, PhaseResult, PhaseSpec, Target, ToDriver } from './protocol.ts';
import { seed } from './seed.ts';
import { cpuByPid, sampleTree } from './proc.ts';
import { percentiles } from './percentiles.ts';
import { freePort } from '../helpers/ports.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.join(ROOT, 'test/bench');
const PASSWORD = 'bench: correct horse battery staple';
const REDIRECT_URI = 'http://127.0.0.1/bench/callback';
const TARGETS = {
  signin_vs_ceiling: 0.8,
  refresh_vs_bare: 0.6,
  signin_vs_durable_ceiling: 0.75,
  refresh_vs_durable_bare: 0.85,
  totp_p99_ms: 25,
  rss_idle_mb: 150,
  rss_load_mb: 300,
  ready_ms_pglite: 1500,
};

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    concurrency: { type: 'string' },
    'refresh-concurrency': { type: 'string' },
    'overload-concurrency': { type: 'string' },
    workers: { type: 'string' },
    accounts: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'only-signin': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'fresh-db': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    fs
      .readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('*/')[0]!
      .replace(/^\/\*\*|^ \* ?/gm, '') + '\n',
  );
  process.exit(0);
}

const quick = args.quick!;
const intArg = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    process.stderr.write(`bench: --${name} must be a positive integer\n`);
    process.exit(2);
  }
  return n;
};
const fixedConcurrency = intArg(args.concurrency, 'concurrency');
const refreshConcurrency = intArg(args['refresh-concurrency'], 'refresh-concurrency');
const workers = intArg(args.workers, 'workers') ?? 1;
const accountCount = intArg(args.accounts, 'accounts') ?? (quick ? 800 : 5000);
const serverUrl = process.env.DATABASE_URL || undefined;
let databaseUrl = serverUrl;
let freshDb: string | undefined;
if (args['fresh-db'] && !serverUrl) {
  process.stderr.write('bench: --fresh-db needs DATABASE_URL (a server to create the database on)\n');
  process.exit(2);
}
if (serverUrl && args['fresh-db']) {
  freshDb = `twofold_bench_${crypto.randomBytes(5).toString('hex')}`;
  const url = new URL(serverUrl);
  url.pathname = `/${freshDb}`;
  databaseUrl = url.toString();
}
async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
const database = databaseUrl ? 'postgres' : 'pglite';
if (workers > 1 && !databaseUrl) {
  process.stderr.write('bench: --workers needs DATABASE_URL (PGlite is single-process)\n');
  process.exit(2);
}
const cores = os.availableParallelism();
const command = ['npm run bench', ...(process.argv.slice(2).length ? ['--', ...process.argv.slice(2)] : [])].join(' ');
const redactedUrl = databaseUrl?.replace(/\/\/([^:@/]+)(:[^@/]*)?@/, '//$1@');

// --- children we started, and only those, are stopped on the way out -------------------------------
const children = new Set<ChildProcess>();
let tmpDir: string | undefined;
function cleanup(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (tmpDir && !args.keep) fs.rmSync(tmpDir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const loadAvg = () => os.loadavg().map((v) => Math.round(v * 100) / 100);
const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- the provider ----------------------------------------------------------------------------------

interface Provider {
  child: ChildProcess;
  issuer: string;
  statsPort: number;
  readyMs: number;
}

async function waitReady(url: string, child: ChildProcess, started: number, limitMs = 60_000): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before it was ready`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return performance.now() - started;
    } catch {
      // not listening yet
    }
    if (performance.now() - started > limitMs) throw new Error(`not ready after ${limitMs} ms`);
    await sleep(10);
  }
}

function providerEnv(port: number, statsPort: number, dataDir: string, secretKey: string): Record<string, string> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    SECRET_KEY: secretKey,
    // The driver reports one address per simulated user, as a TLS proxy would (X-Forwarded-For).
    TRUST_PROXY: 'true',
    MFA: 'optional',
    LOG_LEVEL: 'info',
    WORKERS: String(workers),
    BENCH_STATS_PORT: String(statsPort),
    // The seeded accounts stand for ones that saved their backup codes: no offer of a new set between TOTP and the app.
    FACTOR_SETTINGS: JSON.stringify({ 'backup-codes': { offerAgain: false } }),
  };
  // Not NODE_ENV=production: that demands an https issuer, and the benchmark speaks plain HTTP on loopback.
  env.NODE_ENV = 'development';
  delete env.NODE_OPTIONS;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  return env;
}

/** The statement counter, bundled as the provider is, so loading it costs the provider no TypeScript loader. */
const COUNTER_BUNDLE = '.build/bench-count-statements.mjs';
async function buildCounter(): Promise<void> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [path.join(HERE, 'count-statements.ts')],
    outfile: path.join(ROOT, COUNTER_BUNDLE),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
}

async function startProvider(env: Record<string, string>, logFile: string, cpuProfDir?: string): Promise<Provider> {
  const out = fs.openSync(logFile, 'a');
  const execArgv = [...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []), '--import', `./${COUNTER_BUNDLE}`, '.build/main.js'];
  const started = performance.now();
  const child = spawn(process.execPath, execArgv, { cwd: ROOT, env, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  children.add(child);
  const issuer = env.ISSUER!;
  const readyMs = await waitReady(`${issuer}/readyz`, child, started);
  return { child, issuer, statsPort: Number(env.BENCH_STATS_PORT), readyMs: Math.round(readyMs) };
}

async function stopChild(child: ChildProcess, limitMs = 20_000): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const code = await exited;
  clearTimeout(timer);
  children.delete(child);
  return code;
}

async function statements(p: Provider, reset = false): Promise<StatementCounts> {
  const url = `http://127.0.0.1:${p.statsPort}/statements${reset ? '/reset' : ''}`;
  const res = await fetch(url, { method: reset ? 'POST' : 'GET' });
  if (!res.ok) throw new Error(`statement counts: ${res.status}`);
  return reset ? (undefined as never) : ((await res.json()) as { counts: StatementCounts }).counts;
}

/** The durable bare provider's adapter statements (bare-adapter.ts). */
async function bareStatements(issuer: string, reset = false): Promise<StatementCounts> {
  const res = await fetch(`${issuer}/__bench/statements`, { method: reset ? 'POST' : 'GET' });
  if (!res.ok) throw new Error(`bare statement counts: ${res.status}`);
  return ((await res.json()) as { counts: StatementCounts }).counts;
}

// --- PostgreSQL backends' CPU (same machine) -----------------------------------------------------------

async function backendPids(): Promise<number[]> {
  if (!databaseUrl) return [];
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const name = new URL(databaseUrl).pathname.slice(1);
    const r = await client.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    return r.rows.map((row) => row.pid);
  } finally {
    await client.end();
  }
}

// --- the driver --------------------------------------------------------------------------------------

class Driver {
  readonly child: ChildProcess;
  #next = 0;
  #waiters = new Map<string, (msg: FromDriver) => void>();
  onMark?: (id: number, mark: 'start' | 'end') => void;

  constructor() {
    this.child = fork(path.join(HERE, 'driver.ts'), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    children.add(this.child);
    this.child.on('message', (msg: FromDriver) => {
      if (msg.type === 'mark') return this.onMark?.(msg.id, msg.mark);
      const key = msg.type === 'result' ? `result:${msg.id}` : msg.type;
      const waiter = this.#waiters.get(key) ?? this.#waiters.get('any');
      if (msg.type === 'error') {
        for (const w of this.#waiters.values()) w(msg);
        this.#waiters.clear();
        return;
      }
      this.#waiters.delete(key);
      waiter?.(msg);
    });
    this.child.on('exit', (code) => {
      for (const w of this.#waiters.values()) w({ type: 'error', message: `the driver exited (${code})` });
      this.#waiters.clear();
    });
  }

  #expect(key: string): Promise<FromDriver> {
    return new Promise((resolve, reject) =>
      this.#waiters.set(key, (msg) => (msg.type === 'error' ? reject(new Error(`driver: ${msg.message}`)) : resolve(msg))),
    );
  }

  async ready(): Promise<void> {
    await this.#expect('ready');
  }

  async target(target: Target): Promise<void> {
    const done = this.#expect('target-ready');
    this.child.send({ type: 'target', target } satisfies ToDriver);
    await done;
  }

  async run(phase: PhaseSpec): Promise<{ id: number; result: PhaseResult }> {
    const id = ++this.#next;
    const done = this.#expect(`result:${id}`);
    this.child.send({ type: 'run', id, phase } satisfies ToDriver);
    const msg = await done;
    return { id, result: (msg as Extract<FromDriver, { type: 'result' }>).result };
  }

  go(id: number): void {
    this.child.send({ type: 'go', id } satisfies ToDriver);
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'exit' } satisfies ToDriver);
    await exited;
    children.delete(this.child);
  }
}

// --- measuring a phase: the driver marks its window; we sample the server side at the marks ---------

interface Measured extends PhaseResult {
  database: string;
  cores: number;
  duration_s: number;
  load_avg: number[];
  /** Server CPU seconds (the provider's process tree) per operation in the window. */
  cpu_s_per_op?: number;
  /** PostgreSQL backends' CPU seconds per operation in the window. */
  db_cpu_s_per_op?: number;
  rss_max_mb?: number;
  rounds?: Array<{ per_s: number; load_avg_1m: number | undefined }>;
}

let rssWatch: { root: number; max: number } | undefined;
const rssTimer = setInterval(() => {
  if (!rssWatch) return;
  rssWatch.max = Math.max(rssWatch.max, sampleTree(rssWatch.root).rssBytes);
}, 200);
rssTimer.unref();

async function measure(driver: Driver, serverPid: number | undefined, spec: PhaseSpec, label: string): Promise<Measured> {
  const marks: Record<string, { cpu: number; db: Map<number, number> }> = {};
  const loadAtStart = loadAvg();
  let dbPids = databaseUrl && serverPid ? await backendPids() : [];
  const sample = async (mark: string) => {
    if (!serverPid) return;
    if (mark === 'end' && databaseUrl) dbPids = [...new Set([...dbPids, ...(await backendPids())])];
    marks[mark] = { cpu: sampleTree(serverPid).cpuSeconds, db: cpuByPid(dbPids) };
  };
  const pending: Promise<void>[] = [];
  driver.onMark = (_id, mark) => void pending.push(sample(mark));
  if (serverPid) rssWatch = { root: serverPid, max: sampleTree(serverPid).rssBytes };
  log(`${label}: ${spec.operation} × ${spec.concurrency} for up to ${spec.durationMs / 1000} s`);
  const { result } = await driver.run(spec);
  await Promise.all(pending);
  const watched = rssWatch;
  rssWatch = undefined;
  const out: Measured = { ...result, database, cores, duration_s: spec.durationMs / 1000, load_avg: loadAtStart };
  if (serverPid && marks.start && marks.end && result.measured > 0) {
    out.cpu_s_per_op = round((marks.end.cpu - marks.start.cpu) / result.measured, 4);
    if (databaseUrl) {
      let db = 0;
      for (const [pid, cpu] of marks.end.db) db += cpu - (marks.start.db.get(pid) ?? 0);
      out.db_cpu_s_per_op = round(db / result.measured, 4);
    }
  }
  if (watched) out.rss_max_mb = round(watched.max / 1048576);
  const err = result.errors ? ` ERRORS ${result.errors}: ${result.error_samples[0]}` : '';
  log(
    `  ${result.per_s}/s, p50 ${result.latency.p50_ms} ms, p99 ${result.latency.p99_ms} ms, ${result.measured} in ${result.window_s} s${result.shed ? `, 503 × ${result.shed}` : ''}${err}`,
  );
  return out;
}

function phase(name: string, operation: PhaseSpec['operation'], concurrency: number, seconds: number, extra: Partial<PhaseSpec> = {}): PhaseSpec {
  const durationMs = Math.round(seconds * 1000);
  return { name, operation, concurrency, durationMs, warmupMs: Math.min(3000, Math.round(durationMs * 0.15)), maxOps: 1_000_000, ...extra };
}

// --- the ceilings' processes, and merging rounds -----------------------------------------------------

interface Argon2Run {
  per_s: number;
  count: number;
  concurrency: number;
  duration_s: number;
  cpu_s_per_hash: number;
  load_avg: number[];
}

/** The bare library: in memory, or durable (`store`: the run's PostgreSQL database in a table of its own, or PGlite in its folder). */
async function startBare(store?: {
  table: string;
  pgliteDir: string;
}): Promise<{ child: ChildProcess; issuer: string; clientId: string; clientSecret: string }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '', PORT: String(port), BENCH_REDIRECT_URI: REDIRECT_URI, BARE_STORE: 'memory' };
  if (store)
    Object.assign(env, databaseUrl ? { BARE_STORE: 'postgres', BARE_DATABASE_URL: databaseUrl } : { BARE_STORE: 'pglite', BARE_PGLITE_DIR: store.pgliteDir }, {
      BARE_TABLE: store.table,
    });
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'bare-provider.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const info = await new Promise<{ issuer: string; clientId: string; clientSecret: string }>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      try {
        resolve(JSON.parse(buf.split('\n')[0]!));
      } catch (err) {
        reject(err);
      }
    });
    child.once('exit', (code) => reject(new Error(`the bare provider exited (${code})`)));
  });
  log(
    `bare node-oidc-provider${store ? `, durable on ${databaseUrl ? `PostgreSQL (table ${store.table})` : 'PGlite'}` : ''}, at ${info.issuer} (pid ${child.pid})`,
  );
  return { child, ...info };
}

async function argon2Ceiling(config: ReturnType<typeof loadConfig>, concurrency: number, seconds: number): Promise<Argon2Run> {
  log(`argon2id ceiling: m=${config.ARGON2_MEMORY_KIB} t=${config.ARGON2_ITERATIONS} p=${config.ARGON2_PARALLELISM}, ${concurrency} at once, ${seconds} s`);
  const loadAtStart = loadAvg();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(HERE, 'argon2-ceiling.ts'),
      String(config.ARGON2_MEMORY_KIB),
      String(config.ARGON2_ITERATIONS),
      String(config.ARGON2_PARALLELISM),
      String(concurrency),
      String(seconds),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  children.delete(child);
  if (code !== 0) throw new Error(`the argon2 ceiling exited with ${code}`);
  const run = { ...(JSON.parse(out) as Omit<Argon2Run, 'load_avg'>), load_avg: loadAtStart };
  log(`  ${run.per_s} hashes/s`);
  return run;
}

function mergeArgon2(runs: Argon2Run[]) {
  const count = runs.reduce((n, r) => n + r.count, 0);
  const seconds = runs.reduce((n, r) => n + r.duration_s, 0);
  return {
    per_s: round(count / seconds),
    count,
    concurrency: runs[0]!.concurrency,
    duration_s: round(seconds, 2),
    cpu_s_per_hash: round(runs.reduce((n, r) => n + r.cpu_s_per_hash * r.count, 0) / count, 5),
    rounds: runs.map((r) => r.per_s),
    database,
    cores,
  };
}

/** The smallest concurrency within 5% of the best throughput. */
function saturating(runs: Measured[]): number {
  const best = Math.max(...runs.map((r) => r.per_s));
  return runs.find((r) => r.per_s >= 0.95 * best)!.concurrency;
}

const brief = (m: Measured) => ({
  concurrency: m.concurrency,
  per_s: m.per_s,
  p50_ms: m.latency.p50_ms,
  p99_ms: m.latency.p99_ms,
  cpu_s_per_op: m.cpu_s_per_op,
  load_avg_1m: m.load_avg[0],
});

/** One figure from several rounds: operations over total window, percentiles over all latencies. */
function merge(runs: Measured[], name: string): Measured {
  const measured = runs.reduce((n, r) => n + r.measured, 0);
  const window = runs.reduce((n, r) => n + r.window_s, 0);
  const ops = runs.flatMap((r) => r.raw?.ops ?? []);
  const stepNames = [...new Set(runs.flatMap((r) => Object.keys(r.raw?.steps ?? {})))];
  const weighted = (key: 'cpu_s_per_op' | 'db_cpu_s_per_op') =>
    runs.every((r) => r[key] !== undefined) && measured ? round(runs.reduce((n, r) => n + r[key]! * r.measured, 0) / measured, 4) : undefined;
  const sum = (key: 'started' | 'completed' | 'errors' | 'shed' | 'shed_with_retry_after' | 'accepted_completed' | 'starved') =>
    runs.reduce((n, r) => n + r[key], 0);
  return {
    ...runs[0]!,
    name,
    window_s: round(window, 2),
    duration_s: round(
      runs.reduce((n, r) => n + r.duration_s, 0),
      2,
    ),
    started: sum('started'),
    completed: sum('completed'),
    measured,
    per_s: round(measured / window),
    latency: percentiles(ops),
    steps: Object.fromEntries(stepNames.map((s) => [s, percentiles(runs.flatMap((r) => r.raw?.steps[s] ?? []))])),
    errors: sum('errors'),
    error_samples: runs.flatMap((r) => r.error_samples).slice(0, 10),
    shed: sum('shed'),
    shed_with_retry_after: sum('shed_with_retry_after'),
    accepted_completed: sum('accepted_completed'),
    starved: sum('starved'),
    driver_cpu_s: round(
      runs.reduce((n, r) => n + r.driver_cpu_s, 0),
      2,
    ),
    cpu_s_per_op: weighted('cpu_s_per_op'),
    db_cpu_s_per_op: weighted('db_cpu_s_per_op'),
    rss_max_mb: Math.max(...runs.map((r) => r.rss_max_mb ?? 0)),
    rounds: runs.map((r) => ({ per_s: r.per_s, load_avg_1m: r.load_avg[0] })),
    raw: { ops, steps: {} },
  };
}

/** A figure without its raw latencies (for the report). */
function strip(m: Measured): Omit<Measured, 'raw'> {
  const { raw: _raw, ...rest } = m;
  return rest;
}

// --- the run ----------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadStart = loadAvg();
  log(`${command}: ${database}${redactedUrl ? ` (${redactedUrl})` : ''}, ${cores} cores, load ${loadStart.join(' ')}${quick ? ', quick' : ''}`);
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-bench-'));
  if (freshDb) {
    await adminQuery(`create database ${freshDb}`);
    log(`created database ${freshDb}`);
  }
  const logFile = path.join(tmpDir, 'provider.log');
  const secretKey = process.env.SECRET_KEY || crypto.randomBytes(32).toString('hex');
  const port = await freePort();
  const statsPort = await freePort();
  const env = providerEnv(port, statsPort, path.join(tmpDir, 'data'), secretKey);
  const config = loadConfig(env);
  const runId = crypto.randomBytes(3).toString('hex');

  log(`seeding ${accountCount} accounts with password and TOTP, one first-party app`);
  const seeded = await seed(config, { accounts: accountCount, prefix: `bench${runId}-`, password: PASSWORD, redirectUri: REDIRECT_URI });
  log(`  seeded in ${seeded.ms} ms`);

  const errors: string[] = [];
  const report: Record<string, unknown> = {};
  const durations = quick
    ? { signin: 5, totp: 2.5, refresh: 3, overload: 4, sweep: 0, refreshSweep: 0, bareSignin: 3, bareRefresh: 2.5, argon2: 2, count: 6, warm: 6, rounds: 1 }
    : {
        signin: 30,
        totp: 15,
        refresh: 18,
        overload: 20,
        sweep: 6,
        refreshSweep: 5,
        bareSignin: 18,
        bareRefresh: 12,
        argon2: 9,
        count: 30,
        warm: 30,
        rounds: 3,
      };

  // 1. Build as `npm start` does (not timed), then start, time to /readyz, idle memory.
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  await buildCounter();
  const provider = await startProvider(env, logFile, args['cpu-prof']);
  log(`provider ready in ${provider.readyMs} ms (pid ${provider.child.pid}${workers > 1 ? `, ${workers} workers` : ''})`);
  await sleep(quick ? 1000 : 3000);
  const idle = sampleTree(provider.child.pid!);
  const driver = new Driver();
  await driver.ready();
  const twofold: Target = {
    kind: 'twofold',
    issuer: provider.issuer,
    clientId: seeded.clientId,
    clientSecret: seeded.clientSecret,
    redirectUri: REDIRECT_URI,
    mfa: true,
    password: PASSWORD,
    accounts: seeded.accounts,
  };
  await driver.target(twofold);
  const pid = provider.child.pid!;
  const record = (m: Measured) => {
    if (m.errors) errors.push(`${m.name}: ${m.errors} error(s), e.g. ${m.error_samples[0]}`);
    return m;
  };

  // 2. Warm-up, then statements per sign-in and per refresh (sequential, counted by the provider's kysely plugin).
  record(await measure(driver, undefined, phase('warm-up', 'signin', 2, 60, { maxOps: durations.warm, warmupMs: 0 }), 'warm-up'));
  record(await measure(driver, undefined, phase('warm-up refresh', 'refresh', 2, 3, { warmupMs: 0 }), 'warm-up refresh'));
  await statements(provider, true);
  const countSignins = record(
    await measure(driver, undefined, phase('count sign-ins', 'signin', 1, 120, { maxOps: durations.count, warmupMs: 0 }), 'statements per sign-in'),
  );
  const signinCounts = await statements(provider);
  // The refresh phase starts its chain with a sign-in: counting starts after it, when the driver says so.
  const refreshSpec = phase('count refreshes', 'refresh', 1, 120, { maxOps: durations.count, warmupMs: 0, waitForGo: true });
  driver.onMark = (id, mark) => {
    if (mark === 'start') void statements(provider, true).then(() => driver.go(id));
  };
  const countRefresh = record((await driver.run(refreshSpec)).result as Measured);
  const refreshCounts = await statements(provider);
  const per = (c: StatementCounts, n: number) => ({
    per_op: round(c.total / n, 2),
    reads_per_op: round(c.reads / n, 2),
    writes_per_op: round(c.writes / n, 2),
    breakdown_per_op: Object.fromEntries(Object.entries(c.byStatement).map(([k, v]) => [k, round(v / n, 2)])),
    sample: n,
  });
  const sIn = per(signinCounts, countSignins.completed || 1);
  const sRef = per(refreshCounts, countRefresh.completed || 1);
  report.statements = {
    per_signin: sIn.per_op,
    reads_per_signin: sIn.reads_per_op,
    writes_per_signin: sIn.writes_per_op,
    per_refresh: sRef.per_op,
    reads_per_refresh: sRef.reads_per_op,
    writes_per_refresh: sRef.writes_per_op,
    signin_breakdown: sIn.breakdown_per_op,
    refresh_breakdown: sRef.breakdown_per_op,
    sample_signins: sIn.sample,
    sample_refreshes: sRef.sample,
    database,
  };
  log(`statements: ${sIn.per_op} per sign-in (${sIn.reads_per_op} reads, ${sIn.writes_per_op} writes), ${sRef.per_op} per refresh`);

  // 3. The bare provider (the ceiling) runs beside Twofold from here on, idle when not driven, so
  //    that Twofold and its ceilings are measured in alternation: on a shared machine the load
  //    drifts, and figures measured minutes apart would compare two different machines.
  const bare = await startBare();
  const bareDriver = new Driver();
  await bareDriver.ready();
  await bareDriver.target({
    kind: 'bare',
    issuer: bare.issuer,
    clientId: bare.clientId,
    clientSecret: bare.clientSecret,
    redirectUri: REDIRECT_URI,
    mfa: false,
    password: PASSWORD,
    accounts: seeded.accounts.map(({ username, ip }) => ({ username, ip })),
  });
  record(await measure(bareDriver, undefined, phase('bare warm-up', 'signin', 2, 60, { maxOps: durations.warm, warmupMs: 0 }), 'bare warm-up'));
  const barePid = bare.child.pid!;

  // The durable floor: the bare library with the simplest durable adapter, its statements counted as Twofold's are.
  bareTable = `bench_bare_${runId}`;
  const durable = await startBare({ table: bareTable, pgliteDir: path.join(tmpDir!, 'bare-pgdata') });
  const durableDriver = new Driver();
  await durableDriver.ready();
  await durableDriver.target({
    kind: 'bare',
    issuer: durable.issuer,
    clientId: durable.clientId,
    clientSecret: durable.clientSecret,
    redirectUri: REDIRECT_URI,
    mfa: false,
    password: PASSWORD,
    accounts: seeded.accounts.map(({ username, ip }) => ({ username, ip })),
  });
  record(
    await measure(durableDriver, undefined, phase('durable bare warm-up', 'signin', 2, 60, { maxOps: durations.warm, warmupMs: 0 }), 'durable bare warm-up'),
  );
  record(await measure(durableDriver, undefined, phase('durable bare warm-up refresh', 'refresh', 2, 3, { warmupMs: 0 }), 'durable bare warm-up refresh'));
  await bareStatements(durable.issuer, true);
  const durableCountSignins = record(
    await measure(
      durableDriver,
      undefined,
      phase('durable bare count sign-ins', 'signin', 1, 120, { maxOps: durations.count, warmupMs: 0 }),
      'durable bare statements per sign-in',
    ),
  );
  const durableSigninCounts = await bareStatements(durable.issuer);
  durableDriver.onMark = (id, mark) => {
    if (mark === 'start') void bareStatements(durable.issuer, true).then(() => durableDriver.go(id));
  };
  const durableCountRefresh = record((await durableDriver.run({ ...refreshSpec, name: 'durable bare count refreshes' })).result as Measured);
  const durableRefreshCounts = await bareStatements(durable.issuer);
  const dIn = per(durableSigninCounts, durableCountSignins.completed || 1);
  const dRef = per(durableRefreshCounts, durableCountRefresh.completed || 1);
  report.statements = {
    ...(report.statements as object),
    durable_bare: {
      per_signin: dIn.per_op,
      reads_per_signin: dIn.reads_per_op,
      writes_per_signin: dIn.writes_per_op,
      per_refresh: dRef.per_op,
      reads_per_refresh: dRef.reads_per_op,
      writes_per_refresh: dRef.writes_per_op,
      signin_breakdown: dIn.breakdown_per_op,
      refresh_breakdown: dRef.breakdown_per_op,
      sample_signins: dIn.sample,
      sample_refreshes: dRef.sample,
    },
  };
  log(`durable bare statements: ${dIn.per_op} per sign-in (${dIn.reads_per_op} reads, ${dIn.writes_per_op} writes), ${dRef.per_op} per refresh`);
  const durablePid = durable.child.pid!;
  const hashC = config.HASH_CONCURRENCY * workers;
  const argon2Runs: Argon2Run[] = [];

  // Sweeps (full run): the saturating concurrency of each, Twofold and bare side by side.
  let concurrency = fixedConcurrency ?? 4;
  let bareConcurrency = fixedConcurrency ?? 4;
  let durableConcurrency = fixedConcurrency ?? 4;
  const sweep: Measured[] = [];
  const bareSweep: Measured[] = [];
  const durableSweep: Measured[] = [];
  if (!quick && !fixedConcurrency && !args['only-signin']) {
    for (const c of [1, 2, 4, 8, 16]) {
      sweep.push(record(await measure(driver, pid, phase(`sign-in sweep c=${c}`, 'signin', c, durations.sweep), `sweep c=${c}`)));
      if (c > 1)
        bareSweep.push(record(await measure(bareDriver, barePid, phase(`bare sign-in sweep c=${c}`, 'signin', c, durations.sweep), `bare sweep c=${c}`)));
      if (c > 1)
        durableSweep.push(
          record(
            await measure(durableDriver, durablePid, phase(`durable bare sign-in sweep c=${c}`, 'signin', c, durations.sweep), `durable bare sweep c=${c}`),
          ),
        );
    }
    concurrency = saturating(sweep);
    bareConcurrency = saturating(bareSweep);
    durableConcurrency = saturating(durableSweep);
    log(`saturating concurrency: Twofold ${concurrency}, bare ${bareConcurrency}, durable bare ${durableConcurrency}`);
  }
  if (sweep.length) report.signin_sweep = sweep.map(brief);

  if (args['only-signin']) {
    const signin = record(await measure(driver, pid, phase('sign-in', 'signin', concurrency, durations.signin), 'sign-in'));
    await driver.exit();
    await bareDriver.exit();
    await durableDriver.exit();
    await stopChild(bare.child);
    await stopChild(durable.child);
    const code = await stopChild(provider.child);
    log(
      `provider stopped (exit ${code}); profile in ${args['cpu-prof'] ?? '(none)'}; ${signin.measured} sign-ins measured of ${signin.completed + countSignins.completed + durations.warm} in the profile`,
    );
    if (args.json) fs.writeFileSync(args.json, `${JSON.stringify({ signin: strip(signin), statements: report.statements }, null, 2)}\n`);
    return errors.length ? 1 : 0;
  }

  // Measured rounds: Twofold, bare, durable bare, argon2id, Twofold, bare, durable bare, argon2id…
  const signinRounds: Measured[] = [];
  const bareRounds: Measured[] = [];
  const durableRounds: Measured[] = [];
  for (let r = 1; r <= durations.rounds; r++) {
    const tag = durations.rounds > 1 ? ` (round ${r}/${durations.rounds})` : '';
    signinRounds.push(record(await measure(driver, pid, phase(`sign-in${tag}`, 'signin', concurrency, durations.signin / durations.rounds), `sign-in${tag}`)));
    bareRounds.push(
      record(
        await measure(
          bareDriver,
          barePid,
          phase(`bare sign-in${tag}`, 'signin', bareConcurrency, durations.bareSignin / durations.rounds),
          `bare sign-in${tag}`,
        ),
      ),
    );
    durableRounds.push(
      record(
        await measure(
          durableDriver,
          durablePid,
          phase(`durable bare sign-in${tag}`, 'signin', durableConcurrency, durations.bareSignin / durations.rounds),
          `durable bare sign-in${tag}`,
        ),
      ),
    );
    argon2Runs.push(await argon2Ceiling(config, hashC, durations.argon2 / durations.rounds));
  }
  const signin = merge(signinRounds, 'sign-in');
  const bareSignin = merge(bareRounds, 'bare sign-in');
  const argon2 = mergeArgon2(argon2Runs);
  report.signin = signin;
  const combined = 1 / (1 / bareSignin.per_s + 1 / argon2.per_s);
  const roundRatios = signinRounds.map((t, i) => round(t.per_s / (1 / (1 / bareRounds[i]!.per_s + 1 / argon2Runs[i]!.per_s)), 3));
  // The durable ceiling: the same formula, with the durable bare flow instead of the in-memory one.
  const durableSignin = merge(durableRounds, 'durable bare sign-in');
  const durableCombined = 1 / (1 / durableSignin.per_s + 1 / argon2.per_s);
  const durableRoundRatios = signinRounds.map((t, i) => round(t.per_s / (1 / (1 / durableRounds[i]!.per_s + 1 / argon2Runs[i]!.per_s)), 3));

  // 4. The second-factor step alone, below saturation.
  const totpC = Math.max(1, Math.min(2, Math.floor(concurrency / 2)));
  const totp = record(await measure(driver, pid, phase('totp step', 'signin', totpC, durations.totp), 'TOTP step'));
  report.totp_step = {
    concurrency: totpC,
    duration_s: durations.totp,
    database,
    cores,
    load_avg: totp.load_avg,
    ...totp.steps.totp,
    sign_in_p99_ms: totp.latency.p99_ms,
  };

  // 5. Refresh grants with rotation, Twofold and bare in alternation.
  let refreshC = refreshConcurrency ?? 8;
  let bareRefreshC = refreshConcurrency ?? 8;
  let durableRefreshC = refreshConcurrency ?? 8;
  const refreshSweep: Measured[] = [];
  const bareRefreshSweep: Measured[] = [];
  const durableRefreshSweep: Measured[] = [];
  if (!quick && !refreshConcurrency) {
    for (const c of [4, 8, 16]) {
      refreshSweep.push(record(await measure(driver, pid, phase(`refresh sweep c=${c}`, 'refresh', c, durations.refreshSweep), `refresh sweep c=${c}`)));
      bareRefreshSweep.push(
        record(await measure(bareDriver, barePid, phase(`bare refresh sweep c=${c}`, 'refresh', c, durations.refreshSweep), `bare refresh sweep c=${c}`)),
      );
      durableRefreshSweep.push(
        record(
          await measure(
            durableDriver,
            durablePid,
            phase(`durable bare refresh sweep c=${c}`, 'refresh', c, durations.refreshSweep),
            `durable bare refresh sweep c=${c}`,
          ),
        ),
      );
    }
    refreshC = saturating(refreshSweep);
    bareRefreshC = saturating(bareRefreshSweep);
    durableRefreshC = saturating(durableRefreshSweep);
    report.refresh_sweep = refreshSweep.map(brief);
  }
  const refreshRounds: Measured[] = [];
  const bareRefreshRounds: Measured[] = [];
  const durableRefreshRounds: Measured[] = [];
  for (let r = 1; r <= durations.rounds; r++) {
    const tag = durations.rounds > 1 ? ` (round ${r}/${durations.rounds})` : '';
    refreshRounds.push(record(await measure(driver, pid, phase(`refresh${tag}`, 'refresh', refreshC, durations.refresh / durations.rounds), `refresh${tag}`)));
    bareRefreshRounds.push(
      record(
        await measure(
          bareDriver,
          barePid,
          phase(`bare refresh${tag}`, 'refresh', bareRefreshC, durations.bareRefresh / durations.rounds),
          `bare refresh${tag}`,
        ),
      ),
    );
    durableRefreshRounds.push(
      record(
        await measure(
          durableDriver,
          durablePid,
          phase(`durable bare refresh${tag}`, 'refresh', durableRefreshC, durations.bareRefresh / durations.rounds),
          `durable bare refresh${tag}`,
        ),
      ),
    );
  }
  const refresh = merge(refreshRounds, 'refresh');
  const bareRefresh = merge(bareRefreshRounds, 'bare refresh');
  const durableRefresh = merge(durableRefreshRounds, 'durable bare refresh');
  report.refresh = refresh;
  await bareDriver.exit();
  await durableDriver.exit();
  await stopChild(bare.child);
  const durableExit = await stopChild(durable.child);
  if (durableExit !== 0) errors.push(`the durable bare provider exited with ${durableExit} on SIGTERM`);

  // 6. Overload: twice the concurrency at which the provider stops taking more password checks
  //    (HASH_CONCURRENCY running + HASH_QUEUE_LIMIT waiting), or twice the saturating one if higher.
  const admission = config.HASH_CONCURRENCY * (workers > 1 ? workers : 1) + config.HASH_QUEUE_LIMIT * (workers > 1 ? workers : 1);
  const overloadC = intArg(args['overload-concurrency'], 'overload-concurrency') ?? Math.max(2 * concurrency, 2 * admission);
  let readyzFailures = 0;
  let readyzChecks = 0;
  let readyzMaxMs = 0;
  let probing = true;
  const probe = (async () => {
    while (probing) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${provider.issuer}/readyz`, { signal: AbortSignal.timeout(10_000) });
        if (res.status !== 200) readyzFailures += 1;
      } catch {
        readyzFailures += 1;
      }
      readyzChecks += 1;
      readyzMaxMs = Math.max(readyzMaxMs, performance.now() - t0);
      await sleep(250);
    }
  })();
  const overload = await measure(driver, pid, phase('overload', 'signin', overloadC, durations.overload, { allowOverload: true }), `overload c=${overloadC}`);
  probing = false;
  await probe;
  const afterOverload = await fetch(`${provider.issuer}/readyz`)
    .then((r) => r.status)
    .catch(() => 0);
  record(overload);
  report.overload = {
    concurrency: overloadC,
    admission_limit: admission,
    duration_s: durations.overload,
    database,
    cores,
    load_avg: overload.load_avg,
    accepted_completed: overload.accepted_completed,
    per_s: overload.per_s,
    shed_503: overload.shed,
    shed_with_retry_after: overload.shed_with_retry_after,
    errors: overload.errors,
    error_samples: overload.error_samples,
    p50_ms: overload.latency.p50_ms,
    p99_ms: overload.latency.p99_ms,
    readyz_checks: readyzChecks,
    readyz_failures: readyzFailures,
    readyz_max_ms: Math.round(readyzMaxMs),
    ready_after: afterOverload === 200,
    rss_max_mb: overload.rss_max_mb,
  };
  if (readyzFailures) errors.push(`overload: /readyz failed ${readyzFailures} time(s)`);
  if (afterOverload !== 200) errors.push(`overload: /readyz answered ${afterOverload} afterwards`);
  if (overload.shed !== overload.shed_with_retry_after) errors.push(`overload: ${overload.shed - overload.shed_with_retry_after} 503(s) without Retry-After`);

  await driver.exit();
  const providerExit = await stopChild(provider.child);
  if (providerExit !== 0) errors.push(`the provider exited with ${providerExit} on SIGTERM`);

  // 7. Time to /readyz: more starts, on the now-warm database (full run).
  const readyRuns = [provider.readyMs];
  if (!quick && !args['cpu-prof']) {
    for (let i = 0; i < 3; i++) {
      const again = await startProvider(env, logFile);
      readyRuns.push(again.readyMs);
      await stopChild(again.child);
    }
  }
  const sortedReady = [...readyRuns].sort((a, b) => a - b);
  report.ready_ms = sortedReady[Math.floor(sortedReady.length / 2)];
  report.ready_ms_runs = readyRuns;
  report.memory = {
    rss_idle_mb: round(idle.rssBytes / 1048576),
    rss_load_mb: Math.max(
      ...signinRounds.map((s) => s.rss_max_mb ?? 0),
      ...refreshRounds.map((s) => s.rss_max_mb ?? 0),
      totp.rss_max_mb ?? 0,
      ...sweep.map((s) => s.rss_max_mb ?? 0),
    ),
    rss_overload_mb: overload.rss_max_mb,
    processes: idle.pids,
  };

  report.ceilings = {
    argon2,
    bare_signin: strip(bareSignin),
    bare_refresh: strip(bareRefresh),
    combined_signin_per_s: round(combined),
    durable_bare_signin: strip(durableSignin),
    durable_bare_refresh: strip(durableRefresh),
    durable_store: database,
    ...(bareSweep.length ? { bare_signin_sweep: bareSweep.map(brief) } : {}),
    ...(bareRefreshSweep.length ? { bare_refresh_sweep: bareRefreshSweep.map(brief) } : {}),
    ...(durableSweep.length ? { durable_bare_signin_sweep: durableSweep.map(brief) } : {}),
    ...(durableRefreshSweep.length ? { durable_bare_refresh_sweep: durableRefreshSweep.map(brief) } : {}),
  };
  report.signin = strip(signin);
  report.refresh = strip(refresh);
  report.signin_vs_ceiling = round(signin.per_s / combined, 3);
  report.refresh_vs_bare = round(refresh.per_s / bareRefresh.per_s, 3);
  report.durable_signin_ceiling = round(durableCombined);
  report.signin_vs_durable_ceiling = round(signin.per_s / durableCombined, 3);
  report.durable_bare_refresh = durableRefresh.per_s;
  report.refresh_vs_durable_bare = round(refresh.per_s / durableRefresh.per_s, 3);
  report.rounds = {
    count: durations.rounds,
    signin_vs_ceiling: roundRatios,
    refresh_vs_bare: refreshRounds.map((t, i) => round(t.per_s / bareRefreshRounds[i]!.per_s, 3)),
    signin_vs_durable_ceiling: durableRoundRatios,
    refresh_vs_durable_bare: refreshRounds.map((t, i) => round(t.per_s / durableRefreshRounds[i]!.per_s, 3)),
    load_avg: signinRounds.map((t) => t.load_avg[0]),
  };
  const memory = report.memory as { rss_idle_mb: number; rss_load_mb: number; rss_overload_mb?: number };
  const totpP99 = (report.totp_step as { p99_ms?: number }).p99_ms ?? 0;
  report.targets = TARGETS;
  report.meets = {
    signin_vs_ceiling: (report.signin_vs_ceiling as number) >= TARGETS.signin_vs_ceiling,
    refresh_vs_bare: (report.refresh_vs_bare as number) >= TARGETS.refresh_vs_bare,
    signin_vs_durable_ceiling: (report.signin_vs_durable_ceiling as number) >= TARGETS.signin_vs_durable_ceiling,
    refresh_vs_durable_bare: (report.refresh_vs_durable_bare as number) >= TARGETS.refresh_vs_durable_bare,
    totp_p99_ms: totpP99 <= TARGETS.totp_p99_ms,
    rss_idle_mb: memory.rss_idle_mb <= TARGETS.rss_idle_mb,
    rss_load_mb: Math.max(memory.rss_load_mb, memory.rss_overload_mb ?? 0) <= TARGETS.rss_load_mb,
    ...(database === 'pglite' ? { ready_ms_pglite: (report.ready_ms as number) <= TARGETS.ready_ms_pglite } : {}),
  };
  report.errors_total = errors.length ? errors.reduce((n, e) => n + (Number(/: (\d+) error/.exec(e)?.[1]) || 1), 0) : 0;
  report.error_details = errors;
  report.run = {
    command,
    database,
    database_url: redactedUrl ?? null,
    cores,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    quick,
    workers,
    hash_concurrency: config.HASH_CONCURRENCY,
    hash_queue_limit: config.HASH_QUEUE_LIMIT,
    argon2: { memory_kib: config.ARGON2_MEMORY_KIB, iterations: config.ARGON2_ITERATIONS, parallelism: config.ARGON2_PARALLELISM },
    accounts: accountCount,
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    load_avg_start: loadStart,
    load_avg_end: loadAvg(),
    provider_log: args.keep ? logFile : null,
  };

  const ordered = Object.fromEntries(
    [
      'run',
      'signin_vs_ceiling',
      'refresh_vs_bare',
      'durable_signin_ceiling',
      'signin_vs_durable_ceiling',
      'durable_bare_refresh',
      'refresh_vs_durable_bare',
      'rounds',
      'signin',
      'signin_sweep',
      'ceilings',
      'refresh',
      'refresh_sweep',
      'totp_step',
      'memory',
      'ready_ms',
      'ready_ms_runs',
      'statements',
      'overload',
      'targets',
      'meets',
      'errors_total',
      'error_details',
    ]
      .filter((k) => k in report)
      .map((k) => [k, report[k]]),
  );
  process.stdout.write(table(ordered));
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(ordered, null, 2)}\n`);
  if (errors.length) for (const e of errors) log(`ERROR ${e}`);
  return errors.length ? 1 : 0;
}

// --- the table ---------------------------------------------------------------------------------------

function table(r: Record<string, any>): string {
  const run = r.run;
  const s = r.signin;
  const c = r.ceilings;
  const d = r.statements.durable_bare;
  const ok = (k: string) => (r.meets?.[k] === undefined ? '' : r.meets[k] ? 'yes' : 'NO');
  const rows: string[][] = [
    ['figure', 'Twofold', 'ceiling', 'ratio', 'target', 'met', 'C', 'window'],
    [
      'sign-in, pwd+TOTP (/s)',
      `${s.per_s}`,
      `${c.combined_signin_per_s}`,
      `${r.signin_vs_ceiling}`,
      `≥ ${TARGETS.signin_vs_ceiling}`,
      ok('signin_vs_ceiling'),
      `${s.concurrency}`,
      `${s.window_s} s`,
    ],
    [
      '  latency p50/p95/p99 (ms)',
      `${s.latency.p50_ms}/${s.latency.p95_ms}/${s.latency.p99_ms}`,
      `${c.bare_signin.latency.p50_ms}/${c.bare_signin.latency.p95_ms}/${c.bare_signin.latency.p99_ms} bare`,
      '',
      '',
      '',
      '',
      '',
    ],
    [
      '  server CPU s per sign-in',
      `${s.cpu_s_per_op ?? '-'}${s.db_cpu_s_per_op !== undefined ? ` (+${s.db_cpu_s_per_op} PG)` : ''}`,
      `${c.bare_signin.cpu_s_per_op ?? '-'} bare`,
      '',
      '',
      '',
      '',
      '',
    ],
    ['  bare provider sign-in (/s)', '', `${c.bare_signin.per_s}`, '', '', '', `${c.bare_signin.concurrency}`, `${c.bare_signin.window_s} s`],
    ['  argon2id verify (/s)', '', `${c.argon2.per_s}`, '', '', '', `${c.argon2.concurrency}`, `${c.argon2.duration_s} s`],
    [
      'sign-in vs durable ceiling (/s)',
      `${s.per_s}`,
      `${r.durable_signin_ceiling}`,
      `${r.signin_vs_durable_ceiling}`,
      `≥ ${TARGETS.signin_vs_durable_ceiling}`,
      ok('signin_vs_durable_ceiling'),
      '',
      '',
    ],
    [
      `  durable bare sign-in (/s, ${c.durable_store})`,
      '',
      `${c.durable_bare_signin.per_s}`,
      '',
      '',
      '',
      `${c.durable_bare_signin.concurrency}`,
      `${c.durable_bare_signin.window_s} s`,
    ],
    [
      '  server CPU s per durable bare sign-in',
      '',
      `${c.durable_bare_signin.cpu_s_per_op ?? '-'}${c.durable_bare_signin.db_cpu_s_per_op !== undefined ? ` (+${c.durable_bare_signin.db_cpu_s_per_op} PG)` : ''}`,
      '',
      '',
      '',
      '',
      '',
    ],
    [
      'refresh, rotating (/s)',
      `${r.refresh.per_s}`,
      `${c.bare_refresh.per_s}`,
      `${r.refresh_vs_bare}`,
      `≥ ${TARGETS.refresh_vs_bare}`,
      ok('refresh_vs_bare'),
      `${r.refresh.concurrency}`,
      `${r.refresh.window_s} s`,
    ],
    [
      '  latency p50/p99 (ms)',
      `${r.refresh.latency.p50_ms}/${r.refresh.latency.p99_ms}`,
      `${c.bare_refresh.latency.p50_ms}/${c.bare_refresh.latency.p99_ms} bare`,
      '',
      '',
      '',
      '',
      '',
    ],
    [
      'refresh vs durable bare (/s)',
      `${r.refresh.per_s}`,
      `${r.durable_bare_refresh}`,
      `${r.refresh_vs_durable_bare}`,
      `≥ ${TARGETS.refresh_vs_durable_bare}`,
      ok('refresh_vs_durable_bare'),
      `${c.durable_bare_refresh.concurrency}`,
      `${c.durable_bare_refresh.window_s} s`,
    ],
    [
      'TOTP step p50/p99 (ms)',
      `${r.totp_step.p50_ms}/${r.totp_step.p99_ms}`,
      '',
      '',
      `p99 ≤ ${TARGETS.totp_p99_ms}`,
      ok('totp_p99_ms'),
      `${r.totp_step.concurrency}`,
      `${r.totp_step.duration_s} s`,
    ],
    ['RSS idle (MB)', `${r.memory.rss_idle_mb}`, '', '', `≤ ${TARGETS.rss_idle_mb}`, ok('rss_idle_mb'), '', ''],
    ['RSS under load / overload (MB)', `${r.memory.rss_load_mb} / ${r.memory.rss_overload_mb}`, '', '', `≤ ${TARGETS.rss_load_mb}`, ok('rss_load_mb'), '', ''],
    ['start to /readyz (ms)', `${r.ready_ms}`, '', '', run.database === 'pglite' ? `≤ ${TARGETS.ready_ms_pglite}` : '', ok('ready_ms_pglite'), '', ''],
    [
      'statements per sign-in (r/w)',
      `${r.statements.per_signin} (${r.statements.reads_per_signin}/${r.statements.writes_per_signin})`,
      `${d.per_signin} (${d.reads_per_signin}/${d.writes_per_signin}) durable bare`,
      '',
      '',
      '',
      '1',
      `${r.statements.sample_signins} ops`,
    ],
    [
      'statements per refresh (r/w)',
      `${r.statements.per_refresh} (${r.statements.reads_per_refresh}/${r.statements.writes_per_refresh})`,
      `${d.per_refresh} (${d.reads_per_refresh}/${d.writes_per_refresh}) durable bare`,
      '',
      '',
      '',
      '1',
      `${r.statements.sample_refreshes} ops`,
    ],
    [
      'overload: done / 503+RA / errors',
      `${r.overload.accepted_completed} / ${r.overload.shed_with_retry_after} / ${r.overload.errors}`,
      '',
      '',
      '0 errors',
      r.overload.errors === 0 && r.overload.readyz_failures === 0 ? 'yes' : 'NO',
      `${r.overload.concurrency}`,
      `${r.overload.duration_s} s`,
    ],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const head = `\nTwofold benchmark: ${run.command}\n${run.database}${run.database_url ? ` ${run.database_url}` : ''}, ${run.cores} cores (${run.cpu_model}), node ${run.node}, workers ${run.workers}, argon2id m=${run.argon2.memory_kib} t=${run.argon2.iterations} p=${run.argon2.parallelism}, hash concurrency ${run.hash_concurrency}\nload average ${run.load_avg_start.join(' ')} at start, ${run.load_avg_end.join(' ')} at end; ${run.started_at}\n\n`;
  return `${head}${rows.map(line).join('\n')}\n\nerrors: ${r.errors_total}\n`;
}

/** The durable bare provider drops its table when it stops; after a failed run, the table is dropped here. */
let bareTable: string | undefined;
async function dropBareTable(): Promise<void> {
  if (!bareTable || !databaseUrl || freshDb) return;
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await client.connect();
    await client.query(`drop table if exists ${bareTable}`);
  } catch (err) {
    log(`could not drop ${bareTable}: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function dropFreshDb(): Promise<void> {
  await dropBareTable();
  if (!freshDb || args.keep) return;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await adminQuery(`drop database if exists ${freshDb} with (force)`).catch((err) => log(`could not drop ${freshDb}: ${(err as Error).message}`));
}

main().then(
  async (code) => {
    clearInterval(rssTimer);
    await dropFreshDb();
    process.exit(code);
  },
  async (err) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (tmpDir) log(`provider log: ${path.join(tmpDir, 'provider.log')}`);
    args.keep = true;
    await dropFreshDb();
    process.exit(1);
  },
);
