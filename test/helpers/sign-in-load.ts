/**
 * Sign-in load for the fault tests: several browsers at once, each doing whole
 * sign-ins through the real HTTP provider (openid-client as the app, with
 * PKCE; the password form; then a TOTP code, a backup code, or a TOTP
 * enrolment followed by saving backup codes; then the code redeemed at
 * /token), one after another until stopped.
 *
 * Every write the provider acknowledged is recorded, so a test can check after
 * a fault that each is still there: an enrolment whose form was answered with
 * the next step, a TOTP time step or a backup code whose form was answered
 * with the next step, tokens /token returned. Every answer is classified: a
 * 503 is what a fault may cause (the sign-in is abandoned and a new one
 * begins, as a person would retry); any other 5xx, a connection the provider
 * refused or dropped, or an unexpected page is a failure the test reports.
 */
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import type { Services } from '../../src/services.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { enrolBackupCodes, enrolTotp } from './factors.ts';
import { relyingParty, type RelyingParty } from './relying-party.ts';
import { UserAgent, formAction, type Hop } from './user-agent.ts';

export const LOAD_REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password for the fault tests';
const TOTP_PERIOD_MS = 30_000;

export interface LoadAccounts {
  clientId: string;
  clientSecret: string;
  /** Accounts with a TOTP authenticator (and backup codes, for the backup-code sign-ins). */
  totp: Array<{ id: string; username: string; secret: string; backupCodes: string[] }>;
  /** Accounts with no second factor yet: MFA=required has them enrol TOTP inside the sign-in. */
  fresh: Array<{ id: string; username: string }>;
  /** What the loads used up, kept across loads: TOTP steps, backup codes, fresh accounts. */
  used: { lastStep: Map<string, number>; backupCodes: Set<string>; fresh: number; busy: Set<string> };
}

/** Seeds accounts and a first-party app with the project's own modules (before or beside the provider process). */
export async function seedLoadAccounts(services: Services, counts: { totp: number; fresh: number; prefix: string }): Promise<LoadAccounts> {
  const client = await createClient(services.db, services.sealer, { name: `${counts.prefix}app`, redirectUris: [LOAD_REDIRECT], firstParty: true });
  const totp: LoadAccounts['totp'] = [];
  const fresh: LoadAccounts['fresh'] = [];
  for (let i = 0; i < counts.totp; i++) {
    const account = await createAccount(services.db, services.hasher, { username: `${counts.prefix}t${i}`, password: PASSWORD });
    const secret = await enrolTotp(services, account.id);
    const backupCodes = Array.from({ length: 10 }, () => crypto.randomBytes(8).toString('hex').toUpperCase());
    await enrolBackupCodes(services, account.id, backupCodes);
    totp.push({ id: account.id, username: account.username, secret, backupCodes });
  }
  for (let i = 0; i < counts.fresh; i++) {
    const account = await createAccount(services.db, services.hasher, { username: `${counts.prefix}f${i}`, password: PASSWORD });
    fresh.push({ id: account.id, username: account.username });
  }
  return {
    clientId: client.clientId,
    clientSecret: client.clientSecret!,
    totp,
    fresh,
    used: { lastStep: new Map(), backupCodes: new Set(), fresh: 0, busy: new Set() },
  };
}

export interface Acknowledged {
  /** Enrolments answered with the next step: (account, factor). */
  enrolments: Array<{ accountId: string; factor: 'totp' | 'backup-codes' }>;
  /** TOTP codes accepted: the account and the time step. */
  totpSteps: Array<{ accountId: string; step: number }>;
  /** Backup codes accepted. */
  backupCodes: Array<{ accountId: string; username: string; code: string }>;
  /** Token responses, with the issuer that answered. */
  tokens: Array<{ issuer: string; accessToken: string; refreshToken?: string }>;
}

export interface LoadReport {
  acknowledged: Acknowledged;
  /** Sign-ins that went all the way to tokens. */
  completed: number;
  /** Completed sign-ins per issuer. */
  completedBy: Record<string, number>;
  /** 503 answers (what a fault may cause), each with when and the path. */
  unavailable: Array<{ at: number; issuer: string; path: string; json: boolean; body: string }>;
  /** Everything else that went wrong: other 5xx, dropped connections, unexpected pages. */
  failures: Array<{ at: number; issuer: string; what: string }>;
}

