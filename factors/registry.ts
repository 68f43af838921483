/**
 * The factor registry: one line per factor. It validates every factor at boot
 * (unique ids, contract version, registered amr values, views present, English
 * messages with its label and description, settings parsed with their
 * defaults) so a broken plugin stops the start instead of failing a user's
 * sign-in. The messages themselves are compiled with the catalogue, at start too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Catalogue } from '../src/i18n/catalogue.ts';
import { AMR_VALUES, FACTOR_API_VERSION, type Factor } from './types.ts';
import totp from './totp/index.ts';
import backupCodes from './backup-codes/index.ts';
import emailCode from './email-code/index.ts';
import smsCode from './sms-code/index.ts';
import webauthn from './webauthn/index.ts';
import passkey from './passkey/index.ts';

/** Every factor Twofold offers, in the order pages list them. */
export const FACTORS: Factor<any>[] = [
  totp,
  webauthn,
  passkey,
  backupCodes,
  emailCode,
  smsCode,
];

export class FactorRegistryError extends Error {}

/** Header names a route may declare: lower-case tokens, never the browser's cookies. */
const HEADER = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** A waiting factor and its own routes: each declared route has its handler and the reverse, with headers a route may read. */
function checkRoutes(factor: Factor<any>): void {
  if (factor.waits !== undefined && typeof factor.waits !== 'boolean') throw new FactorRegistryError(`factor ${factor.id}: waits is true or false`);
  const routes = factor.routes ?? {};
  for (const [route, handler] of [['return', 'handleReturn'], ['callback', 'handleCallback']] as const) {
    const declared = routes[route];
    const handles = typeof factor[handler] === 'function';
    if (declared && !handles) throw new FactorRegistryError(`factor ${factor.id}: routes.${route} needs ${handler}`);
    if (!declared && handles) throw new FactorRegistryError(`factor ${factor.id}: ${handler} needs routes.${route} (with the headers it reads)`);
    for (const header of declared?.headers ?? []) {
      if (typeof header !== 'string' || !HEADER.test(header) || header === 'cookie' || header === 'set-cookie') {
        throw new FactorRegistryError(`factor ${factor.id}: routes.${route} header ${JSON.stringify(header)} must be a lower-case header name other than cookie`);
      }
    }
  }
  for (const route of Object.keys(routes)) if (route !== 'return' && route !== 'callback') throw new FactorRegistryError(`factor ${factor.id}: unknown route ${JSON.stringify(route)} (return, callback)`);
}

/** A factor's English messages (required: the fallback of every language), each key its own. */
function englishMessages(factor: Factor<any>): Record<string, string> {
  const file = path.join(factor.messagesDir ?? '', 'en.json');
  if (typeof factor.messagesDir !== 'string' || !fs.existsSync(file)) throw new FactorRegistryError(`factor ${factor.id}: no English messages (messagesDir with an en.json)`);
  let messages: Record<string, Record<string, string>>;
  try {
    messages = Catalogue.readFolder(factor.messagesDir);
  } catch (err) {
    throw new FactorRegistryError(`factor ${factor.id}: ${(err as Error).message}`);
  }
  for (const [language, entries] of Object.entries(messages)) {
    const foreign = Object.keys(entries).find((key) => !key.startsWith(`${factor.id}.`));
    if (foreign) throw new FactorRegistryError(`factor ${factor.id}: message ${foreign} (${language}.json) must begin with "${factor.id}."`);
  }
  return messages.en!;
}

export interface RegisteredFactor<S = unknown> {
  factor: Factor<S>;
  settings: S;
}

export class FactorRegistry {
  readonly #factors = new Map<string, RegisteredFactor<any>>();

