/**
 * The factor contract test kit. Every registered factor passes it, and a third
 * party proves a factor of their own with it:
 *
 *   import { describeFactorContract } from '../contract/kit.ts';
 *   import myFactor from '../../../factors/my-factor/index.ts';
 *   describeFactorContract('my-factor', () => ({ factor: myFactor, ...driver }));
 *
 * A driver knows the one thing the kit cannot: how a user answers this
 * factor (reads the QR key and types a code, confirms the printed codes, signs
 * a WebAuthn challenge). Everything else runs for real: the FactorEngine with
 * its narrow services, throttle and audit, on a migrated database of every
 * dialect in the matrix (one database per test file and dialect).
 *
 * Challenge inputs are made from what beginChallenge showed (a WebAuthn
 * challenge is random and bound to the interaction), so the kit begins a
 * challenge before every verification, as the sign-in page does. A first
 * factor (passkey) also proves that it identifies its account from the input
 * alone, through the engine's verifyFirstFactor.
 *
 * A factor whose step takes more than one submission (send a code, then type
 * it) is driven through `step.act`, as the page's buttons do; one that needs
 * configuration (an SMTP server, an SMS gateway) names it in `env`.
 *
 * A factor that waits (its answer arrives outside the page, `waits: true`) is
 * also held to what waiting promises: checks before the answer are pending and
 * cost no guess however often they come, a definitive failure costs one, a
 * guess answered pending keeps its count, the wait ends at the challenge's
 * expiry, and a challenge is begun once per step (shown again, not begun
 * again). A factor with a callback route proves its callback refuses forged,
 * malformed and replayed calls; the driver makes the calls its server would
 * (`callbackFor`) and the kit sends them through the engine, as the route does.
 * (A browser return route is proven end to end, with a factor proved at
 * another site: test/e2e/factor-return.test.ts.)
 * A factor whose `http` calls reach a service names the stand-in for that
 * service (`transport`), which gets what the service would.
 *
 * Every text is a message key: the kit checks that the factor's English
 * messages hold its label and description, that every key its views, buttons,
 * failures and notices name exists with the parameters it needs, and renders
 * its views in every language it ships.
 *
 * `makeDriver` is called once per test, so a driver may remember what
 * enrolment showed (backup codes) without leaking it between tests. Every test
 * uses a fresh account and client address, so the throttle never interferes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import Handlebars from 'handlebars';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../../helpers/databases.ts';
import type { DatabaseKind } from '../../../src/db/database.ts';
import { testConfig } from '../../helpers/server.ts';
import { openServices, type Opened } from '../../../src/bootstrap.ts';
import { FactorEngine, type CallbackOutcome, type EnrollOutcome, type VerifyOutcome } from '../../../src/mfa/engine.ts';
import type { HttpTransport } from '../../../src/mfa/factor-http.ts';
import { ManualClock } from '../../helpers/clock.ts';
import { InteractionState } from '../../../src/mfa/step-state.ts';
import { createAccount, setDisabled } from '../../../src/accounts/accounts.ts';
import { listAudit } from '../../../src/security/audit.ts';
import { Views } from '../../../interactions/render.ts';
import { BUILT_IN_FACTORS, FactorRegistry } from '../../../factors/registry.ts';
import {
  AMR_VALUES,
  FACTOR_API_VERSION,
  type Credential,
  type Factor,
  type FactorKind,
  type FactorRequest,
  type MessageRef,
  type StepView,
} from '../../../factors/types.ts';
import { Catalogue } from '../../../src/i18n/catalogue.ts';
import type { Account } from '../../../src/db/schema.ts';
import type { AuditContext } from '../../../src/security/audit.ts';

type Input = Record<string, string>;
type MaybePromise<T> = T | Promise<T>;

/** Presses a button of the current step that does not finish it (`action=<name>`), as the user would; returns the step as shown next. */
export interface DriverStep {
  act(action: string, input?: Input): Promise<StepView>;
  /** Delivers a server's call to the factor's callback route (through the engine, as the route does). */
  callback(request: FactorRequest): Promise<CallbackOutcome | undefined>;
  /** The time as the engine sees it (the kit moves it past a challenge's expiry): what a device signs its calls with. */
  now(): Date;
}

