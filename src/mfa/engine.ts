/**
 * The factor engine: everything done once around every factor. It builds each
 * factor's narrow services, throttles every guess, records audit events,
 * stores credentials and turns verifications into evidence. Factors never see
 * the database, the request or the provider.
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
import type { AmrValue, Credential, Evidence, FactorAccount, FactorContext, FactorKind, FactorServices, Failure, FirstFactorContext, MessageRef, StepView } from '../../factors/types.ts';
import { CredentialStore } from './credential-store.ts';
import { OutOfBandService } from './out-of-band.ts';
import { InteractionState } from './step-state.ts';
import { constantTimeEqual } from '../security/keyed-hash.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { MFA_PER_ADDRESS, refundAttempt, takeAttempt, takeFirstFactorAttempt, type ThrottleVerdict } from './throttle.ts';
import { consume } from '../security/rate-limit.ts';
import { findAccountById } from '../accounts/accounts.ts';
import { globalPolicy } from '../policy/store.ts';
import type { FactorFacts } from '../policy/decide.ts';
import { epochSeconds } from '../clock.ts';
import { knownDevice, type KnownBrowser } from '../security/device-cookie.ts';
import { noticeMethodChange } from '../messaging/security-notices.ts';


export type VerifyOutcome = { ok: true; evidence: Evidence; notice?: MessageRef } | (Failure & { retryAfterSeconds?: number });
export type EnrollOutcome = { ok: true; credentialId: string; evidence?: Evidence; reveal?: Record<string, unknown> } | Failure;
export type FirstFactorOutcome = { ok: true; account: Account; evidence: Evidence; notice?: MessageRef } | (Failure & { retryAfterSeconds?: number });

/** What a proof showed, checked against what its factor declared: a factor claiming more is a bug, not a user's failure. */
function narrowed<T extends string>(factorId: string, what: string, declared: readonly T[], shown: readonly T[] | undefined): T[] {
  if (!shown) return [...declared];
  const extra = shown.filter((v) => !declared.includes(v));
  if (extra.length || !shown.length) throw new Error(`factor ${factorId} reported ${what} ${JSON.stringify(shown)} outside its declared ${JSON.stringify(declared)}`);
  return [...new Set(shown)];
}

export type ActOutcome = { ok: true } | (Failure & { retryAfterSeconds?: number });

/** Before a first factor identifies the account there is no one to send a code to. */
const NO_ACCOUNT_CODES: FactorServices['outOfBand'] = {
  channels: [],
  send: () => Promise.reject(new Error('no account is identified yet: codes cannot be sent')),
  check: () => Promise.reject(new Error('no account is identified yet: codes cannot be checked')),
  status: () => Promise.resolve(undefined),
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
}

export class FactorEngine {
  readonly store: CredentialStore;
  readonly outOfBand: OutOfBandService;

  constructor(
    readonly services: EngineDeps,
    readonly registry: FactorRegistry,
  ) {
    this.store = new CredentialStore(services.db, services.sealer, services.codeHasher);
    // Send limits from the global policy's `throttle`, read at each send (memoized within a request).
    this.outOfBand = new OutOfBandService(services.db, services.codeHasher, services.messaging, async () => (await globalPolicy(services.db, services.config.MFA)).policy.throttle);
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
  #context<S>(registered: RegisteredFactor<S>, account: FactorAccount, state: InteractionState, audit?: AuditContext, used?: Set<string>, language?: string): FactorContext<S> {
    const base = this.#firstFactorContext(registered, state, used);
    // Codes belong to this factor and account; the client address feeds the send throttles.
    return { account, ...base, services: { ...base.services, outOfBand: this.outOfBand.for(registered.factor.id, account.id, audit, language) } };
  }

