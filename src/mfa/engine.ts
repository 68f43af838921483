/**
 * The factor engine: everything done once around every factor. It builds each
 * factor's narrow services, throttles every guess, records audit events,
 * stores credentials and turns verifications into evidence. Factors never see
 * the database, the request or the provider.
 */
import crypto from 'node:crypto';
import type { Account } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { FactorRegistry, type RegisteredFactor } from '../../factors/registry.ts';
import type { Credential, Evidence, FactorAccount, FactorContext, FactorServices, Failure, StepView } from '../../factors/types.ts';
import { CredentialStore } from './credential-store.ts';
import { OutOfBandService } from './out-of-band.ts';
import { InteractionState } from './step-state.ts';
import { constantTimeEqual } from '../security/keyed-hash.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { refundAttempt, takeAttempt } from './throttle.ts';
import { globalPolicy } from '../policy/store.ts';
import type { FactorFacts } from '../policy/decide.ts';

export type VerifyOutcome = { ok: true; evidence: Evidence; notice?: string } | (Failure & { retryAfterSeconds?: number });
export type EnrollOutcome = { ok: true; credentialId: string; evidence?: Evidence; reveal?: Record<string, unknown> } | Failure;

export type ActOutcome = { ok: true } | (Failure & { retryAfterSeconds?: number });

export function factorAccount(account: Account): FactorAccount {
  return { id: account.id, username: account.username, email: account.email, displayName: account.display_name };
}

export class FactorEngine {
  readonly store: CredentialStore;
  readonly outOfBand: OutOfBandService;

  constructor(
    readonly services: Services,
    readonly registry: FactorRegistry,
  ) {
    this.store = new CredentialStore(services.db, services.sealer, services.codeHasher);
    this.outOfBand = new OutOfBandService(services.db, services.codeHasher, services.messaging);
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

  #context<S>(registered: RegisteredFactor<S>, account: FactorAccount, state: InteractionState, audit?: AuditContext): FactorContext<S> {
    const { store } = this;
    const issuer = this.services.config.ISSUER;
    const services: FactorServices = {
      advanceCounter: (id, value) => store.advanceCounter(id, value),
      consumeOneTimeCode: (id, code) => store.consumeOneTimeCode(id, code),
      remainingOneTimeCodes: (id) => store.remainingOneTimeCodes(id),
      constantTimeEqual,
      randomBytes: (n) => crypto.randomBytes(n),
      clock: { now: () => new Date() },
      state: state.forFactor(registered.factor.id),
      issuer,
      issuerName: this.services.config.ISSUER_NAME ?? new URL(issuer).host,
      // Codes belong to this factor and account; the client address feeds the send throttles.
      outOfBand: this.outOfBand.for(registered.factor.id, account.id, audit),
    };
    return { account, settings: registered.settings, services };
  }

