/**
 * The factor engine: everything done once around every factor. It builds each
 * factor's narrow services, throttles every guess, records audit events,
 * stores credentials and turns verifications into evidence. Factors never see
 * the database, the request or the provider.
 *
 * A step's challenge is begun once: its view is kept in the interaction's
 * state and shown again until it ends, is answered, or the person asks for
 * another (an action, "Start again"). A reload sends no second push.
 */
import crypto from 'node:crypto';
import type { Account } from '../db/schema.ts';
import type { Kysely } from 'kysely';
import type { Config } from '../config.ts';
import type { Database } from '../db/schema.ts';
import type { Sealer } from '../security/sealer.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import type { Messaging } from '../messaging/index.ts';
import type { Clock } from '../clock.ts';
import type { Catalogue } from '../i18n/catalogue.ts';
import { FactorRegistry, type RegisteredFactor } from '../../factors/registry.ts';
import type {
  AmrValue,
  CallbackContext,
  CallbackResult,
  Credential,
  Evidence,
  FactorAccount,
  FactorContext,
  FactorKind,
  FactorRequest,
  FactorServices,
  Failure,
  FirstFactorContext,
  MessageRef,
  Pending,
  StepView,
  VerifyResult,
} from '../../factors/types.ts';
import { CredentialStore } from './credential-store.ts';
import { OutOfBandService } from './out-of-band.ts';
import { AnswerService } from './answers.ts';
import { factorHttp, fetchTransport, type HttpTransport } from './factor-http.ts';
import { InteractionState } from './step-state.ts';
import { constantTimeEqual } from '../security/keyed-hash.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { MFA_PER_ADDRESS, refundAttempt, takeAttempt, takeFirstFactorAttempt, WAITING_CHALLENGES, type ThrottleVerdict } from './throttle.ts';
import { consume } from '../security/rate-limit.ts';
import { findAccountById } from '../accounts/accounts.ts';
import { globalPolicy } from '../policy/store.ts';
import type { FactorFacts } from '../policy/decide.ts';
import { epochSeconds } from '../clock.ts';
import { knownDevice, type KnownBrowser } from '../security/device-cookie.ts';
import { noticeMethodChange } from '../messaging/security-notices.ts';

export type VerifyOutcome = { ok: true; evidence: Evidence; notice?: MessageRef } | (Failure & { retryAfterSeconds?: number }) | Pending;
export type EnrollOutcome = { ok: true; credentialId: string; evidence?: Evidence; reveal?: Record<string, unknown> } | Failure;
export type FirstFactorOutcome = { ok: true; account: Account; evidence: Evidence; notice?: MessageRef } | (Failure & { retryAfterSeconds?: number });

/** What a proof showed, checked against what its factor declared: a factor claiming more is a bug, not a user's failure. */
function narrowed<T extends string>(factorId: string, what: string, declared: readonly T[], shown: readonly T[] | undefined): T[] {
  if (!shown) return [...declared];
  const extra = shown.filter((v) => !declared.includes(v));
  if (extra.length || !shown.length)
    throw new Error(`factor ${factorId} reported ${what} ${JSON.stringify(shown)} outside its declared ${JSON.stringify(declared)}`);
  return [...new Set(shown)];
}

export type ActOutcome = { ok: true } | (Failure & { retryAfterSeconds?: number });

/**
 * The challenge a step began, kept in the interaction's state: shown again until it ends. `over`: a
 * waiting challenge that ended (expired, denied, not begun for the throttle), shown with its failure
 * and a way to start again, never begun again by itself (that would ask the person's phone again).
 */
interface Begun {
  view: StepView;
  /** Epoch milliseconds, by the services' clock. */
  expiresAt?: number;
  over?: Failure & { retryAfterSeconds?: number };
}

/** A step's challenge as the page shows it. */
export interface ChallengeStep {
  view: StepView;
  /** The factor waits for an answer from outside the page (the page polls). */
  waits: boolean;
  /** When the challenge ends, epoch milliseconds. */
  expiresAt?: number;
  /** See Begun.over. */
  over?: Failure & { retryAfterSeconds?: number };
}

export type CallbackOutcome = CallbackResult;

const begunKey = (factorId: string) => `begun:${factorId}`;