  /** `used` collects the credentials whose last use a service already recorded (a counter advanced, a code consumed). */
  #firstFactorContext<S>(registered: RegisteredFactor<S>, state: InteractionState, used?: Set<string>): FirstFactorContext<S> {
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
    };
    return { settings: registered.settings, services };
  }

  #require(factorId: string): RegisteredFactor {
    const r = this.registry.get(factorId);
    if (!r) throw new Error(`unknown factor ${factorId}`);
    return r;
  }

  async beginChallenge(factorId: string, account: Account, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    const credentials = await this.store.list(account.id, this.credentialFactors(factorId));
    return r.factor.beginChallenge(this.#context(r, factorAccount(account), state), credentials);
  }

  /**
   * A second factor's proof. `browser`: the known-browser cookie's record, if
   * the request carried a valid one; a browser known to this account is
   * throttled on its own counters (src/mfa/throttle.ts).
   */
  async verify(factorId: string, account: Account, state: InteractionState, input: Record<string, string>, audit: AuditContext, browser?: KnownBrowser): Promise<VerifyOutcome> {
    const r = this.#require(factorId);
    const credentials = await this.store.list(account.id, this.credentialFactors(factorId));
    if (!credentials.length) return { ok: false, reason: 'not_enrolled' };
    const { db } = this.services;
    const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
    // Count first, check second: parallel guesses cannot outrun the limit. Each factor is counted on its own.
    const take = () => takeAttempt(db, { accountId: account.id, factorId, ip: audit.ip ?? 'unknown', knownDevice: knownDevice(browser, account) }, limits);
    return this.#verifyWith(r, account, credentials, state, input, audit, take);
  }

  /** Throttle (`take` counts the guess), verify, audit, evidence: the same for a second factor and for a first factor that identified its account. */
  async #verifyWith(r: RegisteredFactor, account: Account, credentials: Credential[], state: InteractionState, input: Record<string, string>, audit: AuditContext, take: () => Promise<ThrottleVerdict>): Promise<VerifyOutcome> {
    const factorId = r.factor.id;
    const { db } = this.services;
    const who = { ...audit, accountId: account.id };
    const verdict = await take();
    if (!verdict.allowed) {
      await recordAudit(db, 'factor.locked', who, { factor: factorId });
      return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
    }
    const used = new Set<string>();
    const result = await r.factor.verify(this.#context(r, factorAccount(account), state, undefined, used), credentials, input);
    if (!result.ok) {
      await recordAudit(db, 'factor.failed', who, { factor: factorId, reason: result.reason, ...(result.credentialId ? { credential: result.credentialId } : {}) });
      // A proof that went backwards (a signature counter regressed) may be a cloned authenticator: say so on its own.
      if (result.reason === 'suspected_clone') await recordAudit(db, 'factor.suspected_clone', who, { factor: factorId, ...(result.credentialId ? { credential: result.credentialId } : {}) });
      const { credentialId: _, ...failure } = result;
      return failure;
    }
    if (!credentials.some((c) => c.id === result.credentialId)) throw new Error(`factor ${factorId} verified a credential it was not given`);
    const kinds = narrowed<FactorKind>(factorId, 'kinds', r.factor.kinds, result.kinds);
    const amr = narrowed<AmrValue>(factorId, 'amr', r.factor.amr, result.amr);
    await refundAttempt(db, verdict);
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
  async verifyFirstFactor(factorId: string, state: InteractionState, input: Record<string, string>, audit: AuditContext, browser?: KnownBrowser): Promise<FirstFactorOutcome> {
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
      await recordAudit(db, 'factor.failed', { ...audit, ...(account ? { accountId: account.id } : {}) }, { factor: factorId, reason: found ? 'account_disabled' : 'unknown_credential' });
      if (!verdict.allowed) return { ok: false, reason: 'locked', retryAfterSeconds: verdict.retryAfterSeconds };
      return { ok: false, reason: 'wrong' };
    }
    const limits = (await globalPolicy(db, this.services.config.MFA)).policy.throttle;
    const take = () => takeFirstFactorAttempt(db, { credentialId: found.credential.id, accountId: account.id, ip: audit.ip ?? 'unknown', knownDevice: knownDevice(browser, account) }, limits);
    const outcome = await this.#verifyWith(r, account, [found.credential], state, input, audit, take);
    return outcome.ok ? { ok: true, account, evidence: outcome.evidence, notice: outcome.notice } : outcome;
  }

  async beginEnrollment(factorId: string, account: Account, state: InteractionState): Promise<StepView> {
    const r = this.#require(factorId);
    const existing = await this.store.list(account.id, this.credentialFactors(factorId));
    return r.factor.beginEnrollment(this.#context(r, factorAccount(account), state), existing);
  }

  /** `language`: the person's, in which a credential named by default (no name typed) gets its name, and the notice email is written. */
  async finishEnrollment(factorId: string, account: Account, state: InteractionState, input: Record<string, string>, audit: AuditContext, browser?: KnownBrowser, language?: string): Promise<EnrollOutcome> {
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
    await noticeMethodChange(this.services, account.id, replacing ? { type: 'backup_codes_regenerated' } : { type: 'method_added', factorId, label }, { language, audit });
    if (result.provedEmail && account.email && !account.email_verified && result.provedEmail.toLowerCase() === account.email.toLowerCase()) {
      // Only while the account still has that address (an admin may have changed it meanwhile).
      const marked = await db.updateTable('accounts').set({ email_verified: true }).where('id', '=', account.id).where('email', '=', account.email).executeTakeFirst();
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
  async act(factorId: string, step: 'enroll' | 'challenge', account: Account, state: InteractionState, action: string, input: Record<string, string>, audit: AuditContext, language?: string): Promise<ActOutcome> {
    const r = this.#require(factorId);
    if (!r.factor.act || !/^[a-z][a-z-]{0,31}$/.test(action)) return { ok: false, reason: 'invalid_input' };
    const credentials = await this.store.list(account.id, factorId);
    if (step === 'challenge' && !credentials.length) return { ok: false, reason: 'not_enrolled' };
    return r.factor.act(this.#context(r, factorAccount(account), state, { ...audit, accountId: account.id }, undefined, language), { step, action, credentials }, input);
  }
}