  #require(factorId: string): RegisteredFactor {
    const r = this.registry.get(factorId);
    if (!r) throw new Error(`unknown factor ${factorId}`);
    return r;
  }

  async beginChallenge(factorId: string, account: Account, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    const credentials = await this.store.list(account.id, factorId);
    return r.factor.beginChallenge(this.#context(r, factorAccount(account), state), credentials);
  }

  async verify(factorId: string, account: Account, state: InteractionState, input: Record<string, string>, audit: AuditContext): Promise<VerifyOutcome> {
    const r = this.#require(factorId);
    const credentials = await this.store.list(account.id, factorId);
    if (!credentials.length) return { ok: false, reason: 'not_enrolled' };
    const { db } = this.services;
    const ip = audit.ip ?? 'unknown';
    const who = { ...audit, accountId: account.id };
    // Count first, check second: parallel guesses cannot outrun the limit.
    const verdict = await takeAttempt(db, account.id, ip, (await globalPolicy(db, this.services.config.MFA)).policy.throttle);
    if (!verdict.allowed) {
      await recordAudit(db, 'factor.locked', who, { factor: factorId });
      return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
    }
    const result = await r.factor.verify(this.#context(r, factorAccount(account), state), credentials, input);
    if (!result.ok) {
      await recordAudit(db, 'factor.failed', who, { factor: factorId, reason: result.reason });
      return result;
    }
    await refundAttempt(db, account.id, ip);
    await Promise.all([
      recordAudit(db, 'factor.used', who, { factor: factorId, credential: result.credentialId }),
      db.updateTable('accounts').set({ last_factor_id: factorId }).where('id', '=', account.id).execute(),
      this.store.touch(result.credentialId),
    ]);
    return {
      ok: true,
      notice: result.notice,
      evidence: {
        factor: factorId,
        credentialId: result.credentialId,
        kinds: r.factor.kinds,
        amr: result.amr ?? r.factor.amr,
        phishingResistant: r.factor.phishingResistant,
        at: Math.floor(Date.now() / 1000),
      },
    };
  }

  async beginEnrollment(factorId: string, account: Account, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    return r.factor.beginEnrollment(this.#context(r, factorAccount(account), state));
  }

  async finishEnrollment(factorId: string, account: Account, state: InteractionState, input: Record<string, string>, audit: AuditContext): Promise<EnrollOutcome> {
    const r = this.#require(factorId);
    const { db } = this.services;
    const ip = audit.ip ?? 'unknown';
    // Enrolment codes are guesses too.
    const verdict = await takeAttempt(db, account.id, ip, (await globalPolicy(db, this.services.config.MFA)).policy.throttle);
    if (!verdict.allowed) return { ok: false, reason: 'locked' };
    const result = await r.factor.finishEnrollment(this.#context(r, factorAccount(account), state), input);
    if (!result.ok) return result;
    await refundAttempt(db, account.id, ip);
    const credentialId = await this.store.insert(account.id, factorId, result.credential, { replaceFactor: !r.factor.multiple });
    await recordAudit(db, 'factor.enrolled', { ...audit, accountId: account.id }, { factor: factorId, credential: credentialId, label: result.credential.label });
    const evidence: Evidence | undefined = result.proves
      ? { factor: factorId, credentialId, kinds: r.factor.kinds, amr: result.amr ?? r.factor.amr, phishingResistant: r.factor.phishingResistant, at: Math.floor(Date.now() / 1000) }
      : undefined;
    if (result.proves) await db.updateTable('accounts').set({ last_factor_id: factorId }).where('id', '=', account.id).execute();
    return { ok: true, credentialId, evidence, reveal: result.reveal };
  }

  async remove(accountId: string, credentialId: string, audit: AuditContext): Promise<boolean> {
    const removed = await this.store.remove(accountId, credentialId);
    if (removed) await recordAudit(this.services.db, 'factor.removed', { ...audit, accountId }, { credential: credentialId });
    return removed;
  }

  async resetAll(accountId: string, audit: AuditContext): Promise<number> {
    const n = await this.store.removeAll(accountId);
    await recordAudit(this.services.db, 'factor.reset', { ...audit, accountId }, { removed: n });
    return n;
  }

  /**
   * A step's non-final submission (send a code, send another, call instead):
   * the factor's `act`, with the request's client address for the send
   * throttles. Sending is throttled by the out-of-band service, not as a guess.
   */
  async act(factorId: string, step: 'enroll' | 'challenge', account: Account, state: InteractionState, action: string, input: Record<string, string>, audit: AuditContext): Promise<ActOutcome> {
    const r = this.#require(factorId);
    if (!r.factor.act || !/^[a-z][a-z-]{0,31}$/.test(action)) return { ok: false, reason: 'invalid_input' };
    const credentials = await this.store.list(account.id, factorId);
    if (step === 'challenge' && !credentials.length) return { ok: false, reason: 'not_enrolled' };
    return r.factor.act(this.#context(r, factorAccount(account), state, { ...audit, accountId: account.id }), { step, action, credentials }, input);
  }
}
