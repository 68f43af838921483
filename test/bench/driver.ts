/**
 * The load driver: a separate process that plays many browsers and one relying
 * app. A sign-in is what a person and an app do: the app builds an
 * authorization request with PKCE (openid-client), the browser follows the
 * provider's redirects with its own cookie jar, fills the password form and the
 * TOTP form, and the app redeems the code at /token and validates the ID token
 * (openid-client, signature included). Refresh grants use openid-client too.
 *
 * Traffic goes only to the target issuer (127.0.0.1); the redirect back to the
 * app is caught, never followed. Every loop is bounded in count and in time.
 *
 * Started by run.ts with fork(); see protocol.ts for the messages.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import * as oidc from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import type { BenchAccount, FromDriver, Percentiles, PhaseResult, PhaseSpec, Target, ToDriver } from './protocol.ts';
import { percentiles } from './percentiles.ts';

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_HOPS = 15;
const TOTP_PERIOD_MS = 30_000;

function send(msg: FromDriver): void {
  process.send?.(msg);
}

export class Overloaded extends Error {
  constructor(readonly retryAfter: string | undefined) {
    super(`503 at admission (Retry-After: ${retryAfter ?? 'missing'})`);
  }
}

// --- HTTP: node:http with keep-alive, one cookie jar per sign-in -------------------------------

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

// Idle sockets are dropped after 4 s, before the provider's 5 s keep-alive timeout closes them:
// otherwise a request can go out on a socket the server is closing at that instant.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 512, timeout: 4_000 });

function request(url: URL, method: string, headers: Record<string, string>, body?: string, retried = false): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { ...headers, 'content-length': String(Buffer.byteLength(body)) } : headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`timeout after ${REQUEST_TIMEOUT_MS} ms: ${method} ${url.pathname}`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The keep-alive race Node's documentation describes: a reused socket the server closed
      // before reading the request. Nothing reached the provider, so one retry on a fresh socket
      // is safe; a second failure is a real error.
      if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) {
        request(url, method, headers, body, true).then(resolve, reject);
      } else reject(err);
    });
    req.end(body);
  });
}

class Browser {
  readonly cookies = new Map<string, string>();
  constructor(
    readonly origin: string,
    readonly forwardedFor: string,
  ) {}

  async go(url: URL, method = 'GET', form?: Record<string, string>): Promise<Response> {
    if (url.origin !== this.origin) throw new Error(`refusing to leave the provider: ${url.origin}`);
    const headers: Record<string, string> = { accept: 'text/html', 'user-agent': 'twofold-bench/1', 'x-forwarded-for': this.forwardedFor };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = this.origin;
    }
    const res = await request(url, method, headers, body);
    const setCookie = res.headers['set-cookie'] ?? [];
    for (const line of setCookie) {
      const pair = line.split(';')[0]!;
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line) || /max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }
}

interface Form {
  action: string;
  fields: Map<string, string>;
}

const decode = (s: string) =>
  s
    .replace(/&amp;/g, '&')
    .replace(/&#x3D;/g, '=')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'");

/** The first POST form of a page, with its named inputs (hidden ones keep their values). */
function firstForm(html: string): Form | undefined {
  const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) return undefined;
  const action = /\baction="([^"]*)"/i.exec(m[1]!)?.[1];
  if (!action) return undefined;
  const fields = new Map<string, string>();
  for (const input of m[2]!.matchAll(/<input\b([^>]*)>/gi)) {
    const attrs = input[1]!;
    const name = /\bname="([^"]*)"/i.exec(attrs)?.[1];
    if (!name) continue;
    const type = /\btype="([^"]*)"/i.exec(attrs)?.[1]?.toLowerCase();
    if (type === 'checkbox') continue;
    fields.set(name, decode(/\bvalue="([^"]*)"/i.exec(attrs)?.[1] ?? ''));
  }
  return { action: decode(action), fields };
}