/** How a user answers one factor; the only factor-specific part of the kit. */
export interface FactorDriver {
  /** The factor under test (a third party passes their own; it need not be built in). */
  factor: Factor<any>;
  /** The operator's settings for it, as FACTOR_SETTINGS would give them; omitted means the schema's defaults. */
  settings?: unknown;
  /** Configuration the factor needs (SMTP_URL, SMS_WEBHOOK_URL…), as environment variables; files with the same env share a database. */
  env?: Record<string, string>;
  /** A finishEnrollment input that completes the enrolment `view` (what beginEnrollment returned) shows. */
  enrollmentInput(view: StepView, step: DriverStep): MaybePromise<Input>;
  /**
   * A finishEnrollment input with a wrong proof (a mistyped code), or null when
   * the factor's enrolment proves nothing and has nothing to get wrong.
   */
  wrongEnrollmentInput(view: StepView, step: DriverStep): MaybePromise<Input | null>;
  /** A valid verify input for this stored credential (its secret opened), not yet used, answering `challenge` (what beginChallenge showed). */
  validChallengeInput(credential: Credential, challenge: StepView, step: DriverStep): MaybePromise<Input>;
  /** A well-formed verify input that must not match this credential. */
  invalidChallengeInput(credential: Credential, challenge: StepView, step: DriverStep): MaybePromise<Input>;
  /** First factors: a valid input for this credential answering `login` (what beginFirstFactor showed). */
  firstFactorInput?(credential: Credential, login: StepView): MaybePromise<Input>;
  /**
   * Factors with a callback route: the call its server makes answering `challenge` for this credential,
   * `approve` proving it, `deny` refusing it (a person who says no). Made, not sent: the kit sends it.
   */
  callbackFor?(credential: Credential, challenge: StepView, answer: 'approve' | 'deny', step: DriverStep): MaybePromise<FactorRequest>;
  /**
   * What the factor's `http` calls reach (a stand-in for its push relay or vendor API); the same function
   * for every test of a file. Without one, they go to the network.
   */
  transport?: HttpTransport;
}

const KINDS: FactorKind[] = ['know', 'have', 'are'];
const USER_FAILURES = ['wrong', 'expired', 'already_used', 'locked', 'invalid_input', 'not_enrolled', 'suspected_clone'];

/**
 * One database per test file and dialect, shared by every describeFactorContract
 * call in the file (a file may check a factor under several settings). Opened
 * on first use, closed after the file's last test.
 */
const shared = new Map<string, Promise<{ database: TestDatabase; opened: Opened; clock: ManualClock }>>();

function sharedServices(
  kind: DatabaseKind,
  env: Record<string, string> = {},
  transport?: HttpTransport,
): Promise<{ database: TestDatabase; opened: Opened; clock: ManualClock }> {
  const key = `${kind} ${JSON.stringify(env)} ${transport ? 'transport' : ''}`;
  let entry = shared.get(key);
  if (!entry) {
    entry = (async () => {
      const database = await createTestDatabase(kind);
      // A clock the tests of a waiting factor move past a challenge's expiry.
      const clock = new ManualClock();
      const opened = await openServices(testConfig(39_999, env), { handle: database, migrate: true, clock, httpTransport: transport });
      return { database, opened, clock };
    })();
    shared.set(key, entry);
  }
  return entry;
}

/** Accounts made in this file, for unique names and client addresses. */
let accounts = 0;

afterAll(async () => {
  for (const entry of shared.values()) {
    const { database, opened } = await entry;
    await opened.close();
    await database.close();
  }
  shared.clear();
});