  constructor(factors: Factor<any>[] = FACTORS, settings: Record<string, unknown> = {}) {
    // A typo in the settings of a factor must not silently fall back to defaults.
    for (const id of Object.keys(settings)) {
      if (!factors.some((f) => f.id === id)) throw new FactorRegistryError(`settings given for unknown factor ${JSON.stringify(id)} (known: ${factors.map((f) => f.id).join(', ')})`);
    }
    for (const factor of factors) {
      if (factor.apiVersion !== FACTOR_API_VERSION) throw new FactorRegistryError(`factor ${factor.id}: contract version ${factor.apiVersion}, expected ${FACTOR_API_VERSION}`);
      if (!/^[a-z][a-z0-9-]{1,31}$/.test(factor.id)) throw new FactorRegistryError(`factor id ${JSON.stringify(factor.id)} must be lower-case letters, digits and dashes`);
      if (factor.id === 'password' || this.#factors.has(factor.id)) throw new FactorRegistryError(`factor id ${factor.id} is registered twice`);
      for (const amr of factor.amr) if (!(AMR_VALUES as readonly string[]).includes(amr)) throw new FactorRegistryError(`factor ${factor.id}: amr value ${amr} is not registered in RFC 8176`);
      if (!factor.kinds.length) throw new FactorRegistryError(`factor ${factor.id}: declares no kind`);
      for (const view of ['challenge.hbs', 'enroll.hbs', ...(factor.firstFactor ? ['login.hbs'] : [])]) {
        if (!fs.existsSync(path.join(factor.viewsDir, view))) throw new FactorRegistryError(`factor ${factor.id}: missing view ${view} in ${factor.viewsDir}`);
      }
      if (factor.firstFactor && (typeof factor.beginFirstFactor !== 'function' || typeof factor.identify !== 'function')) {
        throw new FactorRegistryError(`factor ${factor.id}: a first factor implements beginFirstFactor and identify`);
      }
      if (factor.firstFactor && factor.recoveryOnly) throw new FactorRegistryError(`factor ${factor.id}: a recovery-only factor cannot be a first factor`);
      if (Object.hasOwn(factor, 'offerAfterFirstEnrolment')) throw new FactorRegistryError(`factor ${factor.id}: offerAfterFirstEnrolment is spelt offerAfterFirstEnrollment`);
      checkRoutes(factor);
      if (factor.offerAfterFirstEnrollment) {
        // The sign-in offers one page after a first enrolment; two candidates would need an order nobody chose.
        const other = [...this.#factors.values()].find((r) => r.factor.offerAfterFirstEnrollment);
        if (other) throw new FactorRegistryError(`factor ${factor.id}: only one factor may be offered after a first enrolment (${other.factor.id} is)`);
        if (factor.firstFactor) throw new FactorRegistryError(`factor ${factor.id}: a first factor is not offered after a first enrolment`);
      }
      const english = englishMessages(factor);
      for (const key of [`${factor.id}.label`, `${factor.id}.description`]) {
        if (!Object.hasOwn(english, key)) throw new FactorRegistryError(`factor ${factor.id}: its English messages (${path.join(factor.messagesDir, 'en.json')}) lack ${key}`);
      }
      if (factor.enrollPage && (typeof factor.enrollPage.title?.key !== 'string' || typeof factor.enrollPage.intro !== 'boolean')) {
        throw new FactorRegistryError(`factor ${factor.id}: enrollPage needs a title (a message key) and says whether the introduction is shown (intro: true or false)`);
      }
      if (factor.enrollPage && !Object.hasOwn(english, factor.enrollPage.title.key)) {
        throw new FactorRegistryError(`factor ${factor.id}: enrollPage's title ${factor.enrollPage.title.key} is not one of its English messages`);
      }
      for (const [name, file] of Object.entries(factor.assets ?? {})) {
        if (!/^[a-z0-9][a-z0-9.-]*\.(js|css)$/.test(name)) throw new FactorRegistryError(`factor ${factor.id}: asset name ${JSON.stringify(name)} must be a lower-case .js or .css file name`);
        if (!fs.existsSync(file)) throw new FactorRegistryError(`factor ${factor.id}: asset ${name} not found at ${file}`);
        const owner = [...this.#factors.values()].find((r) => r.factor.assets && Object.hasOwn(r.factor.assets, name));
        if (owner && owner.factor.assets![name] !== file) throw new FactorRegistryError(`factor ${factor.id}: asset ${name} is also served by ${owner.factor.id} from another file`);
      }
      const parsed = factor.settings.safeParse(settings[factor.id] ?? undefined);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new FactorRegistryError(`factor ${factor.id} settings: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
      }
      this.#factors.set(factor.id, { factor, settings: parsed.data });
    }
  }

  get(id: string): RegisteredFactor<any> | undefined {
    return this.#factors.get(id);
  }

  all(): RegisteredFactor<any>[] {
    return [...this.#factors.values()];
  }

  ids(): string[] {
    return [...this.#factors.keys()];
  }

  /** Factors that can sign a user in on their own (passkeys), in page order. */
  firstFactors(): RegisteredFactor<any>[] {
    return this.all().filter((r) => r.factor.firstFactor);
  }

  /** The factor offered once after a first enrolment (backup codes), if one is registered. */
  offeredAfterFirstEnrollment(): RegisteredFactor<any> | undefined {
    return this.all().find((r) => r.factor.offerAfterFirstEnrollment);
  }

  /** Every factor's browser files, by the name they are served under at /assets/. */
  assets(): Record<string, string> {
    return Object.assign({}, ...this.all().map((r) => r.factor.assets ?? {}));
  }
}