/** A waiting challenge that ended unanswered. */
const EXPIRED_WAIT: Failure = { ok: false, reason: 'expired', message: { key: 'wait.expired' } };

/** Before a first factor identifies the account there is no one to send a code to. */
const NO_ACCOUNT_CODES: FactorServices['outOfBand'] = {
  channels: [],
  send: () => Promise.reject(new Error('no account is identified yet: codes cannot be sent')),
  check: () => Promise.reject(new Error('no account is identified yet: codes cannot be checked')),
  status: () => Promise.resolve(undefined),
};

const NO_ACCOUNT_ANSWERS: FactorServices['answers'] = {
  open: () => Promise.reject(new Error('no account is identified yet: no question can be put to a device')),
  take: () => Promise.reject(new Error('no account is identified yet: there is no answer to take')),
};

export function factorAccount(account: Account): FactorAccount {
  return { id: account.id, username: account.username, email: account.email, displayName: account.display_name };
}

/** What the engine uses of the services (it is one of them: src/services.ts). */
export interface EngineDeps {
  config: Config;
  db: Kysely<Database>;
  sealer: Sealer;
  codeHasher: KeyedHasher;
  messaging: Messaging;
  clock: Clock;
  catalogue: Catalogue;
  /** What factors' HTTP calls go through: fetch unless a test gives its own. */
  httpTransport?: HttpTransport;
}

export class FactorEngine {
  readonly store: CredentialStore;
  readonly outOfBand: OutOfBandService;
  readonly answers: AnswerService;
  readonly #transport: HttpTransport;

  constructor(
    readonly services: EngineDeps,
    readonly registry: FactorRegistry,
  ) {
    this.store = new CredentialStore(services.db, services.sealer, services.codeHasher);
    // Send limits from the global policy's `throttle`, read at each send (memoized within a request).
    this.outOfBand = new OutOfBandService(
      services.db,
      services.codeHasher,
      services.messaging,
      async () => (await globalPolicy(services.db, services.config.MFA)).policy.throttle,
    );
    this.answers = new AnswerService(services.db, services.codeHasher, this.store, services.clock);
    this.#transport = services.httpTransport ?? fetchTransport;
  }

  facts(id: string): FactorFacts | undefined {
    const r = this.registry.get(id);
    return r && { id, kinds: r.factor.kinds, phishingResistant: r.factor.phishingResistant, recoveryOnly: r.factor.recoveryOnly };
  }

  /** The registered factors the account has at least one credential of. */
  async enrolled(accountId: string): Promise<Array<RegisteredFactor & { credentials: Credential[] }>> {
    const credentials = await this.store.list(accountId);
    return this.registry
      .all()
      .map((r) => ({ ...r, credentials: credentials.filter((c) => c.factorId === r.factor.id) }))
      .filter((r) => r.credentials.length > 0);
  }

  /** The factor ids whose credentials a factor accepts: its own and those it shares with (when registered). */
  credentialFactors(factorId: string): string[] {
    const r = this.#require(factorId);
    return [factorId, ...(r.factor.sharesCredentialsWith ?? []).filter((id) => this.registry.get(id))];
  }

