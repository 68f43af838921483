/**
 * The factor registry: the factors FACTORS loaded (see load.ts), each
 * validated at boot (unique ids, contract version, registered amr values,
 * views present, English messages with its label and description, settings
 * parsed with their defaults) so a broken plugin stops the start instead of
 * failing a user's sign-in. Each factor then says whether it can work in this
 * deployment (`enabled`); one that cannot is known (its messages and views
 * still check, its settings are still parsed) but neither offered nor
 * accepted. The messages themselves are compiled with the catalogue, at start too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Catalogue } from '../src/i18n/catalogue.ts';
import { AMR_VALUES, FACTOR_API_VERSION, type Factor, type FactorEnvironment } from './types.ts';
import { parseSettings, redactSettings, secretPaths } from './settings.ts';
import totp from './totp/index.ts';
import backupCodes from './backup-codes/index.ts';
import emailCode from './email-code/index.ts';
import smsCode from './sms-code/index.ts';
import webauthn from './webauthn/index.ts';
import passkey from './passkey/index.ts';

/** The factors built into Twofold, in the order pages list them (BUILT_IN_FACTOR_IDS, with their modules). */
export const BUILT_IN_FACTORS: Factor<any>[] = [totp, webauthn, passkey, backupCodes, emailCode, smsCode];

/** Where a factor author reads what changed between contract versions. */
export const CONTRACT_CHANGELOG = 'docs/factor-contract-changelog.md#version-2';

/** What changed in each contract version, for a factor written for the one before (one line). */
const CHANGES: Record<number, string> = {
  2: 'every text a factor gives a person is now a message key of its own catalogue (messagesDir with an en.json holding <id>.label and <id>.description)',
};

function versionRefusal(factor: Factor<any>): string {
  const given = factor.apiVersion as unknown;
  if (given === FACTOR_API_VERSION - 1 && CHANGES[FACTOR_API_VERSION]) {
    return `factor ${factor.id}: written for contract version ${String(given)}; this Twofold speaks version ${FACTOR_API_VERSION}, where ${CHANGES[FACTOR_API_VERSION]} (see ${CONTRACT_CHANGELOG})`;
  }
  return `factor ${factor.id}: contract version ${String(given)}, expected ${FACTOR_API_VERSION} (see ${CONTRACT_CHANGELOG})`;
}

/** `factorId`: the factor at fault, when one is; `settings`: whether its FACTOR_SETTINGS entry is. */
export class FactorRegistryError extends Error {
  constructor(
    message: string,
    readonly factorId?: string,
    readonly settings = false,
  ) {
    super(message);
  }
}

/** Header names a route may declare: lower-case tokens, never the browser's cookies. */
const HEADER = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** A waiting factor and its own routes: each declared route has its handler and the reverse, with headers a route may read. */
function checkRoutes(factor: Factor<any>): void {
  if (factor.waits !== undefined && typeof factor.waits !== 'boolean') throw new FactorRegistryError(`factor ${factor.id}: waits is true or false`);
  const routes = factor.routes ?? {};
  for (const [route, handler] of [
    ['return', 'handleReturn'],
    ['callback', 'handleCallback'],
  ] as const) {
    const declared = routes[route];
    const handles = typeof factor[handler] === 'function';
    if (declared && !handles) throw new FactorRegistryError(`factor ${factor.id}: routes.${route} needs ${handler}`);
    if (!declared && handles) throw new FactorRegistryError(`factor ${factor.id}: ${handler} needs routes.${route} (with the headers it reads)`);
    for (const header of declared?.headers ?? []) {
      if (typeof header !== 'string' || !HEADER.test(header) || header === 'cookie' || header === 'set-cookie') {
        throw new FactorRegistryError(
          `factor ${factor.id}: routes.${route} header ${JSON.stringify(header)} must be a lower-case header name other than cookie`,
        );
      }
    }
  }
  for (const route of Object.keys(routes))
    if (route !== 'return' && route !== 'callback')
      throw new FactorRegistryError(`factor ${factor.id}: unknown route ${JSON.stringify(route)} (return, callback)`);
}

/** A factor's English messages (required: the fallback of every language), each key its own. */
function englishMessages(factor: Factor<any>): Record<string, string> {
  const file = path.join(factor.messagesDir ?? '', 'en.json');
  if (typeof factor.messagesDir !== 'string' || !fs.existsSync(file))
    throw new FactorRegistryError(`factor ${factor.id}: no English messages (messagesDir with an en.json)`, factor.id);
  let messages: Record<string, Record<string, string>>;
  try {
    messages = Catalogue.readFolder(factor.messagesDir);
  } catch (err) {
    throw new FactorRegistryError(`factor ${factor.id}: ${(err as Error).message}`, factor.id);
  }
  for (const [language, entries] of Object.entries(messages)) {
    const foreign = Object.keys(entries).find((key) => !key.startsWith(`${factor.id}.`));
    if (foreign) throw new FactorRegistryError(`factor ${factor.id}: message ${foreign} (${language}.json) must begin with "${factor.id}."`, factor.id);
  }
  return messages.en!;
}