// --- Accounts and TOTP time steps ---------------------------------------------------------------

interface PoolAccount extends BenchAccount {
  totp?: Secret;
  /** The last TOTP time step this driver used for the account. */
  lastStep: number;
}

class AccountPool {
  readonly #accounts: PoolAccount[];
  #next = 0;
  starved = 0;
  constructor(accounts: BenchAccount[]) {
    this.#accounts = accounts.map((a) => ({ ...a, totp: a.secret ? Secret.fromBase32(a.secret) : undefined, lastStep: -1 }));
  }

  /**
   * An account and the TOTP time step to prove: the current one, or the next
   * (inside the provider's ±1 window) when the current was used. A code is
   * accepted once per account and step, so accounts rotate.
   */
  async take(deadline: number): Promise<{ account: PoolAccount; step: number } | undefined> {
    for (;;) {
      const current = Math.floor(Date.now() / TOTP_PERIOD_MS);
      for (let i = 0; i < this.#accounts.length; i++) {
        const account = this.#accounts[this.#next]!;
        this.#next = (this.#next + 1) % this.#accounts.length;
        if (!account.totp) return { account, step: current };
        const step = account.lastStep < current ? current : account.lastStep === current ? current + 1 : undefined;
        if (step !== undefined) {
          account.lastStep = step;
          return { account, step };
        }
      }
      // Every account used this step and the next: wait for the next step (a sign of too few accounts).
      this.starved += 1;
      const wait = TOTP_PERIOD_MS - (Date.now() % TOTP_PERIOD_MS) + 50;
      if (performance.now() + wait > deadline) return undefined;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

// --- Recording ------------------------------------------------------------------------------------

class Recorder {
  readonly ops: Array<{ end: number; ms: number }> = [];
  readonly steps = new Map<string, Array<{ end: number; ms: number }>>();
  errors = 0;
  readonly samples: string[] = [];
  shed = 0;
  shedWithRetryAfter = 0;
  acceptedCompleted = 0;

  step(name: string, t0: number): void {
    const end = performance.now();
    let list = this.steps.get(name);
    if (!list) this.steps.set(name, (list = []));
    list.push({ end, ms: end - t0 });
  }

  error(err: unknown): void {
    this.errors += 1;
    if (this.samples.length < 10) this.samples.push(err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 400) : String(err).slice(0, 400));
  }
}

// --- The flows ----------------------------------------------------------------------------------

interface Session {
  target: Target;
  config: oidc.Configuration;
  pool: AccountPool;
  origin: string;
}

function stepName(url: URL, method: string): string {
  if (method === 'POST')
    return url.pathname.includes('/factor/') ? 'totp' : url.pathname.endsWith('/login') || url.pathname.split('/').length === 3 ? 'password' : 'post';
  if (url.pathname === '/auth') return 'authorize';
  if (url.pathname.startsWith('/auth/')) return 'resume';
  return 'interaction';
}

/** One full sign-in; returns the token response. Throws Overloaded on a 503 at admission. */
async function signIn(s: Session, rec: Recorder, deadline: number): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
  const picked = await s.pool.take(deadline);
  if (!picked) throw new Error('no account with a free TOTP time step before the deadline');
  const { account, step } = picked;
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const authUrl = oidc.buildAuthorizationUrl(s.config, {
    redirect_uri: s.target.redirectUri,
    scope: 'openid profile email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const browser = new Browser(s.origin, account.ip);
  let url = authUrl;
  let method = 'GET';
  let form: Record<string, string> | undefined;
  let callback: URL | undefined;
  let sawTotp = false;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const t0 = performance.now();
    const res = await browser.go(url, method, form);
    const name = stepName(url, method);
    rec.step(name, t0);
    if (res.status === 503) throw new Overloaded(res.headers['retry-after'] as string | undefined);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.location!, url);
      if (next.href.startsWith(s.target.redirectUri)) {
        callback = next;
        break;
      }
      url = next;
      method = 'GET';
      form = undefined;
      continue;
    }
    if (res.status !== 200)
      throw new Error(
        `${method} ${url.pathname} answered ${res.status}: ${res.body
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 200)}`,
      );
    const page = firstForm(res.body);
    if (!page)
      throw new Error(
        `${method} ${url.pathname}: a page without a form: ${res.body
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 200)}`,
      );
    const fields = Object.fromEntries(page.fields);
    if ('password' in fields) {
      if (method === 'POST')
        throw new Error(
          `the password was refused: ${res.body
            .replace(/<[^>]+>/g, ' ')
            .replace(/\s+/g, ' ')
            .slice(0, 200)}`,
        );
      fields.login = account.username;
      fields.password = s.target.password;
    } else if ('code' in fields) {
      if (!account.totp) throw new Error('asked for a code, but the account has no TOTP secret');
      if (sawTotp)
        throw new Error(
          `the TOTP code was refused: ${res.body
            .replace(/<[^>]+>/g, ' ')
            .replace(/\s+/g, ' ')
            .slice(0, 200)}`,
        );
      sawTotp = true;
      fields.code = TOTP.generate({ secret: account.totp, timestamp: step * TOTP_PERIOD_MS + 1000 });
    } else {
      throw new Error(`${method} ${url.pathname}: an unexpected form (${[...page.fields.keys()].join(', ')})`);
    }
    url = new URL(page.action, url);
    method = 'POST';
    form = fields;
  }
  if (!callback) throw new Error(`no redirect back to the app after ${MAX_HOPS} hops`);
  if (callback.searchParams.get('error'))
    throw new Error(`the app got ${callback.searchParams.get('error')}: ${callback.searchParams.get('error_description')}`);
  if (s.target.mfa && !sawTotp) throw new Error('signed in without being asked for the second factor');
  const t0 = performance.now();
  const tokens = await oidc.authorizationCodeGrant(s.config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  rec.step('token', t0);
  const claims = tokens.claims();
  if (!claims?.sub) throw new Error('no ID token claims');
  if (s.target.mfa && !(Array.isArray(claims.amr) && claims.amr.includes('otp')))
    throw new Error(`ID token amr is ${JSON.stringify(claims.amr)}, expected otp`);
  if (!tokens.refresh_token) throw new Error('no refresh token');
  return tokens;
}

async function runPhase(s: Session, id: number, spec: PhaseSpec): Promise<PhaseResult> {
  const rec = new Recorder();
  const cpu0 = process.cpuUsage();
  // Refresh chains start from real sign-ins (not measured).
  const chains: string[] = [];
  if (spec.operation === 'refresh') {
    const prep = new Recorder();
    const until = performance.now() + 60_000;
    await Promise.all(
      Array.from({ length: spec.concurrency }, async (_, i) => {
        try {
          chains[i] = (await signIn(s, prep, until)).refresh_token!;
        } catch (err) {
          rec.error(err);
        }
      }),
    );
    if (rec.errors) throw new Error(`could not sign in to start refresh chains: ${rec.samples[0]}`);
  }

  if (spec.waitForGo) {
    const go = new Promise<void>((resolve) => goWaiters.set(id, resolve));
    send({ type: 'mark', id, mark: 'start' });
    await go;
  }
  const start = performance.now();
  const deadline = start + spec.durationMs;
  const windowStart = start + spec.warmupMs;
  let started = 0;
  let completed = 0;
  let startSent = spec.waitForGo === true;
  const markStart = () => {
    if (startSent) return;
    startSent = true;
    send({ type: 'mark', id, mark: 'start' });
  };
  const startTimer = setTimeout(markStart, spec.warmupMs);

  async function loop(slot: number): Promise<void> {
    while (performance.now() < deadline && started < spec.maxOps) {
      started += 1;
      const t0 = performance.now();
      try {
        if (spec.operation === 'signin') {
          await signIn(s, rec, deadline);
          rec.acceptedCompleted += 1;
        } else {
          const t = performance.now();
          const tokens = await oidc.refreshTokenGrant(s.config, chains[slot]!);
          rec.step('refresh', t);
          if (!tokens.refresh_token || !tokens.access_token) throw new Error('refresh without a new refresh token');
          if (tokens.refresh_token === chains[slot]) throw new Error('refresh token was not rotated');
          chains[slot] = tokens.refresh_token;
        }
        completed += 1;
        const end = performance.now();
        rec.ops.push({ end, ms: end - t0 });
      } catch (err) {
        if (err instanceof Overloaded && spec.allowOverload) {
          rec.shed += 1;
          const seconds = Number(err.retryAfter);
          if (err.retryAfter !== undefined && Number.isFinite(seconds) && seconds >= 0) rec.shedWithRetryAfter += 1;
          // A well-behaved client waits as told (capped so the phase ends on time).
          await new Promise((r) => setTimeout(r, Math.min(Number.isFinite(seconds) ? seconds : 1, 2) * 1000));
          continue;
        }
        rec.error(err);
        // An error is no reason to spin: pause a little.
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  await Promise.all(Array.from({ length: spec.concurrency }, (_, i) => loop(i)));
  clearTimeout(startTimer);
  markStart();
  const windowEnd = Math.min(performance.now(), deadline);
  send({ type: 'mark', id, mark: 'end' });

  const inWindow = <T extends { end: number }>(xs: T[]) => xs.filter((x) => x.end >= windowStart && x.end <= windowEnd);
  const measured = inWindow(rec.ops);
  const windowS = Math.max(0.001, (windowEnd - windowStart) / 1000);
  const cpu = process.cpuUsage(cpu0);
  const steps: Record<string, Percentiles> = {};
  const rawSteps: Record<string, number[]> = {};
  for (const [name, list] of rec.steps) {
    rawSteps[name] = inWindow(list).map((x) => Math.round(x.ms * 100) / 100);
    steps[name] = percentiles(rawSteps[name]);
  }
  return {
    name: spec.name,
    operation: spec.operation,
    concurrency: spec.concurrency,
    window_s: Math.round(windowS * 100) / 100,
    started,
    completed,
    measured: measured.length,
    per_s: Math.round((measured.length / windowS) * 10) / 10,
    latency: percentiles(measured.map((x) => x.ms)),
    steps,
    errors: rec.errors,
    error_samples: rec.samples,
    shed: rec.shed,
    shed_with_retry_after: rec.shedWithRetryAfter,
    accepted_completed: rec.acceptedCompleted,
    starved: s.pool.starved,
    driver_cpu_s: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
    raw: { ops: measured.map((x) => Math.round(x.ms * 100) / 100), steps: rawSteps },
  };
}

// --- IPC ------------------------------------------------------------------------------------------

let session: Session | undefined;
const goWaiters = new Map<number, () => void>();

process.on('message', (msg: ToDriver) => {
  void (async () => {
    try {
      if (msg.type === 'target') {
        const t = msg.target;
        const config = await oidc.discovery(new URL(t.issuer), t.clientId, { client_secret: t.clientSecret }, oidc.ClientSecretBasic(t.clientSecret), {
          execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
        });
        session = { target: t, config, pool: new AccountPool(t.accounts), origin: new URL(t.issuer).origin };
        send({ type: 'target-ready' });
      } else if (msg.type === 'run') {
        if (!session) throw new Error('no target');
        session.pool.starved = 0;
        const result = await runPhase(session, msg.id, msg.phase);
        send({ type: 'result', id: msg.id, result });
      } else if (msg.type === 'go') {
        goWaiters.get(msg.id)?.();
        goWaiters.delete(msg.id);
      } else if (msg.type === 'exit') {
        agent.destroy();
        process.exit(0);
      }
    } catch (err) {
      send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  })();
});

// The harness going away ends the driver too.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