export interface LoadTarget {
  issuer: string;
}

export interface SignInLoad {
  /** Sign-ins completed so far (to wait for progress). */
  completed(): number;
  /** Completed sign-ins since `at` (ms epoch), on one issuer or all. */
  completedSince(at: number, issuer?: string): number;
  /** What happened so far (the live record). */
  report(): LoadReport;
  /** Stops after the sign-ins in progress end; returns what happened. */
  stop(): Promise<LoadReport>;
}

class Unavailable extends Error {}
class Failure extends Error {}

const text = (body: string) =>
  body
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);

/**
 * The current TOTP step an account has not used yet (or the next one, inside the provider's ±1 window), or
 * undefined. `take` marks it used: only when the code is about to be sent, so a sign-in that fails before (a
 * provider that is down) does not use up steps.
 */
function freeStep(lastStep: Map<string, number>, accountId: string, take: boolean): number | undefined {
  const now = Math.floor(Date.now() / TOTP_PERIOD_MS);
  const last = lastStep.get(accountId) ?? -1;
  const step = last < now ? now : last === now ? now + 1 : undefined;
  if (take && step !== undefined) lastStep.set(accountId, step);
  return step;
}

/**
 * Starts `browsers` parallel sign-in loops spread over the targets (browser i
 * signs in at targets[i % targets.length]). Browser kinds rotate: TOTP,
 * backup code, TOTP, enrolment.
 */