export interface RegisteredFactor<S = unknown> {
  factor: Factor<S>;
  settings: S;
}

/** A factor that said it cannot work here, and why (its `enabled`). */
export interface OffFactor<S = unknown> extends RegisteredFactor<S> {
  reason: string;
}

export class FactorRegistry {
  /** Every factor given, validated, in order. */
  readonly #known = new Map<string, RegisteredFactor<any>>();
  /** Those that are on: offered and accepted. */
  readonly #factors = new Map<string, RegisteredFactor<any>>();
  readonly #off = new Map<string, OffFactor<any>>();

  /**
   * `environment`: what the deployment offers, for each factor's `enabled`; without it (tests, tools
   * that only read descriptors) every factor is on.
   */
  constructor(factors: Factor<any>[] = BUILT_IN_FACTORS, settings: Record<string, unknown> = {}, environment?: FactorEnvironment) {
    // A typo in the settings of a factor must not silently fall back to defaults.
    for (const id of Object.keys(settings)) {
      if (!factors.some((f) => f.id === id))
        throw new FactorRegistryError(
          `settings given for unknown factor ${JSON.stringify(id)} (known: ${factors.map((f) => f.id).join(', ')})`,
          undefined,
          true,
        );
    }
    for (const factor of factors) {
      const refuse = (message: string) => new FactorRegistryError(message, factor.id);
      if (factor.apiVersion !== FACTOR_API_VERSION) throw refuse(versionRefusal(factor));
      if (typeof factor.id !== 'string' || !/^[a-z][a-z0-9-]{1,31}$/.test(factor.id))
        throw refuse(`factor id ${JSON.stringify(factor.id)} must be lower-case letters, digits and dashes`);
      const missing = (['beginEnrollment', 'finishEnrollment', 'beginChallenge', 'verify'] as const).filter((m) => typeof factor[m] !== 'function');
      if (missing.length) throw refuse(`factor ${factor.id}: does not implement ${missing.join(', ')}`);
      if (!Array.isArray(factor.kinds) || !Array.isArray(factor.amr)) throw refuse(`factor ${factor.id}: declares its kinds and its amr values as lists`);
      if (typeof factor.settings?.safeParse !== 'function') throw refuse(`factor ${factor.id}: settings must be a zod schema (with defaults)`);
      if (typeof factor.viewsDir !== 'string') throw refuse(`factor ${factor.id}: viewsDir must name its views folder`);
      if (factor.id === 'password' || this.#known.has(factor.id)) throw refuse(`factor id ${factor.id} is registered twice`);
      for (const amr of factor.amr)
        if (!(AMR_VALUES as readonly string[]).includes(amr)) throw refuse(`factor ${factor.id}: amr value ${amr} is not registered in RFC 8176`);
      if (!factor.kinds.length) throw refuse(`factor ${factor.id}: declares no kind`);
      for (const view of ['challenge.hbs', 'enroll.hbs', ...(factor.firstFactor ? ['login.hbs'] : [])]) {
        if (!fs.existsSync(path.join(factor.viewsDir, view))) throw refuse(`factor ${factor.id}: missing view ${view} in ${factor.viewsDir}`);
      }
      if (factor.firstFactor && (typeof factor.beginFirstFactor !== 'function' || typeof factor.identify !== 'function')) {
        throw refuse(`factor ${factor.id}: a first factor implements beginFirstFactor and identify`);
      }
      if (factor.firstFactor && factor.recoveryOnly) throw refuse(`factor ${factor.id}: a recovery-only factor cannot be a first factor`);
      if (Object.hasOwn(factor, 'offerAfterFirstEnrolment')) throw refuse(`factor ${factor.id}: offerAfterFirstEnrolment is spelt offerAfterFirstEnrollment`);
      checkRoutes(factor);
      if (factor.offerAfterFirstEnrollment) {
        // The sign-in offers one page after a first enrolment; two candidates would need an order nobody chose.
        const other = [...this.#known.values()].find((r) => r.factor.offerAfterFirstEnrollment);
        if (other) throw refuse(`factor ${factor.id}: only one factor may be offered after a first enrolment (${other.factor.id} is)`);
        if (factor.firstFactor) throw refuse(`factor ${factor.id}: a first factor is not offered after a first enrolment`);
      }
      const english = englishMessages(factor);
      for (const key of [`${factor.id}.label`, `${factor.id}.description`]) {
        if (!Object.hasOwn(english, key)) throw refuse(`factor ${factor.id}: its English messages (${path.join(factor.messagesDir, 'en.json')}) lack ${key}`);
      }
      if (factor.enrollPage && (typeof factor.enrollPage.title?.key !== 'string' || typeof factor.enrollPage.intro !== 'boolean')) {
        throw refuse(`factor ${factor.id}: enrollPage needs a title (a message key) and says whether the introduction is shown (intro: true or false)`);
      }
      if (factor.enrollPage && !Object.hasOwn(english, factor.enrollPage.title.key)) {
        throw refuse(`factor ${factor.id}: enrollPage's title ${factor.enrollPage.title.key} is not one of its English messages`);
      }
      for (const [name, file] of Object.entries(factor.assets ?? {})) {
        if (!/^[a-z0-9][a-z0-9.-]*\.(js|css)$/.test(name))
          throw refuse(`factor ${factor.id}: asset name ${JSON.stringify(name)} must be a lower-case .js or .css file name`);
        if (!fs.existsSync(file)) throw refuse(`factor ${factor.id}: asset ${name} not found at ${file}`);
        const owner = [...this.#known.values()].find((r) => r.factor.assets && Object.hasOwn(r.factor.assets, name));
        if (owner && owner.factor.assets![name] !== file)
          throw refuse(`factor ${factor.id}: asset ${name} is also served by ${owner.factor.id} from another file`);
      }
      if (factor.enabled !== undefined && typeof factor.enabled !== 'function') throw refuse(`factor ${factor.id}: enabled must be a function`);
      const parsed = parseSettings(factor.settings, settings[factor.id] ?? undefined);
      if (!parsed.ok) throw new FactorRegistryError(`factor ${factor.id} settings: ${parsed.problem}`, factor.id, true);
      const registered: RegisteredFactor<any> = { factor, settings: parsed.settings };
      this.#known.set(factor.id, registered);
      const verdict = environment && factor.enabled ? factor.enabled(parsed.settings, environment) : true;
      if (verdict === true) this.#factors.set(factor.id, registered);
      else if (typeof verdict === 'string' && verdict.trim()) this.#off.set(factor.id, { ...registered, reason: verdict.trim() });
      else throw refuse(`factor ${factor.id}: enabled returned ${JSON.stringify(verdict)}; it returns true, or why the factor is off`);
    }
  }

  /** A factor that is on. */
  get(id: string): RegisteredFactor<any> | undefined {
    return this.#factors.get(id);
  }

  /** The factors that are on, in page order. */
  all(): RegisteredFactor<any>[] {
    return [...this.#factors.values()];
  }

  ids(): string[] {
    return [...this.#factors.keys()];
  }

  /** The factors that said they cannot work here, with why. */
  off(): OffFactor<any>[] {
    return [...this.#off.values()];
  }

  /** Every factor given, on or off, in order: what a policy, a theme or the catalogue may name. */
  known(): Factor<any>[] {
    return [...this.#known.values()].map((r) => r.factor);
  }

  /** A known factor (on or off) with its settings. */
  getKnown(id: string): RegisteredFactor<any> | undefined {
    return this.#known.get(id);
  }

  /** A known factor's settings as they may be shown: its secret fields redacted. */
  shownSettings(id: string): unknown {
    const r = this.#known.get(id);
    return r && redactSettings(r.settings, secretPaths(r.factor.settings));
  }

  /** Factors that can sign a user in on their own (passkeys), in page order. */
  firstFactors(): RegisteredFactor<any>[] {
    return this.all().filter((r) => r.factor.firstFactor);
  }

  /** The factor offered once after a first enrolment (backup codes), if one is on. */
  offeredAfterFirstEnrollment(): RegisteredFactor<any> | undefined {
    return this.all().find((r) => r.factor.offerAfterFirstEnrollment);
  }

  /** Every factor's browser files, by the name they are served under at /assets/. */
  assets(): Record<string, string> {
    return Object.assign({}, ...this.all().map((r) => r.factor.assets ?? {}));
  }
}

/** Every factor whose messages and views a theme may name: the built-in ones (listed in FACTORS or not) and every one loaded. */
export function knownFactors(registry: FactorRegistry): Factor<any>[] {
  return [...new Map([...BUILT_IN_FACTORS, ...registry.known()].map((f) => [f.id, f])).values()];
}
