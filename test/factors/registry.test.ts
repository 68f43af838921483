/**
 * The factor registry refuses a broken factor or a bad setting at boot, with a
 * message naming the factor and what is wrong, so a bad plugin stops the start
 * instead of a user's sign-in. And every registered factor is checked by the
 * contract kit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import { BUILT_IN_FACTORS, CONTRACT_CHANGELOG, FactorRegistry, FactorRegistryError } from '../../factors/registry.ts';
import { BUILT_IN_FACTOR_IDS } from '../../factors/built-in.ts';
import { REDACTED, secretPaths } from '../../factors/settings.ts';
import { FACTOR_API_VERSION, type Factor, type FactorEnvironment } from '../../factors/types.ts';
import totp from '../../factors/totp/index.ts';
import backupCodes from '../../factors/backup-codes/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, StartupError } from '../../src/bootstrap.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Messages of a factor named `variant` (its label and description, and an enrolment page title). */
const VARIANT_MESSAGES = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-messages-'));
fs.writeFileSync(
  path.join(VARIANT_MESSAGES, 'en.json'),
  JSON.stringify({ 'variant.label': 'Variant', 'variant.description': 'A copy of TOTP', 'variant.keep': 'Keep these' }),
);
afterAll(() => fs.rmSync(VARIANT_MESSAGES, { recursive: true, force: true }));

/** A copy of TOTP with some fields changed: a plugin with one mistake. */
function variant(changes: Partial<Factor<any>>): Factor<any> {
  return { ...totp, id: 'variant', messagesDir: VARIANT_MESSAGES, ...changes } as Factor<any>;
}

/** A messages folder with these files (`en.json`: …). */
function messagesFolder(files: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(VARIANT_MESSAGES, 'm-'));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

function refusal(factors: Factor<any>[], settings: Record<string, unknown> = {}, environment?: FactorEnvironment): string {
  try {
    new FactorRegistry(factors, settings, environment);
  } catch (err) {
    expect(err).toBeInstanceOf(FactorRegistryError);
    return (err as Error).message;
  }
  throw new Error('the registry accepted it');
}