/** Describes the contract for one factor, on every database in the matrix. */
export function describeFactorContract(name: string, makeDriver: () => FactorDriver): void {
  const probe = makeDriver();
  const factor = probe.factor;
  const operatorSettings = probe.settings === undefined ? {} : { [factor.id]: probe.settings };
  // As a provider has it: the built-in messages and every known factor's, this one's included.
  const catalogue = new Catalogue().addFactors([...BUILT_IN_FACTORS.filter((f) => f.id !== factor.id), factor]);
  const languages = Object.keys(Catalogue.readFolder(factor.messagesDir));

  /** A message the factor names: in English, given every parameter it uses. */
  function expectMessage(ref: MessageRef | undefined) {
    expect(ref).toEqual({ key: expect.any(String), ...(ref?.params ? { params: expect.any(Object) } : {}) });
    expect({ key: ref!.key, inCatalogue: catalogue.has('en', ref!.key) }).toEqual({ key: ref!.key, inCatalogue: true });
    const missing = catalogue.paramsOf('en', ref!.key)!.filter((p) => ref!.params?.[p] === undefined);
    expect({ key: ref!.key, missing }).toEqual({ key: ref!.key, missing: [] });
  }

  describe(`factor contract: ${name} (descriptor)`, () => {
    test('the registry accepts it, with the default and the configured settings', () => {
      const registry = new FactorRegistry([factor], operatorSettings);
      expect(registry.ids()).toEqual([factor.id]);
      expect(registry.get(factor.id)!.settings).toEqual(factor.settings.parse(probe.settings));
      // The schema has defaults: an operator who configures nothing gets a working factor.
      expect(factor.settings.safeParse(undefined).success).toBe(true);
      expect(() => new FactorRegistry([factor])).not.toThrow();
    });

    test('declares the current contract version, a valid id and its assurance facts', () => {
      expect(factor.apiVersion).toBe(FACTOR_API_VERSION);
      expect(factor.id).toMatch(/^[a-z][a-z0-9-]{1,31}$/);
      expect(factor.id).not.toBe('password');
      expect(factor.kinds.length).toBeGreaterThan(0);
      for (const kind of factor.kinds) expect(KINDS).toContain(kind);
      expect(new Set(factor.kinds).size).toBe(factor.kinds.length);
      expect(typeof factor.phishingResistant).toBe('boolean');
      expect(typeof factor.multiple).toBe('boolean');
      // A recovery-only factor is a fallback; it can never sign a user in on its own.
      expect(factor.recoveryOnly && factor.firstFactor).toBe(false);
      // A first factor identifies the account from its input, and says what the login page shows.
      if (factor.firstFactor) {
        expect(typeof factor.beginFirstFactor).toBe('function');
        expect(typeof factor.identify).toBe('function');
        expect(typeof probe.firstFactorInput).toBe('function');
      }
    });

    test('says how the interaction pages present it through descriptor fields (they name no factor)', () => {
      // Offered after a first enrolment (backup codes): a fallback saved once, never a first factor.
      expect(['boolean', 'undefined']).toContain(typeof factor.offerAfterFirstEnrollment);
      if (factor.offerAfterFirstEnrollment) expect(factor.firstFactor).toBe(false);
      if (factor.enrollPage !== undefined) {
        expectMessage(factor.enrollPage.title);
        expect(typeof factor.enrollPage.intro).toBe('boolean');
      }
    });

    test('ships its messages: English with its label and description, other languages no key English lacks, the same parameters', () => {
      expect(languages).toContain('en');
      for (const language of languages) {
        for (const key of [`${factor.id}.label`, `${factor.id}.description`]) expect(catalogue.text(language, key).trim()).not.toBe('');
        const own = Object.keys(Catalogue.readFolder(factor.messagesDir)[language]!);
        for (const key of own) {
          expect({ key, language, english: catalogue.has('en', key) }).toEqual({ key, language, english: true });
          expect({ key, language, params: catalogue.paramsOf(language, key) }).toEqual({ key, language, params: catalogue.paramsOf('en', key) });
        }
      }
    });

    test('its views name only messages the catalogue has', () => {
      for (const view of fs.readdirSync(factor.viewsDir).filter((v) => v.endsWith('.hbs'))) {
        const source = fs.readFileSync(path.join(factor.viewsDir, view), 'utf8');
        for (const [, key] of source.matchAll(/\{\{t\s+"([^"]+)"/g))
          expect({ view, key, inCatalogue: catalogue.has('en', key!) }).toEqual({ view, key, inCatalogue: true });
      }
    });

    test('declares the routes it handles, and a waiting factor with a way to be answered', () => {
      expect(['boolean', 'undefined']).toContain(typeof factor.waits);
      expect(typeof factor.handleReturn === 'function').toBe(factor.routes?.return !== undefined);
      expect(typeof factor.handleCallback === 'function').toBe(factor.routes?.callback !== undefined);
      for (const header of [...(factor.routes?.return?.headers ?? []), ...(factor.routes?.callback?.headers ?? [])]) {
        expect(header).toMatch(/^[a-z0-9][a-z0-9-]*$/);
        expect(header).not.toBe('cookie');
      }
      // Its answer has to arrive somewhere: a callback, a return, or a driver that says how (the kit then tests it).
      if (factor.waits) expect(factor.routes?.callback || factor.routes?.return).toBeTruthy();
      if (factor.routes?.callback) expect(typeof probe.callbackFor).toBe('function');
    });

    test('contributes only amr values registered in RFC 8176 (and never claims mfa by itself)', () => {
      expect(factor.amr.length).toBeGreaterThan(0);
      for (const amr of factor.amr) expect(AMR_VALUES).toContain(amr);
      // `mfa` is the policy engine's to add, when two kinds were proved.
      expect(factor.amr).not.toContain('mfa');
    });

    test('ships challenge.hbs and enroll.hbs (and login.hbs for a first factor), which parse as Handlebars', () => {
      for (const view of ['challenge.hbs', 'enroll.hbs', ...(factor.firstFactor ? ['login.hbs'] : [])]) {
        const file = path.join(factor.viewsDir, view);
        expect(fs.existsSync(file)).toBe(true);
        expect(() => Handlebars.parse(fs.readFileSync(file, 'utf8'))).not.toThrow();
      }
      expect(() => new Views(undefined, undefined, catalogue).addPartials(factor.viewsDir, `${factor.id}/`)).not.toThrow();
    });
  });

  for (const kind of DIALECTS) {
    describe(`factor contract: ${name} on ${kind}`, () => {
      let opened: Opened;
      let engine: FactorEngine;
      let views: Views;
      let clock: ManualClock;

      beforeAll(async () => {
        ({ opened, clock } = await sharedServices(kind, probe.env, probe.transport));
        // The engine over just this factor: a third-party factor need not be built in.
        engine = new FactorEngine(opened.services, new FactorRegistry([factor], operatorSettings));
        views = new Views(undefined, undefined, catalogue);
        views.addPartials(factor.viewsDir, `${factor.id}/`);
      });

      interface Scenario {
        driver: FactorDriver;
        account: Account;
        state: InteractionState;
        audit: AuditContext;
      }

      /** A fresh account, interaction and client address: nothing shared between tests. */
      async function scenario(): Promise<Scenario> {
        const n = ++accounts;
        const account = await createAccount(opened.services.db, opened.services.hasher, {
          username: `contract-${n}`,
          email: `contract-${n}@example.test`,
        });
        return {
          driver: makeDriver(),
          account,
          state: newState(),
          audit: { ip: `198.51.${n >> 8}.${n & 255}`, userAgent: 'contract-kit', actor: 'user', clientId: 'contract' },
        };
      }

      function newState(): InteractionState {
        return new InteractionState(opened.services.db, opened.services.sealer, crypto.randomBytes(12).toString('base64url'));
      }

      /**
       * The view's partial is `<id>/<file>`, the file is in viewsDir, its buttons name messages, and the page
       * renders with the data in every language the factor ships (the page code turns the buttons' keys into words).
       */
      function expectRenders(view: StepView, page: 'enroll' | 'second-factor' | 'login') {
        expect(view.partial.startsWith(`${factor.id}/`)).toBe(true);
        const file = view.partial.slice(factor.id.length + 1);
        expect(fs.existsSync(path.join(factor.viewsDir, `${file}.hbs`))).toBe(true);
        expect(view.data).toEqual(expect.any(Object));
        if (view.submit) expectMessage(view.submit.label);
        for (const action of view.actions ?? []) expectMessage(action.label);
        let html = '';
        for (const lang of languages) {
          const t = (ref: MessageRef) => catalogue.text(lang, ref.key, ref.params);
          const label = catalogue.text(lang, `${factor.id}.label`);
          const data =
            page === 'login'
              ? { lang, uid: 'contract', firstFactors: [{ id: factor.id, label, partial: view.partial, view: view.data }] }
              : {
                  lang,
                  uid: 'contract',
                  factorId: factor.id,
                  factorLabel: label,
                  partial: view.partial,
                  view: view.data,
                  submit: view.submit && { ...view.submit, label: t(view.submit.label) },
                  actions: view.actions?.map((a) => ({ ...a, label: t(a.label) })),
                };
          const rendered = views.render(page, data);
          expect(rendered).toContain('<form');
          if (lang === 'en') html = rendered;
        }
        return html;
      }

      /** The buttons of a step that move it along (send a code): a failure here is the driver's or the factor's bug. */
      function stepFor(s: Scenario, step: 'enroll' | 'challenge', state = s.state): DriverStep {
        return {
          async act(action, input = {}) {
            const outcome = await engine.act(factor.id, step, s.account, state, action, input, s.audit);
            if (!outcome.ok) throw new Error(`action ${action} failed: ${JSON.stringify(outcome)}`);
            return step === 'enroll' ? engine.beginEnrollment(factor.id, s.account, state) : showChallenge(s.account, state);
          },
          callback: (request) => engine.handleCallback(factor.id, request, { ip: '203.0.113.9', userAgent: 'contract-kit' }),
          now: () => clock.now(),
        };
      }

      /** Begins a challenge in `state` (as the sign-in page does) and answers it for `credential`. */
      async function challengeInput(s: Scenario, credential: Credential, state = s.state): Promise<Input> {
        const view = await showChallenge(s.account, state);
        return s.driver.validChallengeInput(credential, view, stepFor(s, 'challenge', state));
      }

      /**
       * The step's challenge as the page shows it: begun once, then shown again from the interaction's
       * state. A waiting challenge that ended (denied, expired) is started again, as the person would.
       */
      async function showChallenge(account: Account, state: InteractionState): Promise<StepView> {
        const step = await engine.challenge(factor.id, account, state);
        if (!step.over) return step.view;
        await engine.restartChallenge(factor.id, state);
        return (await engine.challenge(factor.id, account, state)).view;
      }

      async function credentials(s: Scenario): Promise<Credential[]> {
        return engine.store.list(s.account.id, factor.id);
      }

      async function enroll(s: Scenario): Promise<{ credential: Credential; outcome: EnrollOutcome & { ok: true }; input: Input }> {
        const view = await engine.beginEnrollment(factor.id, s.account, s.state);
        const input = await s.driver.enrollmentInput(view, stepFor(s, 'enroll'));
        const outcome = await engine.finishEnrollment(factor.id, s.account, s.state, input, s.audit);
        if (!outcome.ok) throw new Error(`enrolment failed: ${JSON.stringify(outcome)}`);
        const stored = (await credentials(s)).find((c) => c.id === outcome.credentialId);
        if (!stored) throw new Error('the enrolled credential is not stored');
        return { credential: stored, outcome, input };
      }

      function verify(s: Scenario, input: Input, state = s.state): Promise<VerifyOutcome> {
        return engine.verify(factor.id, s.account, state, input, s.audit);
      }

      async function auditTypes(s: Scenario): Promise<string[]> {
        return (await listAudit(opened.services.db, { accountId: s.account.id })).map((e) => e.type);
      }

      /** What one proof showed: some of what the factor declared, never more. */
      function expectWithin<T>(shown: T[], declared: T[]) {
        expect(shown.length).toBeGreaterThan(0);
        for (const v of shown) expect(declared).toContain(v);
      }

      /** A failure the person can cause, its message (if any) one the catalogue has. */
      function expectUserFailure(outcome: { ok: boolean; reason?: string; message?: MessageRef }, reasons = USER_FAILURES) {
        // A waiting factor ignores what the browser sends: an answer not given yet is no proof either.
        if (factor.waits && outcome.reason === 'pending') reasons = [...reasons, 'pending'];
        expect(outcome.ok).toBe(false);
        expect(reasons).toContain(outcome.reason);
        if (outcome.message !== undefined) expectMessage(outcome.message);
      }

      test('enrol: beginEnrollment shows <id>/… and finishEnrollment stores a credential the listing shows', async () => {
        const s = await scenario();
        const view = await engine.beginEnrollment(factor.id, s.account, s.state);
        expectRenders(view, 'enroll');
        const outcome = await engine.finishEnrollment(factor.id, s.account, s.state, await s.driver.enrollmentInput(view, stepFor(s, 'enroll')), s.audit);
        expect(outcome).toMatchObject({ ok: true, credentialId: expect.any(String) });
        if (!outcome.ok) return;

        const summaries = await engine.store.summaries(s.account.id);
        expect(summaries).toEqual([expect.objectContaining({ id: outcome.credentialId, factorId: factor.id, label: expect.any(String) })]);
        expect(summaries[0]!.label.trim()).not.toBe('');
        // A default name is stored as words, not as the key of a message the catalogue lacks.
        expect(summaries[0]!.label.startsWith(`${factor.id}.`)).toBe(false);
        expect((await engine.enrolled(s.account.id)).map((r) => r.factor.id)).toEqual([factor.id]);

        // Evidence only when the enrolment proved possession, and then truthful.
        if (outcome.evidence) {
          expect(outcome.evidence).toMatchObject({ factor: factor.id, credentialId: outcome.credentialId, phishingResistant: factor.phishingResistant });
          expectWithin(outcome.evidence.kinds, factor.kinds);
          expectWithin(outcome.evidence.amr, factor.amr);
        }
        expect(await auditTypes(s)).toContain('factor.enrolled');
      });

      test('enrolment with a wrong proof is refused as a value, stores nothing, and does not spend the setup', async () => {
        const s = await scenario();
        const view = await engine.beginEnrollment(factor.id, s.account, s.state);
        const wrong = await s.driver.wrongEnrollmentInput(view, stepFor(s, 'enroll'));
        if (wrong === null) {
          // Nothing to prove, so nothing may be claimed: such an enrolment is no evidence.
          const { outcome } = await enroll(s);
          expect(outcome.evidence).toBeUndefined();
          return;
        }
        const refused = await engine.finishEnrollment(factor.id, s.account, s.state, wrong, s.audit);
        expectUserFailure(refused, ['wrong', 'invalid_input']);
        expect(await engine.store.summaries(s.account.id)).toEqual([]);

        // A typo does not make the user start again: the same setup still completes.
        const outcome = await engine.finishEnrollment(factor.id, s.account, s.state, await s.driver.enrollmentInput(view, stepFor(s, 'enroll')), s.audit);
        expect(outcome.ok).toBe(true);
        expect(await engine.store.summaries(s.account.id)).toHaveLength(1);
      });

      test('an enrolment completes once: finishing it again stores nothing more', async () => {
        const s = await scenario();
        const view = await engine.beginEnrollment(factor.id, s.account, s.state);
        const input = await s.driver.enrollmentInput(view, stepFor(s, 'enroll'));
        expect((await engine.finishEnrollment(factor.id, s.account, s.state, input, s.audit)).ok).toBe(true);
        expectUserFailure(await engine.finishEnrollment(factor.id, s.account, s.state, input, s.audit));
        expect(await engine.store.summaries(s.account.id)).toHaveLength(1);
      });

      test('enrolment state belongs to its interaction: another interaction cannot finish it', async () => {
        const s = await scenario();
        const view = await engine.beginEnrollment(factor.id, s.account, s.state);
        const input = await s.driver.enrollmentInput(view, stepFor(s, 'enroll'));
        expectUserFailure(await engine.finishEnrollment(factor.id, s.account, newState(), input, s.audit));
        expect(await engine.store.summaries(s.account.id)).toEqual([]);
      });

      test('challenge: beginChallenge returns a partial named <id>/… that renders', async () => {
        const s = await scenario();
        await enroll(s);
        const view = await showChallenge(s.account, s.state);
        expectRenders(view, 'second-factor');
      });

      test("verify: a valid input succeeds with evidence of the factor's kinds and amr", async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const input = await challengeInput(s, credential);
        const before = Math.floor(Date.now() / 1000);
        const outcome = await verify(s, input);
        expect(outcome).toMatchObject({
          ok: true,
          evidence: { factor: factor.id, credentialId: credential.id, phishingResistant: factor.phishingResistant },
        });
        if (!outcome.ok) return;
        expectWithin(outcome.evidence.kinds, factor.kinds);
        expectWithin(outcome.evidence.amr, factor.amr);
        if (outcome.notice !== undefined) expectMessage(outcome.notice);
        expect(outcome.evidence.at).toBeGreaterThanOrEqual(before);
        expect(outcome.evidence.at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
        expect((await engine.store.summaries(s.account.id))[0]!.lastUsedAt).toBeInstanceOf(Date);
        expect(await auditTypes(s)).toContain('factor.used');
      });

      test("verify: a wrong or malformed input is refused as a value ('wrong' or 'invalid_input')", async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const view = await showChallenge(s.account, s.state);
        const wrong = await s.driver.invalidChallengeInput(credential, view, stepFor(s, 'challenge'));
        expectUserFailure(await verify(s, wrong), ['wrong', 'invalid_input']);
        for (const input of [{}, { code: '' }, { code: 'x'.repeat(4096), response: 'x'.repeat(4096) }] as Input[]) {
          // A waiting factor's answer comes from elsewhere; once it is spent, what the form says proves nothing either.
          expectUserFailure(await verify(s, input), factor.waits ? USER_FAILURES : ['wrong', 'invalid_input']);
        }
        expect(await auditTypes(s)).toContain('factor.failed');
        // The failures did not spend the credential: a valid input still works.
        expect((await verify(s, await challengeInput(s, credential))).ok).toBe(true);
      });

      test('the proof that completed enrolment does not also pass a challenge', async () => {
        const s = await scenario();
        const { credential, input } = await enroll(s);
        expectUserFailure(await verify(s, input));
        expect(credential.factorId).toBe(factor.id);
      });

      test('a valid input replayed is refused', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const input = await challengeInput(s, credential);
        expect((await verify(s, input)).ok).toBe(true);
        expectUserFailure(await verify(s, input));
        // Nor after a new challenge in the same interaction.
        await showChallenge(s.account, s.state);
        expectUserFailure(await verify(s, input));
        // Nor in another interaction.
        expectUserFailure(await verify(s, input, newState()));
      });

      test('one valid input used three times at once (twice in its interaction, once in another): exactly one succeeds', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const other = newState();
        // The other interaction has a challenge of its own, so only the replay protection stops it there.
        await showChallenge(s.account, other);
        const input = await challengeInput(s, credential);
        const outcomes = await Promise.all([verify(s, input), verify(s, input), verify(s, input, other)]);
        expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      });

      test('verify without a credential is not_enrolled, and one account cannot use another account’s credential', async () => {
        const owner = await scenario();
        const { credential } = await enroll(owner);
        const other = await scenario();
        expect(await verify(other, await challengeInput(owner, credential, other.state))).toEqual({ ok: false, reason: 'not_enrolled' });
      });

      test('a credential can be renamed by its owner only', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const other = await scenario();
        expect(await engine.store.rename(other.account.id, credential.id, 'Stolen')).toBe(false);
        expect(await engine.store.rename(s.account.id, credential.id, 'Work phone')).toBe(true);
        expect((await engine.store.summaries(s.account.id)).map((c) => c.label)).toEqual(['Work phone']);
        // Renaming changes nothing else: the credential still verifies.
        expect((await verify(s, await challengeInput(s, credential))).ok).toBe(true);
      });

      test('a credential can be removed by its owner only; afterwards verify is not_enrolled', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const input = await challengeInput(s, credential);
        const other = await scenario();
        expect(await engine.remove(other.account.id, credential.id, other.audit)).toBe(false);
        expect(await engine.store.summaries(s.account.id)).toHaveLength(1);
        expect(await engine.remove(s.account.id, credential.id, s.audit)).toBe(true);
        expect(await engine.store.summaries(s.account.id)).toEqual([]);
        expect(await engine.enrolled(s.account.id)).toEqual([]);
        expect(await verify(s, input)).toEqual({ ok: false, reason: 'not_enrolled' });
        expect(await auditTypes(s)).toContain('factor.removed');
      });

      test('begun once: showing the step again shows the same challenge and begins nothing new', async () => {
        const s = await scenario();
        await enroll(s);
        const calls = async () => (await listAudit(opened.services.db, { accountId: s.account.id })).filter((e) => e.type === 'factor.http').length;
        const first = await engine.challenge(factor.id, s.account, s.state);
        const reached = await calls();
        const again = await engine.challenge(factor.id, s.account, s.state);
        expect(again).toEqual(first);
        // Nothing went out twice (no second push, no second call to a vendor).
        expect(await calls()).toBe(reached);
        // Another interaction begins its own (a waiting factor's is a new question).
        if (factor.waits) expect((await engine.challenge(factor.id, s.account, newState())).view).not.toEqual(first.view);
      });

      if (factor.waits) {
        /** The account's throttle counters, as the database holds them. */
        async function counters(s: Scenario): Promise<Array<{ key: string; points: number }>> {
          const rows = await opened.services.db
            .selectFrom('rate_limits')
            .select(['key', 'points'])
            .where('key', 'like', `%${s.account.id}%`)
            .orderBy('key')
            .execute();
          return rows.filter((r) => !r.key.startsWith('wait:'));
        }
        const failures = async (s: Scenario) => (await counters(s)).find((c) => c.key.startsWith(`mfa:acct:5m:${s.account.id}:`))?.points ?? 0;
        const check = (s: Scenario, state = s.state) => engine.check(factor.id, s.account, state, s.audit);

        test('waits: before the answer a check is pending and costs no guess, however often; the answer then proves once', async () => {
          const s = await scenario();
          const { credential } = await enroll(s);
          const step = await engine.challenge(factor.id, s.account, s.state);
          expect(step.waits).toBe(true);
          expect(step.expiresAt).toBeGreaterThan(clock.now().getTime());
          expectRenders(step.view, 'second-factor');
          const before = await counters(s);
          for (let i = 0; i < 25; i++) expect(await check(s)).toMatchObject({ ok: false, reason: 'pending' });
          expect(await counters(s)).toEqual(before);
          await s.driver.validChallengeInput(credential, step.view, stepFor(s, 'challenge'));
          const proved = await check(s);
          expect(proved).toMatchObject({ ok: true, evidence: { factor: factor.id, credentialId: credential.id } });
          if (proved.ok) expectWithin(proved.evidence.amr, factor.amr);
          expect(await counters(s)).toEqual(before);
          expectUserFailure(await check(s));
          expect(await auditTypes(s)).toContain('factor.used');
        });

        test('waits: a definitive failure found by a check counts one failed guess, and the step offers to start again', async () => {
          const s = await scenario();
          const { credential } = await enroll(s);
          const step = await engine.challenge(factor.id, s.account, s.state);
          await s.driver.invalidChallengeInput(credential, step.view, stepFor(s, 'challenge'));
          expectUserFailure(await check(s), ['wrong']);
          expect(await failures(s)).toBe(1);
          // The page says what happened and waits for the person: nothing is begun again by itself.
          const over = await engine.challenge(factor.id, s.account, s.state);
          expect(over.over).toMatchObject({ ok: false, reason: 'wrong' });
          expect(await engine.challenge(factor.id, s.account, s.state)).toEqual(over);
          await engine.restartChallenge(factor.id, s.state);
          const fresh = await engine.challenge(factor.id, s.account, s.state);
          expect(fresh.over).toBeUndefined();
          expect(fresh.view).not.toEqual(step.view);
        });

        test('waits: a guess answered pending keeps its count (pending buys no free guesses)', async () => {
          const s = await scenario();
          await enroll(s);
          await engine.challenge(factor.id, s.account, s.state);
          for (let i = 1; i <= 3; i++) {
            expect(await verify(s, { code: String(100000 + i) })).toMatchObject({ ok: false, reason: 'pending' });
            expect(await failures(s)).toBe(i);
          }
        });

        test("waits: the wait ends at the challenge's expiry: the check says expired, at no cost", async () => {
          const s = await scenario();
          await enroll(s);
          const step = await engine.challenge(factor.id, s.account, s.state);
          const before = await counters(s);
          clock.advance(Math.ceil((step.expiresAt! - clock.now().getTime()) / 1000) + 1);
          expectUserFailure(await check(s), ['expired']);
          expect(await counters(s)).toEqual(before);
          expect((await engine.challenge(factor.id, s.account, s.state)).over).toMatchObject({ reason: 'expired' });
        });

        test('waits: after "start again", an answer to the replaced challenge proves nothing', async () => {
          const s = await scenario();
          const { credential } = await enroll(s);
          const old = await engine.challenge(factor.id, s.account, s.state);
          await engine.restartChallenge(factor.id, s.state);
          await engine.challenge(factor.id, s.account, s.state);
          await s.driver.validChallengeInput(credential, old.view, stepFor(s, 'challenge'));
          expect(await check(s)).toMatchObject({ ok: false, reason: 'pending' });
        });
      }

      if (factor.routes?.callback) {
        test('callback: a forged, malformed or replayed call is refused as a value; the genuine one is recorded once', async () => {
          const s = await scenario();
          const { credential } = await enroll(s);
          const step = stepFor(s, 'challenge');
          const view = await showChallenge(s.account, s.state);
          const genuine = await s.driver.callbackFor!(credential, view, 'approve', step);
          const flip = (text: string) => text.slice(0, -2) + (text.at(-2) === 'A' ? 'B' : 'A') + text.slice(-1);
          const forged: FactorRequest[] = [
            { ...genuine, body: flip(genuine.body) },
            { ...genuine, headers: Object.fromEntries(Object.entries(genuine.headers).map(([k, v]) => [k, flip(v)])) },
            { ...genuine, headers: {} },
            { method: 'POST', query: {}, form: {}, body: '', headers: {} },
            { method: 'POST', query: {}, form: {}, body: 'not json', headers: genuine.headers },
            { method: 'POST', query: {}, form: {}, body: 'x'.repeat(16_000), headers: genuine.headers },
          ];
          for (const request of forged) expectUserFailure((await step.callback(request))!, USER_FAILURES);
          expect(await auditTypes(s)).not.toContain('factor.callback');
          if (factor.waits) expect(await engine.check(factor.id, s.account, s.state, s.audit)).toMatchObject({ ok: false, reason: 'pending' });
          expect(await step.callback(genuine)).toMatchObject({ ok: true });
          // The same call again, and the same call made anew (a new nonce) for an answered challenge.
          expectUserFailure((await step.callback(genuine))!, ['already_used', 'expired']);
          expectUserFailure((await step.callback(await s.driver.callbackFor!(credential, view, 'deny', step)))!, ['already_used', 'expired']);
          expect((await verify(s, {})).ok).toBe(true);
          expect(await auditTypes(s)).toContain('factor.callback');
        });
      }

      if (factor.act) {
        test('actions: an unknown action is refused as a value, and no action stores a credential', async () => {
          const s = await scenario();
          for (const step of ['enroll', 'challenge'] as const) {
            const outcome = await engine.act(factor.id, step, s.account, s.state, 'no-such-action', {}, s.audit);
            expect(outcome.ok).toBe(false);
          }
          expect(await engine.act(factor.id, 'enroll', s.account, s.state, 'no-such-action', {}, s.audit)).toMatchObject({
            ok: false,
            reason: 'invalid_input',
          });
          expect(await engine.store.summaries(s.account.id)).toEqual([]);
        });
      }

      if (!factor.firstFactor) return;

      /** Begins a first-factor sign-in in a fresh interaction and answers it for `credential`. */
      async function firstFactorInput(s: Scenario, credential: Credential, state = newState()): Promise<{ state: InteractionState; input: Input }> {
        const login = await engine.beginFirstFactor(factor.id, state);
        return { state, input: await s.driver.firstFactorInput!(credential, login) };
      }

      test('first factor: the login view renders, and the input alone identifies the account', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const state = newState();
        const login = await engine.beginFirstFactor(factor.id, state);
        expectRenders(login, 'login');
        const outcome = await engine.verifyFirstFactor(factor.id, state, await s.driver.firstFactorInput!(credential, login), s.audit);
        expect(outcome).toMatchObject({
          ok: true,
          account: { id: s.account.id },
          evidence: { factor: factor.id, credentialId: credential.id, phishingResistant: factor.phishingResistant },
        });
        if (!outcome.ok) return;
        expectWithin(outcome.evidence.kinds, factor.kinds);
        expectWithin(outcome.evidence.amr, factor.amr);
        expect(await auditTypes(s)).toContain('factor.used');
      });

      test('first factor: a replayed or malformed input is refused, in its interaction and in another', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const { state, input } = await firstFactorInput(s, credential);
        expect((await engine.verifyFirstFactor(factor.id, state, input, s.audit)).ok).toBe(true);
        expectUserFailure(await engine.verifyFirstFactor(factor.id, state, input, s.audit));
        const other = newState();
        await engine.beginFirstFactor(factor.id, other);
        expectUserFailure(await engine.verifyFirstFactor(factor.id, other, input, s.audit));
        for (const bad of [{}, { code: '' }, { response: 'x'.repeat(4096) }] as Input[]) {
          expectUserFailure(await engine.verifyFirstFactor(factor.id, other, bad, s.audit), ['wrong', 'invalid_input']);
        }
      });

      test('first factor: a removed credential or a disabled account signs nobody in', async () => {
        const s = await scenario();
        const { credential } = await enroll(s);
        const before = await firstFactorInput(s, credential);
        await setDisabled(opened.services.db, s.account.id, true);
        expect(await engine.verifyFirstFactor(factor.id, before.state, before.input, s.audit)).toMatchObject({ ok: false, reason: 'wrong' });
        await setDisabled(opened.services.db, s.account.id, false);
        const after = await firstFactorInput(s, credential);
        expect(await engine.remove(s.account.id, credential.id, s.audit)).toBe(true);
        expect(await engine.verifyFirstFactor(factor.id, after.state, after.input, s.audit)).toMatchObject({ ok: false, reason: 'wrong' });
      });
    });
  }
}