  /** `language`: the person's, which a code's message is written in. */
  #context<S>(
    registered: RegisteredFactor<S>,
    account: FactorAccount,
    state: InteractionState,
    audit?: AuditContext,
    used?: Set<string>,
    language?: string,
  ): FactorContext<S> {
    const base = this.#firstFactorContext(registered, state, used, { ...audit, accountId: account.id });
    const id = registered.factor.id;
    // Codes and questions belong to this factor and account; the client address feeds the send throttles.
    return {
      account,
      ...base,
      services: { ...base.services, outOfBand: this.outOfBand.for(id, account.id, audit, language), answers: this.answers.for(id, account.id) },
    };
  }

  /** `used` collects the credentials whose last use a service already recorded (a counter advanced, a code consumed). */
  #firstFactorContext<S>(registered: RegisteredFactor<S>, state: InteractionState, used?: Set<string>, audit?: AuditContext): FirstFactorContext<S> {
    const { store } = this;
    const { config } = this.services;
    const issuer = config.ISSUER;
    const issuerName = config.brand.name;
    const { rpId, origins, attestation, aaguids, attestationRoots } = config.webauthn;
    const services: FactorServices = {
      advanceCounter: async (id, value) => {
        const advanced = await store.advanceCounter(id, value);
        if (advanced) used?.add(id);
        return advanced;
      },
      consumeOneTimeCode: async (id, code) => {
        const consumed = await store.consumeOneTimeCode(id, code);
        if (consumed) used?.add(id);
        return consumed;
      },
      remainingOneTimeCodes: (id) => store.remainingOneTimeCodes(id),
      constantTimeEqual,
      randomBytes: (n) => crypto.randomBytes(n),
      clock: this.services.clock,
      state: state.forFactor(registered.factor.id),
      issuer,
      issuerName,
      relyingParty: { id: rpId, name: issuerName, origins, attestation, aaguids, attestationRoots },
      outOfBand: NO_ACCOUNT_CODES,
      answers: NO_ACCOUNT_ANSWERS,
      http: factorHttp(this.services.db, this.#transport, registered.factor.id, audit),
    };
    return { settings: registered.settings, services };
  }

  #require(factorId: string): RegisteredFactor {
    const r = this.registry.get(factorId);
    if (!r) throw new Error(`unknown factor ${factorId}`);
    return r;
  }

  /**
   * The step's challenge: begun once (the factor's beginChallenge), then shown again from the
   * interaction's state until it ends, is answered, or the person starts again. A waiting factor's
   * challenge reaches a person (a push), so beginning one is throttled per account and factor, and
   * one that ended is not begun again until they ask.
   */
  async challenge(
    factorId: string,
    account: Account,
    state: InteractionState,
    audit: AuditContext = {},
    where: { returnUrl?: string } = {},
  ): Promise<ChallengeStep> {
    const r = this.#require(factorId);
    const waits = r.factor.waits === true;
    const now = this.services.clock.now().getTime();
    const begun = await state.get<Begun>(begunKey(factorId));
    if (begun) {
      if (begun.over) return { view: begun.view, waits, expiresAt: begun.expiresAt, over: begun.over };
      if (begun.expiresAt === undefined || begun.expiresAt > now) return { view: begun.view, waits, expiresAt: begun.expiresAt };
      if (waits) return { view: begun.view, waits, expiresAt: begun.expiresAt, over: EXPIRED_WAIT };
    }
    const { db } = this.services;
    if (waits) {
      const verdict = await consume(db, WAITING_CHALLENGES, `${account.id}:${factorId}`);
      if (!verdict.allowed) {
        await recordAudit(db, 'factor.locked', { ...audit, accountId: account.id }, { factor: factorId, reason: 'challenges' });
        return { view: { partial: '', data: {} }, waits, over: { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds } };
      }
    }
    const credentials = await this.store.list(account.id, this.credentialFactors(factorId));
    const ctx = this.#context(r, factorAccount(account), state, audit);
    if (r.factor.routes?.return && where.returnUrl) ctx.services.returnUrl = where.returnUrl;
    const { expiresAt, ...view } = await r.factor.beginChallenge(ctx, credentials);
    if (expiresAt !== undefined && !(expiresAt instanceof Date && Number.isFinite(expiresAt.getTime())))
      throw new Error(`factor ${factorId}: its challenge view's expiresAt is not a Date`);
    if (waits && !expiresAt) throw new Error(`factor ${factorId} waits, so its challenge view says when it ends (expiresAt)`);
    const record: Begun = { view, ...(expiresAt ? { expiresAt: expiresAt.getTime() } : {}) };
    await state.set(begunKey(factorId), record, this.services.config.INTERACTION_TTL);
    return { view, waits, expiresAt: record.expiresAt };
  }

  /** "Start again": the challenge shown next is a new one. */
  async restartChallenge(factorId: string, state: InteractionState): Promise<void> {
    this.#require(factorId);
    await state.take(begunKey(factorId));
  }

  /**
   * After a definitive answer: a success or a failure ends the challenge. A waiting factor's failed
   * challenge stays, marked over, so the page says what happened and offers to start again; any
   * other is begun afresh on the next page (a WebAuthn challenge is single-use anyway).
   */
  async #settle(r: RegisteredFactor, state: InteractionState, outcome: VerifyOutcome): Promise<void> {
    if (!outcome.ok && outcome.reason === 'pending') return;
    const key = begunKey(r.factor.id);
    if (outcome.ok || !r.factor.waits) {
      await state.take(key);
      return;
    }
    const begun = await state.get<Begun>(key);
    if (begun) await state.set(key, { ...begun, over: outcome }, this.services.config.INTERACTION_TTL);
  }

  #pendingAllowed(r: RegisteredFactor): void {
    if (!r.factor.waits) throw new Error(`factor ${r.factor.id} answered pending but does not wait (waits: true)`);
  }

  /**
   * A second factor's proof. `browser`: the known-browser cookie's record, if
   * the request carried a valid one; a browser known to this account is
   * throttled on its own counters (src/mfa/throttle.ts).
   */
  async verify(
    factorId: string,
    account: Account,
    state: InteractionState,
    input: Record<string, string>,
    audit: AuditContext,
    browser?: KnownBrowser,
  ): Promise<VerifyOutcome> {
    const r = this.#require(factorId);
    const credentials = await this.store.list(account.id, this.credentialFactors(factorId));
    if (!credentials.length) return { ok: false, reason: 'not_enrolled' };
    const { db } = this.services;
    const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
    // Count first, check second: parallel guesses cannot outrun the limit. Each factor is counted on its own.
    return this.#verifyWith(r, account, credentials, state, input, audit, this.#guess(account, factorId, audit, browser, limits));
  }

  /** Throttle (`take` counts the guess), verify, audit, evidence: the same for a second factor and for a first factor that identified its account. */
  async #verifyWith(
    r: RegisteredFactor,
    account: Account,
    credentials: Credential[],
    state: InteractionState,
    input: Record<string, string>,
    audit: AuditContext,
    take: () => Promise<ThrottleVerdict>,
  ): Promise<VerifyOutcome> {
    const factorId = r.factor.id;
    const { db } = this.services;
    const verdict = await take();
    if (!verdict.allowed) {
      await recordAudit(db, 'factor.locked', { ...audit, accountId: account.id }, { factor: factorId });
      return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
    }
    const used = new Set<string>();
    const result = await r.factor.verify(this.#context(r, factorAccount(account), state, audit, used), credentials, input);
    if (!result.ok && result.reason === 'pending') {
      // A guess answered `pending` keeps its count, as a wrong one does: pending buys no free guesses.
      this.#pendingAllowed(r);
      return { ok: false, reason: 'pending' };
    }
    const outcome = await this.#conclude(r, account, credentials, result, audit, used, verdict);
    await this.#settle(r, state, outcome);
    return outcome;
  }

  /** A definitive result: on success the guess is given back and the evidence made; a failure is audited (its count stays). */
  async #conclude(
    r: RegisteredFactor,
    account: Account,
    credentials: Credential[],
    result: Exclude<VerifyResult, Pending>,
    audit: AuditContext,
    used: Set<string>,
    verdict?: ThrottleVerdict,
  ): Promise<VerifyOutcome> {
    const factorId = r.factor.id;
    const { db } = this.services;
    const who = { ...audit, accountId: account.id };
    if (!result.ok) {
      await recordAudit(db, 'factor.failed', who, {
        factor: factorId,
        reason: result.reason,
        ...(result.credentialId ? { credential: result.credentialId } : {}),
      });
      // A proof that went backwards (a signature counter regressed) may be a cloned authenticator: say so on its own.
      if (result.reason === 'suspected_clone')
        await recordAudit(db, 'factor.suspected_clone', who, { factor: factorId, ...(result.credentialId ? { credential: result.credentialId } : {}) });
      const { credentialId: _, ...failure } = result;
      return failure;
    }
    if (!credentials.some((c) => c.id === result.credentialId)) throw new Error(`factor ${factorId} verified a credential it was not given`);
    const kinds = narrowed<FactorKind>(factorId, 'kinds', r.factor.kinds, result.kinds);
    const amr = narrowed<AmrValue>(factorId, 'amr', r.factor.amr, result.amr);
    if (verdict) await refundAttempt(db, verdict);
    await Promise.all([
      recordAudit(db, 'factor.used', who, { factor: factorId, credential: result.credentialId }),
      // Written only when they change: the account was read in this request, and the counter or code already stamped last_used_at.
      account.last_factor_id === factorId ? undefined : db.updateTable('accounts').set({ last_factor_id: factorId }).where('id', '=', account.id).execute(),
      used.has(result.credentialId) ? undefined : this.store.touch(result.credentialId),
      result.dataUpdate ? this.store.updateData(result.credentialId, result.dataUpdate) : undefined,
    ]);
    return {
      ok: true,
      notice: result.notice,
      evidence: {
        factor: factorId,
        credentialId: result.credentialId,
        kinds,
        amr,
        phishingResistant: r.factor.phishingResistant,
        at: epochSeconds(this.services.clock),
      },
    };
  }

  #guess(
    account: Account,
    factorId: string,
    audit: AuditContext,
    browser: KnownBrowser | undefined,
    limits: Awaited<ReturnType<typeof globalPolicy>>['policy']['throttle'],
  ): () => Promise<ThrottleVerdict> {
    return () =>
      takeAttempt(this.services.db, { accountId: account.id, factorId, ip: audit.ip ?? 'unknown', knownDevice: knownDevice(browser, account) }, limits);
  }

  /**
   * A waiting factor's check, without input (the page's poll, "Check again"): it carries no guess, so
   * an answer still pending costs nothing, however often it is asked; a definitive answer is counted
   * then, a success given back as for any proof, a failure (a denied approval) kept. Past the
   * challenge's end, pending is `expired`.
   */
  async check(
    factorId: string,
    account: Account,
    state: InteractionState,
    audit: AuditContext,
    browser?: KnownBrowser,
  ): Promise<VerifyOutcome & { expiresAt?: number }> {
    const r = this.#require(factorId);
    if (!r.factor.waits) return { ok: false, reason: 'invalid_input' };
    const open = await this.#challengeOn(factorId, account, state);
    if (!open.ok) return open;
    const { credentials, begun } = open;
    const used = new Set<string>();
    const result = await r.factor.verify(this.#context(r, factorAccount(account), state, audit, used), credentials, {});
    return this.#checked(r, account, credentials, state, begun, result, audit, browser, used);
  }

  /** The account's credentials and the challenge this interaction began, when it is still on; else why not. */
  async #challengeOn(
    factorId: string,
    account: Account,
    state: InteractionState,
  ): Promise<{ ok: true; credentials: Credential[]; begun: Begun } | (Failure & { retryAfterSeconds?: number })> {
    const credentials = await this.store.list(account.id, this.credentialFactors(factorId));
    if (!credentials.length) return { ok: false, reason: 'not_enrolled' };
    const begun = await state.get<Begun>(begunKey(factorId));
    if (!begun) return { ok: false, reason: 'expired' };
    return begun.over ?? { ok: true, credentials, begun };
  }

  /** What a check without a guess answered, counted only when definitive (see check). */
  async #checked(
    r: RegisteredFactor,
    account: Account,
    credentials: Credential[],
    state: InteractionState,
    begun: Begun,
    result: VerifyResult,
    audit: AuditContext,
    browser: KnownBrowser | undefined,
    used: Set<string>,
    verdict?: ThrottleVerdict,
  ): Promise<VerifyOutcome & { expiresAt?: number }> {
    const { db } = this.services;
    if (!result.ok && result.reason === 'pending') {
      this.#pendingAllowed(r);
      if (begun.expiresAt !== undefined && begun.expiresAt <= this.services.clock.now().getTime()) {
        const expired = EXPIRED_WAIT;
        await recordAudit(db, 'factor.failed', { ...audit, accountId: account.id }, { factor: r.factor.id, reason: 'expired' });
        await this.#settle(r, state, expired);
        return expired;
      }
      return { ok: false, reason: 'pending', expiresAt: begun.expiresAt };
    }
    // Only an answer that could be a guess's is counted: a success (given back) or a wrong one; an expiry or a spent answer is no guess.
    if (!result.ok && result.reason !== 'wrong' && result.reason !== 'suspected_clone') {
      const outcome = await this.#conclude(r, account, credentials, result, audit, used);
      await this.#settle(r, state, outcome);
      return outcome;
    }
    let counted = verdict;
    if (!counted) {
      const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
      counted = await this.#guess(account, r.factor.id, audit, browser, limits)();
      if (!counted.allowed && result.ok) {
        await recordAudit(db, 'factor.locked', { ...audit, accountId: account.id }, { factor: r.factor.id });
        const locked = { ok: false as const, reason: 'locked' as const, retryAfterSeconds: counted.retryAfterSeconds };
        await this.#settle(r, state, locked);
        return locked;
      }
    }
    const outcome = await this.#conclude(r, account, credentials, result, audit, used, counted.allowed ? counted : undefined);
    await this.#settle(r, state, outcome);
    return outcome;
  }

  /**
   * The browser coming back to the challenge at the factor's return route (a redirect from another
   * site, with what it brought in the query). What the browser brings is the person's input, so it is
   * counted as a guess before the factor sees it, and given back only when the check that follows
   * succeeds: a return answered `pending` keeps its count.
   */
  async handleReturn(
    factorId: string,
    account: Account,
    state: InteractionState,
    request: FactorRequest,
    audit: AuditContext,
    browser?: KnownBrowser,
  ): Promise<VerifyOutcome & { expiresAt?: number }> {
    const r = this.#require(factorId);
    if (!r.factor.handleReturn) return { ok: false, reason: 'invalid_input' };
    // Only to a challenge this interaction began and that is still on.
    const open = await this.#challengeOn(factorId, account, state);
    if (!open.ok) return open;
    const { credentials, begun } = open;
    const { db } = this.services;
    const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
    const verdict = await this.#guess(account, factorId, audit, browser, limits)();
    if (!verdict.allowed) {
      await recordAudit(db, 'factor.locked', { ...audit, accountId: account.id }, { factor: factorId });
      return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
    }
    const used = new Set<string>();
    const ctx = this.#context(r, factorAccount(account), state, audit, used);
    const returned = await r.factor.handleReturn(ctx, credentials, request);
    if (!returned.ok) {
      const outcome = await this.#conclude(r, account, credentials, returned, audit, used);
      await this.#settle(r, state, outcome);
      return outcome;
    }
    const result = await r.factor.verify(ctx, credentials, {});
    if (!result.ok && result.reason === 'pending') {
      if (!r.factor.waits) throw new Error(`factor ${factorId} answered pending after its return but does not wait (waits: true)`);
      return { ok: false, reason: 'pending', expiresAt: begun.expiresAt };
    }
    return this.#checked(r, account, credentials, state, begun, result, audit, browser, used, verdict);
  }

  /**
   * A server's call to the factor's callback route, outside any interaction. The factor
   * authenticates it (its signature, then acceptOnce against replays) and records what it says;
   * the engine audits it, under the account of the question it answered when there was one.
   */
  async handleCallback(factorId: string, request: FactorRequest, audit: AuditContext): Promise<CallbackOutcome | undefined> {
    const r = this.registry.get(factorId);
    if (!r?.factor.handleCallback || !r.factor.routes?.callback) return undefined;
    const { db, clock, config } = this.services;
    let accountId: string | undefined;
    const who = { ...audit, actor: 'system' };
    const ctx: CallbackContext<unknown> = {
      settings: r.settings,
      services: {
        constantTimeEqual,
        randomBytes: (n) => crypto.randomBytes(n),
        clock,
        issuer: config.ISSUER,
        answers: this.answers.desk(factorId, (id) => (accountId = id)),
        acceptOnce: (nonce, sentAt, windowSeconds) => this.answers.acceptOnce(factorId, nonce, sentAt, windowSeconds),
        http: factorHttp(db, this.#transport, factorId, who),
      },
    };
    const result = await r.factor.handleCallback(ctx, request);
    if (!result || typeof result.ok !== 'boolean') throw new Error(`factor ${factorId}: handleCallback returned no result`);
    await recordAudit(
      db,
      result.ok ? 'factor.callback' : 'factor.callback_refused',
      { ...who, accountId },
      { factor: factorId, ...(result.ok ? {} : { reason: result.reason }) },
    );
    return result;
  }

  /** What the login page shows for a first factor (a passkey button and autofill), before anyone is identified. */
  async beginFirstFactor(factorId: string, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    if (!r.factor.firstFactor || !r.factor.beginFirstFactor) throw new Error(`factor ${factorId} is not a first factor`);
    return r.factor.beginFirstFactor(this.#firstFactorContext(r, state));
  }

  /**
   * A first factor signs a user in on its own: the input names a credential
   * (identify), the credential names its account, and the factor then verifies
   * as for a second factor and audited per account. Nothing is proved yet, so
   * the guess is throttled per credential and per client address (or, from a
   * browser known to the account, on that browser's counter), never on the
   * account's counters: forged assertions naming someone's credential cannot
   * lock their account. An unknown credential or a disabled account is
   * 'wrong', throttled per client address.
   */
  async verifyFirstFactor(
    factorId: string,
    state: InteractionState,
    input: Record<string, string>,
    audit: AuditContext,
    browser?: KnownBrowser,
  ): Promise<FirstFactorOutcome> {
    const r = this.#require(factorId);
    if (!r.factor.firstFactor || !r.factor.identify) throw new Error(`factor ${factorId} is not a first factor`);
    const { db } = this.services;
    const claimed = r.factor.identify(input);
    if (!claimed.ok) return claimed;
    const found = await this.store.findByLookupKey(claimed.lookupKey, this.credentialFactors(factorId));
    const account = found && (await findAccountById(db, found.accountId));
    if (!found || !account || account.disabled) {
      const ip = audit.ip ?? 'unknown';
      const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
      const verdict = await consume(db, { ...MFA_PER_ADDRESS, ...limits?.perAddress }, ip);
      await recordAudit(
        db,
        'factor.failed',
        { ...audit, ...(account ? { accountId: account.id } : {}) },
        { factor: factorId, reason: found ? 'account_disabled' : 'unknown_credential' },
      );
      if (!verdict.allowed) return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
      return { ok: false, reason: 'wrong' };
    }
    const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
    const take = () =>
      takeFirstFactorAttempt(
        db,
        { credentialId: found.credential.id, accountId: account.id, ip: audit.ip ?? 'unknown', knownDevice: knownDevice(browser, account) },
        limits,
      );
    const outcome = await this.#verifyWith(r, account, [found.credential], state, input, audit, take);
    if (!outcome.ok && outcome.reason === 'pending') throw new Error(`factor ${factorId}: a first factor does not answer pending`);
    return outcome.ok ? { ok: true, account, evidence: outcome.evidence, notice: outcome.notice } : outcome;
  }

  async beginEnrollment(factorId: string, account: Account, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    const existing = await this.store.list(account.id, this.credentialFactors(factorId));
    return r.factor.beginEnrollment(this.#context(r, factorAccount(account), state), existing);
  }

  /** `language`: the person's, in which a credential named by default (no name typed) gets its name, and the notice email is written. */
  async finishEnrollment(
    factorId: string,
    account: Account,
    state: InteractionState,
    input: Record<string, string>,
    audit: AuditContext,
    browser?: KnownBrowser,
    language?: string,
  ): Promise<EnrollOutcome> {
    const r = this.#require(factorId);
    const { db } = this.services;
    // Enrolment codes are guesses too, counted as the factor's.
    const guess = { accountId: account.id, factorId, ip: audit.ip ?? 'unknown', knownDevice: knownDevice(browser, account) };
    const verdict = await takeAttempt(db, guess, (await globalPolicy(db, this.services.config.MFA)).policy.throttle);
    if (!verdict.allowed) return { ok: false, reason: 'locked' };
    const result = await r.factor.finishEnrollment(this.#context(r, factorAccount(account), state), input);
    if (!result.ok) return result;
    const kinds = narrowed<FactorKind>(factorId, 'kinds', r.factor.kinds, result.kinds);
    const amr = narrowed<AmrValue>(factorId, 'amr', r.factor.amr, result.amr);
    await refundAttempt(db, verdict);
    const taken: Failure = { ok: false, reason: 'already_used', message: { key: 'failure.alreadyRegistered' } };
    const { lookupKey } = result.credential;
    if (lookupKey && (await this.store.lookupKeyTaken(lookupKey))) return taken;
    const { catalogue } = this.services;
    const named = result.credential.label;
    const label = typeof named === 'string' ? named : catalogue.text(language ?? catalogue.defaultLanguage, named.key, named.params);
    // A recovery factor enrolled again replaces its set: the person hears of new codes, not of a new method.
    const replacing = r.factor.recoveryOnly && (await this.store.list(account.id, [factorId])).length > 0;
    let credentialId: string;
    try {
      credentialId = await this.store.insert(account.id, factorId, { ...result.credential, label }, { replaceFactor: !r.factor.multiple });
    } catch (err) {
      // Two registrations of one credential racing: the unique index lets one in.
      if (lookupKey && (err as { code?: string }).code === '23505') return taken;
      throw err;
    }
    await recordAudit(db, 'factor.enrolled', { ...audit, accountId: account.id }, { factor: factorId, credential: credentialId, label });
    await noticeMethodChange(this.services, account.id, replacing ? { type: 'backup_codes_regenerated' } : { type: 'method_added', factorId, label }, {
      language,
      audit,
    });
    if (result.provedEmail && account.email && !account.email_verified && result.provedEmail.toLowerCase() === account.email.toLowerCase()) {
      // Only while the account still has that address (an admin may have changed it meanwhile).
      const marked = await db
        .updateTable('accounts')
        .set({ email_verified: true })
        .where('id', '=', account.id)
        .where('email', '=', account.email)
        .executeTakeFirst();
      if (marked.numUpdatedRows > 0n) await recordAudit(db, 'account.email_verified', { ...audit, accountId: account.id }, { factor: factorId });
    }
    const evidence: Evidence | undefined = result.proves
      ? { factor: factorId, credentialId, kinds, amr, phishingResistant: r.factor.phishingResistant, at: epochSeconds(this.services.clock) }
      : undefined;
    if (result.proves) await db.updateTable('accounts').set({ last_factor_id: factorId }).where('id', '=', account.id).execute();
    return { ok: true, credentialId, evidence, reveal: result.reveal };
  }

  /** `language`: the person's, in which the notice email is written (the default language otherwise). */
  async remove(accountId: string, credentialId: string, audit: AuditContext, language?: string): Promise<boolean> {
    const label = (await this.store.list(accountId)).find((c) => c.id === credentialId)?.label;
    const factorId = await this.store.remove(accountId, credentialId);
    if (!factorId) return false;
    await recordAudit(this.services.db, 'factor.removed', { ...audit, accountId }, { credential: credentialId, factor: factorId });
    await noticeMethodChange(this.services, accountId, { type: 'method_removed', factorId, label }, { language, audit });
    return true;
  }

  async resetAll(accountId: string, audit: AuditContext, language?: string): Promise<number> {
    const n = await this.store.removeAll(accountId);
    await recordAudit(this.services.db, 'factor.reset', { ...audit, accountId }, { removed: n });
    if (n > 0) await noticeMethodChange(this.services, accountId, { type: 'methods_reset' }, { language, audit });
    return n;
  }

  /**
   * A step's non-final submission (send a code, send another, call instead):
   * the factor's `act`, with the request's client address for the send
   * throttles and the person's language for the message a code goes out in.
   * Sending is throttled by the out-of-band service, not as a guess.
   */
  async act(
    factorId: string,
    step: 'enroll' | 'challenge',
    account: Account,
    state: InteractionState,
    action: string,
    input: Record<string, string>,
    audit: AuditContext,
    language?: string,
  ): Promise<ActOutcome> {
    const r = this.#require(factorId);
    if (!r.factor.act || !/^[a-z][a-z-]{0,31}$/.test(action)) return { ok: false, reason: 'invalid_input' };
    const credentials = await this.store.list(account.id, factorId);
    if (step === 'challenge' && !credentials.length) return { ok: false, reason: 'not_enrolled' };
    const outcome = await r.factor.act(
      this.#context(r, factorAccount(account), state, { ...audit, accountId: account.id }, undefined, language),
      { step, action, credentials },
      input,
    );
    // What the action did (a code sent, a new request) is shown by a challenge begun afresh.
    if (outcome.ok && step === 'challenge') await state.take(begunKey(factorId));
    return outcome;
  }
}