describe('FactorRegistry', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-views-'));
    fs.writeFileSync(path.join(tmp, 'challenge.hbs'), '<input name="code">');
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('accepts the registered factors with their default settings', () => {
    const registry = new FactorRegistry();
    expect(registry.ids()).toEqual(BUILT_IN_FACTORS.map((f) => f.id));
    expect(registry.get('totp')!.settings).toEqual({ algorithm: 'SHA1', digits: 6, period: 30, window: 1 });
    expect(registry.get('backup-codes')!.settings).toEqual({ count: 10, warnAt: 2, offerAgain: true });
    expect(registry.get('nope')).toBeUndefined();
  });

  test("parses an operator's settings, filling the defaults", () => {
    const registry = new FactorRegistry(BUILT_IN_FACTORS, { totp: { digits: 8, algorithm: 'SHA256' }, 'backup-codes': { count: 12 } });
    expect(registry.get('totp')!.settings).toEqual({ algorithm: 'SHA256', digits: 8, period: 30, window: 1 });
    expect(registry.get('backup-codes')!.settings).toEqual({ count: 12, warnAt: 2, offerAgain: true });
  });

  test('refuses an id registered twice', () => {
    expect(refusal([totp, backupCodes, totp])).toBe('factor id totp is registered twice');
    expect(refusal([variant({ id: 'password' })])).toBe('factor id password is registered twice');
  });

  test('refuses a malformed id', () => {
    expect(refusal([variant({ id: 'Has Spaces' })])).toMatch(/factor id "Has Spaces" must be lower-case letters, digits and dashes/);
  });

  test('refuses another contract version, saying what changed and where the changelog is', () => {
    // Version 1 named itself and failed in English strings: such a factor would show a page without words.
    expect(refusal([variant({ apiVersion: 1 as unknown as typeof FACTOR_API_VERSION })])).toBe(
      `factor variant: written for contract version 1; this Twofold speaks version ${FACTOR_API_VERSION}, where every text a factor gives a person is now a message key of its own catalogue (messagesDir with an en.json holding <id>.label and <id>.description) (see ${CONTRACT_CHANGELOG})`,
    );
    expect(refusal([variant({ apiVersion: undefined as unknown as typeof FACTOR_API_VERSION })])).toBe(
      `factor variant: contract version undefined, expected ${FACTOR_API_VERSION} (see ${CONTRACT_CHANGELOG})`,
    );
    // The changelog it points to exists.
    const [file, anchor] = CONTRACT_CHANGELOG.split('#');
    const headings = fs
      .readFileSync(path.join(HERE, '../..', file!), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('#'));
    expect(
      headings.map((h) =>
        h
          .replace(/^#+\s*/, '')
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    ).toContain(anchor);
  });

  test('refuses what is not a factor at all, naming what it lacks', () => {
    expect(refusal([variant({ verify: undefined as never, beginChallenge: 'no' as never })])).toBe('factor variant: does not implement beginChallenge, verify');
    expect(refusal([variant({ amr: 'otp' as never })])).toBe('factor variant: declares its kinds and its amr values as lists');
    expect(refusal([variant({ settings: { digits: 6 } as never })])).toBe('factor variant: settings must be a zod schema (with defaults)');
    expect(refusal([variant({ id: undefined as never })])).toBe('factor id undefined must be lower-case letters, digits and dashes');
  });

  test('refuses an amr value not registered in RFC 8176', () => {
    expect(refusal([variant({ amr: ['otp', 'magic' as never] })])).toBe('factor variant: amr value magic is not registered in RFC 8176');
  });

  test('refuses a factor that declares no kind', () => {
    expect(refusal([variant({ kinds: [] })])).toBe('factor variant: declares no kind');
  });

  test('refuses a missing view, naming it and the folder', () => {
    expect(refusal([variant({ viewsDir: tmp })])).toBe(`factor variant: missing view enroll.hbs in ${tmp}`);
    expect(refusal([variant({ viewsDir: path.join(tmp, 'absent') })])).toMatch(/factor variant: missing view challenge\.hbs/);
  });

  test('refuses bad settings with the factor, the field and what is allowed', () => {
    expect(refusal(BUILT_IN_FACTORS, { totp: { digits: 7 } })).toBe('factor totp settings: digits: Invalid option: expected one of 6|8');
    expect(refusal(BUILT_IN_FACTORS, { totp: { algorithm: 'MD5' } })).toMatch(/^factor totp settings: algorithm: .*"SHA1"\|"SHA256"\|"SHA512"/);
    expect(refusal(BUILT_IN_FACTORS, { totp: { period: 5 } })).toMatch(/^factor totp settings: period: Too small: expected number to be >=15/);
    expect(refusal(BUILT_IN_FACTORS, { 'backup-codes': { count: 2 } })).toMatch(/^factor backup-codes settings: count: Too small/);
    expect(refusal(BUILT_IN_FACTORS, { totp: 'eight digits' })).toMatch(/^factor totp settings: \(root\): .*expected object/);
  });

  test('offers at most one factor after a first enrolment, never a first factor; an enrolment page says its title', () => {
    expect(new FactorRegistry().offeredAfterFirstEnrollment()?.factor.id).toBe('backup-codes');
    expect(new FactorRegistry([totp]).offeredAfterFirstEnrollment()).toBeUndefined();
    expect(refusal([backupCodes, variant({ offerAfterFirstEnrollment: true })])).toBe(
      'factor variant: only one factor may be offered after a first enrolment (backup-codes is)',
    );
    expect(
      refusal([
        variant({
          offerAfterFirstEnrollment: true,
          firstFactor: true,
          beginFirstFactor: async () => ({ partial: 'variant/login', data: {} }),
          identify: () => ({ ok: true, lookupKey: 'k' }),
          viewsDir: path.join(HERE, '../../factors/passkey/views'),
        }),
      ]),
    ).toBe('factor variant: a first factor is not offered after a first enrolment');
    expect(refusal([variant({ enrollPage: { title: 'Keep these', intro: false } as never })])).toMatch(
      /^factor variant: enrollPage needs a title \(a message key\)/,
    );
    expect(refusal([variant({ enrollPage: { title: { key: 'variant.keep' } } as never })])).toMatch(
      /^factor variant: enrollPage needs a title \(a message key\) and says whether the introduction is shown/,
    );
    expect(refusal([variant({ enrollPage: { title: { key: 'variant.kept' }, intro: false } })])).toBe(
      "factor variant: enrollPage's title variant.kept is not one of its English messages",
    );
    expect(() => new FactorRegistry([variant({ enrollPage: { title: { key: 'variant.keep' }, intro: false } })])).not.toThrow();
  });

  test('refuses a factor without English messages, its label or its description, or with keys not its own', () => {
    expect(refusal([variant({ messagesDir: path.join(tmp, 'absent') })])).toBe('factor variant: no English messages (messagesDir with an en.json)');
    expect(refusal([variant({ messagesDir: undefined as never })])).toBe('factor variant: no English messages (messagesDir with an en.json)');
    const noDescription = messagesFolder({ 'en.json': { 'variant.label': 'Variant' } });
    expect(refusal([variant({ messagesDir: noDescription })])).toBe(
      `factor variant: its English messages (${path.join(noDescription, 'en.json')}) lack variant.description`,
    );
    const foreign = messagesFolder({ 'en.json': { 'variant.label': 'Variant', 'variant.description': 'd' }, 'de.json': { 'totp.label': 'Gestohlen' } });
    expect(refusal([variant({ messagesDir: foreign })])).toBe('factor variant: message totp.label (de.json) must begin with "variant."');
    expect(refusal([variant({ messagesDir: messagesFolder({ 'en.json': '{"variant.label": ' }) })])).toMatch(/^factor variant: .*en\.json: /);
  });

  test('nothing outside factors/ names a factor: the interaction code and pages, and the core (src/), get what differs from descriptors', () => {
    const root = path.join(HERE, '../..');
    const files = (dir: string): string[] =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : /\.(ts|js|hbs|json)$/.test(e.name) ? [path.join(dir, e.name)] : []));
    const checked = [...files(path.join(root, 'interactions')), ...files(path.join(root, 'src'))];
    expect(checked.length).toBeGreaterThan(100);
    for (const file of checked) {
      const text = fs.readFileSync(file, 'utf8');
      const where = path.relative(root, file);
      for (const id of BUILT_IN_FACTOR_IDS) {
        expect({ where, names: new RegExp(`['"\`]${id}['"\`]`).test(text) ? id : false }).toEqual({ where, names: false });
      }
    }
  });

  test('the built-in ids FACTORS defaults to are the built-in factors, in their order', () => {
    expect(BUILT_IN_FACTORS.map((f) => f.id)).toEqual([...BUILT_IN_FACTOR_IDS]);
  });

  test('asks each factor whether it can work here: one that cannot is off, with its reason, known but neither offered nor accepted', () => {
    const emailOnly = new FactorRegistry(BUILT_IN_FACTORS, {}, { channels: ['email'] });
    expect(emailOnly.ids()).toEqual(['totp', 'webauthn', 'passkey', 'backup-codes', 'email-code']);
    expect(emailOnly.off().map((o) => [o.factor.id, o.reason])).toEqual([['sms-code', 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET']]);
    expect(emailOnly.get('sms-code')).toBeUndefined();
    expect(emailOnly.known().map((f) => f.id)).toEqual([...BUILT_IN_FACTOR_IDS]);
    const none = new FactorRegistry(BUILT_IN_FACTORS, {}, { channels: [] });
    expect(none.off().map((o) => o.factor.id)).toEqual(['email-code', 'sms-code']);
    expect(none.off()[0]!.reason).toMatch(/^no email delivery: set SMTP_URL/);
    expect(new FactorRegistry(BUILT_IN_FACTORS, {}, { channels: ['email', 'sms', 'voice'] }).off()).toEqual([]);
    // Without an environment (tests, tools reading descriptors) every factor is on.
    expect(new FactorRegistry(BUILT_IN_FACTORS).ids()).toEqual([...BUILT_IN_FACTOR_IDS]);
  });

  test('a factor that is off still has its settings checked, and decides from them', () => {
    expect(refusal(BUILT_IN_FACTORS, { 'sms-code': { voice: 'yes' } }, { channels: [] })).toMatch(/^factor sms-code settings: voice: /);
    const eightDigits = variant({ enabled: (s: { digits: number }) => s.digits === 8 || 'needs 8 digits' });
    expect(new FactorRegistry([eightDigits], {}, { channels: [] }).off().map((o) => o.reason)).toEqual(['needs 8 digits']);
    expect(new FactorRegistry([eightDigits], { variant: { digits: 8 } }, { channels: [] }).ids()).toEqual(['variant']);
    expect(refusal([variant({ enabled: () => false as never })], {}, { channels: [] })).toBe(
      'factor variant: enabled returned false; it returns true, or why the factor is off',
    );
    expect(refusal([variant({ enabled: () => ' ' })], {}, { channels: [] })).toBe(
      'factor variant: enabled returned " "; it returns true, or why the factor is off',
    );
  });

  test('never shows a secret setting: not in a refusal, nor in the settings it shows', () => {
    const shape = z
      .object({
        apiKey: z
          .string()
          // A factor's own message may quote the value; for a secret field it is not used.
          .min(32, { error: (issue) => `too short: ${String(issue.input)}` })
          .meta({ secret: true })
          .optional(),
        region: z.enum(['eu', 'us']).default('eu'),
        hooks: z.array(z.object({ url: z.string(), token: z.string().meta({ secret: true }) })).default([]),
        nested: z.object({ pepper: z.string().optional() }).meta({ secret: true }).default({}),
      })
      .strict()
      .default({ region: 'eu', hooks: [], nested: {} });
    expect(secretPaths(shape)).toEqual([['apiKey'], ['hooks', '*', 'token'], ['nested']]);
    const secretive = variant({ settings: shape as never });
    const key = 'sk_live_short_key';
    const message = refusal([secretive], { variant: { apiKey: key } });
    expect(message).toBe('factor variant settings: apiKey: Too small: expected string to have >=32 characters (a secret: its value is not shown)');
    // A field that is not secret keeps the factor's own words; a mistyped name is named, its value never.
    expect(refusal([secretive], { variant: { region: 'mars' } })).toBe('factor variant settings: region: Invalid option: expected one of "eu"|"us"');
    expect(refusal([secretive], { variant: { apikey: key } })).not.toContain(key);
    const long = 'sk_live_0123456789abcdefghijklmnopqrstuv';
    const registry = new FactorRegistry([secretive], {
      variant: { apiKey: long, hooks: [{ url: 'https://h.example', token: 't0k3n' }], nested: { pepper: 'salt' } },
    });
    expect(registry.get('variant')!.settings.apiKey).toBe(long);
    expect(registry.shownSettings('variant')).toEqual({
      apiKey: REDACTED,
      region: 'eu',
      hooks: [{ url: 'https://h.example', token: REDACTED }],
      nested: REDACTED,
    });
    // Unset, a secret is not shown as set.
    expect(new FactorRegistry([secretive]).shownSettings('variant')).toEqual({ region: 'eu', hooks: [], nested: REDACTED });
  });

  test('every registered factor is checked by the contract kit', () => {
    for (const factor of BUILT_IN_FACTORS) {
      const file = path.join(HERE, 'contract', `${factor.id}.test.ts`);
      expect({ factor: factor.id, hasContractTest: fs.existsSync(file) }).toEqual({ factor: factor.id, hasContractTest: true });
      expect(fs.readFileSync(file, 'utf8')).toContain(`describeFactorContract('${factor.id}'`);
    }
  });
});

describe('bad factor settings stop the start', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('pglite');
  });
  afterAll(async () => {
    await database?.close();
  });

  test('openServices refuses FACTOR_SETTINGS that the registry refuses, naming the key', async () => {
    const config = testConfig(39_998, { FACTOR_SETTINGS: '{"totp":{"digits":7}}' });
    const start = openServices(config, { handle: database, migrate: true });
    await expect(start).rejects.toBeInstanceOf(StartupError);
    await expect(start).rejects.toThrow('FACTOR_SETTINGS: factor totp settings: digits: Invalid option: expected one of 6|8');
  });
});