export async function startSignInLoad(targets: LoadTarget[], accounts: LoadAccounts, options: { browsers: number; pauseMs?: number }): Promise<SignInLoad> {
  const rps = new Map<string, RelyingParty>();
  for (const t of targets) rps.set(t.issuer, await relyingParty(t.issuer, accounts.clientId, accounts.clientSecret, LOAD_REDIRECT));
  const report: LoadReport = {
    acknowledged: { enrolments: [], totpSteps: [], backupCodes: [], tokens: [] },
    completed: 0,
    completedBy: {},
    unavailable: [],
    failures: [],
  };
  const completions: Array<{ at: number; issuer: string }> = [];
  const { lastStep, backupCodes: spentBackup, busy } = accounts.used;
  let stopping = false;

  /** One HTTP answer checked: 503 abandons the sign-in, any other 5xx is a failure. */
  const check = (issuer: string, hop: Hop): Hop => {
    if (hop.status === 503) {
      const json = (hop.headers.get('content-type') ?? '').includes('json');
      report.unavailable.push({ at: Date.now(), issuer, path: new URL(hop.url).pathname, json, body: hop.body.slice(0, 2000) });
      throw new Unavailable();
    }
    if (hop.status >= 500) throw new Failure(`${hop.status} at ${new URL(hop.url).pathname}: ${text(hop.body)}`);
    return hop;
  };
  /** A request; a refused or dropped connection is a failure (the provider must never go away). */
  const send = async (issuer: string, run: () => Promise<Hop>): Promise<Hop> => {
    let hop: Hop;
    try {
      hop = await run();
    } catch (err) {
      throw new Failure(`no answer from ${issuer}: ${(err as Error).message} ${((err as Error).cause as Error | undefined)?.message ?? ''}`);
    }
    return check(issuer, hop);
  };
  /** Follows redirects on the provider one hop at a time, checking each answer. */
  const follow = async (issuer: string, agent: UserAgent, hop: Hop): Promise<Hop> => {
    for (let i = 0; i < 10 && hop.location && hop.location.startsWith(issuer); i++) {
      const next = hop.location;
      hop = await send(issuer, () => agent.request(next));
    }
    return hop;
  };
  const expectForm = (hop: Hop, pathEnd: RegExp, what: string): string => {
    const action = /<form[^>]*action="([^"]+)"/.exec(hop.body)?.[1]?.replace(/&amp;/g, '&');
    if (hop.status !== 200 || !action || !pathEnd.test(action))
      throw new Failure(`expected ${what}, got ${hop.status} at ${new URL(hop.url).pathname}: ${text(hop.body)}`);
    return action;
  };

  type Kind = 'totp' | 'backup' | 'enrol';
  async function signIn(issuer: string, kind: Kind): Promise<boolean> {
    let account: { id: string; username: string } | undefined;
    let step: number | undefined;
    let backup: string | undefined;
    let totpAccount: LoadAccounts['totp'][number] | undefined;
    if (kind === 'enrol') {
      account = accounts.fresh[accounts.used.fresh++];
      if (!account) kind = 'totp';
    }
    if (kind === 'backup') {
      totpAccount = accounts.totp.find((a) => a.backupCodes.some((c) => !spentBackup.has(c)));
      backup = totpAccount?.backupCodes.find((c) => !spentBackup.has(c));
      if (!totpAccount || !backup) kind = 'totp';
      else spentBackup.add(backup);
    }
    if (kind === 'totp') {
      for (const a of accounts.totp) {
        // One sign-in per account at a time: two browsers holding steps n and n+1 of one account would race, and
        // the one that lands second is refused (a step is never accepted after a later one).
        if (busy.has(a.id)) continue;
        step = freeStep(lastStep, a.id, false);
        if (step !== undefined) {
          totpAccount = a;
          break;
        }
      }
      if (step === undefined) return false; // every account used its steps: wait for the next period
    }
    account ??= totpAccount!;
    if (kind === 'totp') busy.add(account.id);
    try {
      return await signInAs(issuer, kind, account, totpAccount, step, backup);
    } finally {
      busy.delete(account.id);
    }
  }

  async function signInAs(
    issuer: string,
    kind: Kind,
    account: { id: string; username: string },
    totpAccount: LoadAccounts['totp'][number] | undefined,
    step: number | undefined,
    backup: string | undefined,
  ): Promise<boolean> {
    const rp = rps.get(issuer)!;

    const agent = new UserAgent(issuer);
    const auth = await rp.authorizationUrl();
    const login = await follow(issuer, agent, await send(issuer, () => agent.request(auth.url)));
    const loginAction = expectForm(login, /\/login$/, 'the sign-in form');
    let hop = await follow(issuer, agent, await send(issuer, () => agent.request(loginAction, { form: { login: account.username, password: PASSWORD } })));
    if (kind === 'enrol') {
      const action = expectForm(hop, /\/enroll\/totp$/, 'the TOTP enrolment');
      const key = /<code class="key">([^<]+)<\/code>/.exec(hop.body)?.[1]?.replace(/\s/g, '');
      if (!key) throw new Failure('no TOTP key on the enrolment page');
      const posted = await send(issuer, () => agent.request(action, { form: { code: TOTP.generate({ secret: Secret.fromBase32(key) }), label: 'Phone' } }));
      if (posted.status !== 302 && posted.status !== 303) throw new Failure(`TOTP enrolment answered ${posted.status}: ${text(posted.body)}`);
      report.acknowledged.enrolments.push({ accountId: account.id, factor: 'totp' });
      hop = await follow(issuer, agent, posted);
      const save = expectForm(hop, /\/enroll\/backup-codes$/, 'the backup codes to save');
      const saved = await send(issuer, () => agent.request(save, { form: { saved: 'yes' } }));
      if (saved.status !== 302 && saved.status !== 303) throw new Failure(`saving backup codes answered ${saved.status}: ${text(saved.body)}`);
      report.acknowledged.enrolments.push({ accountId: account.id, factor: 'backup-codes' });
      hop = await follow(issuer, agent, saved);
    } else {
      const challenge = expectForm(hop, /\/factor\/totp$/, 'the TOTP challenge');
      let action = challenge;
      let code: string;
      if (kind === 'backup') {
        const uid = /\/interaction\/([^/]+)\//.exec(challenge)![1]!;
        const page = await follow(issuer, agent, await send(issuer, () => agent.request(`/interaction/${uid}?factor=backup-codes`)));
        action = expectForm(page, /\/factor\/backup-codes$/, 'the backup code form');
        code = backup!;
      } else {
        // The account is this sign-in's alone (busy), so the step free when it was picked, or a later one, is free
        // now; should the clock say otherwise, wait for the next period rather than send a spent step.
        while ((step = freeStep(lastStep, account.id, true)) === undefined)
          await new Promise((r) => setTimeout(r, TOTP_PERIOD_MS - (Date.now() % TOTP_PERIOD_MS) + 50));
        code = TOTP.generate({ secret: Secret.fromBase32(totpAccount!.secret), timestamp: step * TOTP_PERIOD_MS + 1000 });
      }
      const posted = await send(issuer, () => agent.request(action, { form: { code } }));
      if (posted.status !== 302 && posted.status !== 303) throw new Failure(`the ${kind} code was refused (${posted.status}): ${text(posted.body)}`);
      if (kind === 'backup') report.acknowledged.backupCodes.push({ accountId: account.id, username: account.username, code });
      else report.acknowledged.totpSteps.push({ accountId: account.id, step: step! });
      hop = await follow(issuer, agent, posted);
      // A notice between the code and the app ("n backup codes left"): acknowledge it.
      if (hop.status === 200 && /\/continue"/.test(hop.body)) {
        hop = await follow(issuer, agent, await send(issuer, () => agent.request(formAction(hop.body), { form: {} })));
      }
    }
    if (!hop.location?.startsWith(LOAD_REDIRECT))
      throw new Failure(`expected the way back to the app, got ${hop.status} at ${new URL(hop.url).pathname}: ${text(hop.body)}`);
    if (new URL(hop.location).searchParams.get('error')) throw new Failure(`the app got ${hop.location}`);
    let tokens;
    try {
      tokens = await rp.redeem(hop.location, auth);
    } catch (err) {
      // openid-client: an OAuth error body carries its status; any other answer comes as the Response in `cause`.
      const cause = (err as Error).cause as { status?: unknown; text?: unknown } | undefined;
      const response = cause && typeof cause.status === 'number' && typeof cause.text === 'function' ? (cause as Response) : undefined;
      const status = (err as { status?: number }).status ?? response?.status;
      // fetch's TypeError (by name: it may come from another realm), as is or wrapped by openid-client: no connection.
      const isTypeError = (e: unknown): e is TypeError => (e as Error | undefined)?.name === 'TypeError';
      const network = isTypeError(err) ? err : isTypeError((err as Error).cause) ? ((err as Error).cause as TypeError) : undefined;
      if (network && !response) throw new Failure(`no answer from ${issuer}: /token ${network.message} ${(network.cause as Error | undefined)?.message ?? ''}`);
      if (response && status !== 503)
        throw new Failure(`/token answered ${status} ${response.headers.get('content-type')}: ${await response.text().catch(() => '(body already read)')}`);
      if (status === 503) {
        // openid-client leaves a 5xx body unread: read it here, to check what the app was told.
        const body = response
          ? await response.text().catch(() => '')
          : JSON.stringify({ error: (err as { error?: string }).error, error_description: (err as { error_description?: string }).error_description });
        report.unavailable.push({
          at: Date.now(),
          issuer,
          path: '/token',
          json: !response || (response.headers.get('content-type') ?? '').includes('json'),
          body,
        });
        throw new Unavailable();
      }
      throw new Failure(`/token: ${status ?? ''} ${(err as Error).message} ${((err as Error).cause as Error | undefined)?.message ?? ''}`);
    }
    report.acknowledged.tokens.push({ issuer, accessToken: tokens.access_token, refreshToken: tokens.refresh_token });
    report.completed += 1;
    report.completedBy[issuer] = (report.completedBy[issuer] ?? 0) + 1;
    completions.push({ at: Date.now(), issuer });
    return true;
  }

  const kinds: Kind[] = ['totp', 'backup', 'totp', 'enrol'];
  const loops = Array.from({ length: options.browsers }, async (_, i) => {
    const issuer = targets[i % targets.length]!.issuer;
    const kind = kinds[i % kinds.length]!;
    while (!stopping) {
      try {
        const done = await signIn(issuer, kind);
        if (!done) await new Promise((r) => setTimeout(r, 250));
      } catch (err) {
        if (err instanceof Unavailable) {
          // As a person would: wait a moment, then start again.
          await new Promise((r) => setTimeout(r, 100));
        } else {
          report.failures.push({ at: Date.now(), issuer, what: err instanceof Failure ? err.message : `${(err as Error).name}: ${(err as Error).message}` });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  });

  return {
    completed: () => report.completed,
    completedSince: (at, issuer) => completions.filter((c) => c.at >= at && (!issuer || c.issuer === issuer)).length,
    report: () => report,
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return report;
    },
  };
}

/** Waits until `done()` holds (polling), or throws after `ms` with `what`. */
export async function waitFor(what: string, done: () => boolean | Promise<boolean>, ms = 30_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface AcknowledgedCheck {
  /** Acknowledged writes missing afterwards, or stored half (each described). */
  lost: string[];
  /** How many of each kind were checked. */
  checked: { enrolments: number; totpSteps: number; backupCodes: number; tokens: number };
}

/**
 * Checks the load's acknowledged writes in the database: each enrolment's
 * credential exists, and none is stored half (a set of backup codes without
 * its codes); each accepted TOTP step and backup code is spent: offered again
 * through the credential store, as the factors consume them, it is refused,
 * so nothing acknowledged can be accepted a second time. (This spends nothing
 * that was not lost: run it last.)
 */
export async function checkStoredWrites(services: Services, report: LoadReport): Promise<AcknowledgedCheck> {
  const { store } = services.factors;
  const lost: string[] = [];
  const ack = report.acknowledged;
  for (const e of ack.enrolments) {
    const credentials = await store.list(e.accountId, e.factor);
    if (!credentials.length) lost.push(`enrolment of ${e.factor} by ${e.accountId}`);
    if (e.factor === 'backup-codes' && !(await store.summaries(e.accountId)).some((c) => c.factorId === 'backup-codes' && (c.remaining ?? 0) > 0)) {
      lost.push(`backup codes of ${e.accountId} stored without their codes`);
    }
  }
  for (const t of ack.totpSteps) {
    const credential = (await store.list(t.accountId, 'totp'))[0];
    if (!credential || (await store.advanceCounter(credential.id, t.step))) lost.push(`TOTP step ${t.step} of ${t.accountId}`);
  }
  for (const b of ack.backupCodes) {
    const credential = (await store.list(b.accountId, 'backup-codes'))[0];
    if (!credential || (await store.consumeOneTimeCode(credential.id, b.code))) lost.push(`backup code ${b.code} of ${b.username}`);
  }
  return { lost, checked: { enrolments: ack.enrolments.length, totpSteps: ack.totpSteps.length, backupCodes: ack.backupCodes.length, tokens: 0 } };
}

/** Each token the load was given is active at the issuer that issued it (asked by introspection, whatever the storage format). */
export async function checkTokens(report: LoadReport, accounts: LoadAccounts): Promise<AcknowledgedCheck> {
  const lost: string[] = [];
  const rps = new Map<string, RelyingParty>();
  for (const t of report.acknowledged.tokens) {
    let rp = rps.get(t.issuer);
    if (!rp) rps.set(t.issuer, (rp = await relyingParty(t.issuer, accounts.clientId, accounts.clientSecret, LOAD_REDIRECT)));
    for (const [kind, token] of [
      ['access', t.accessToken],
      ['refresh', t.refreshToken],
    ] as const) {
      if (!token) continue;
      const answer = await oidc.tokenIntrospection(rp.config, token);
      if (answer.active !== true) lost.push(`${kind} token issued by ${t.issuer}`);
    }
  }
  return { lost, checked: { enrolments: 0, totpSteps: 0, backupCodes: 0, tokens: report.acknowledged.tokens.length } };
}

/** Both checks, for a database the test can open while the provider runs (PostgreSQL). */
export async function checkAcknowledged(services: Services, report: LoadReport, accounts: LoadAccounts): Promise<AcknowledgedCheck> {
  const tokens = await checkTokens(report, accounts);
  const stored = await checkStoredWrites(services, report);
  return { lost: [...tokens.lost, ...stored.lost], checked: { ...stored.checked, tokens: tokens.checked.tokens } };
}
