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
import { FACTORS, FactorRegistry, FactorRegistryError } from '../../factors/registry.ts';
import { FACTOR_API_VERSION, type Factor } from '../../factors/types.ts';
import totp from '../../factors/totp/index.ts';
import backupCodes from '../../factors/backup-codes/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, StartupError } from '../../src/bootstrap.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Messages of a factor named `variant` (its label and description, and an enrolment page title). */
const VARIANT_MESSAGES = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-messages-'));
fs.writeFileSync(path.join(VARIANT_MESSAGES, 'en.json'), JSON.stringify({ 'variant.label': 'Variant', 'variant.description': 'A copy of TOTP', 'variant.keep': 'Keep these' }));
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

function refusal(factors: Factor<any>[], settings: Record<string, unknown> = {}): string {
  try {
    new FactorRegistry(factors, settings);
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
    expect(registry.ids()).toEqual(FACTORS.map((f) => f.id));
    expect(registry.get('totp')!.settings).toEqual({ algorithm: 'SHA1', digits: 6, period: 30, window: 1 });
    expect(registry.get('backup-codes')!.settings).toEqual({ count: 10, warnAt: 2, offerAgain: true });
    expect(registry.get('nope')).toBeUndefined();
  });

  test("parses an operator's settings, filling the defaults", () => {
    const registry = new FactorRegistry(FACTORS, { totp: { digits: 8, algorithm: 'SHA256' }, 'backup-codes': { count: 12 } });
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

  test('refuses another contract version', () => {
    // Version 1 named itself and failed in English strings: such a factor would show a page without words.
    expect(refusal([variant({ apiVersion: 1 as unknown as typeof FACTOR_API_VERSION })])).toBe(`factor variant: contract version 1, expected ${FACTOR_API_VERSION}`);
    expect(refusal([variant({ apiVersion: undefined as unknown as typeof FACTOR_API_VERSION })])).toMatch(/factor variant: contract version undefined/);
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
    expect(refusal(FACTORS, { totp: { digits: 7 } })).toBe('factor totp settings: digits: Invalid option: expected one of 6|8');
    expect(refusal(FACTORS, { totp: { algorithm: 'MD5' } })).toMatch(/^factor totp settings: algorithm: .*"SHA1"\|"SHA256"\|"SHA512"/);
    expect(refusal(FACTORS, { totp: { period: 5 } })).toMatch(/^factor totp settings: period: Too small: expected number to be >=15/);
    expect(refusal(FACTORS, { 'backup-codes': { count: 2 } })).toMatch(/^factor backup-codes settings: count: Too small/);
    expect(refusal(FACTORS, { totp: 'eight digits' })).toMatch(/^factor totp settings: \(root\): .*expected object/);
  });

  test('offers at most one factor after a first enrolment, never a first factor; an enrolment page says its title', () => {
    expect(new FactorRegistry().offeredAfterFirstEnrollment()?.factor.id).toBe('backup-codes');
    expect(new FactorRegistry([totp]).offeredAfterFirstEnrollment()).toBeUndefined();
    expect(refusal([backupCodes, variant({ offerAfterFirstEnrollment: true })])).toBe('factor variant: only one factor may be offered after a first enrolment (backup-codes is)');
    expect(refusal([variant({ offerAfterFirstEnrollment: true, firstFactor: true, beginFirstFactor: async () => ({ partial: 'variant/login', data: {} }), identify: () => ({ ok: true, lookupKey: 'k' }), viewsDir: path.join(HERE, '../../factors/passkey/views') })])).toBe(
      'factor variant: a first factor is not offered after a first enrolment',
    );
    expect(refusal([variant({ enrollPage: { title: 'Keep these', intro: false } as never })])).toMatch(/^factor variant: enrollPage needs a title \(a message key\)/);
    expect(refusal([variant({ enrollPage: { title: { key: 'variant.keep' } } as never })])).toMatch(/^factor variant: enrollPage needs a title \(a message key\) and says whether the introduction is shown/);
    expect(refusal([variant({ enrollPage: { title: { key: 'variant.kept' }, intro: false } })])).toBe("factor variant: enrollPage's title variant.kept is not one of its English messages");
    expect(() => new FactorRegistry([variant({ enrollPage: { title: { key: 'variant.keep' }, intro: false } })])).not.toThrow();
  });

  test('refuses a factor without English messages, its label or its description, or with keys not its own', () => {
    expect(refusal([variant({ messagesDir: path.join(tmp, 'absent') })])).toBe('factor variant: no English messages (messagesDir with an en.json)');
    expect(refusal([variant({ messagesDir: undefined as never })])).toBe('factor variant: no English messages (messagesDir with an en.json)');
    const noDescription = messagesFolder({ 'en.json': { 'variant.label': 'Variant' } });
    expect(refusal([variant({ messagesDir: noDescription })])).toBe(`factor variant: its English messages (${path.join(noDescription, 'en.json')}) lack variant.description`);
    const foreign = messagesFolder({ 'en.json': { 'variant.label': 'Variant', 'variant.description': 'd' }, 'de.json': { 'totp.label': 'Gestohlen' } });
    expect(refusal([variant({ messagesDir: foreign })])).toBe('factor variant: message totp.label (de.json) must begin with "variant."');
    expect(refusal([variant({ messagesDir: messagesFolder({ 'en.json': '{"variant.label": ' }) })])).toMatch(/^factor variant: .*en\.json: /);
  });

  test('the interaction code and pages name no factor: what differs between factors comes from descriptors', () => {
    const dir = path.join(HERE, '../../interactions');
    const files = [...fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)), ...fs.readdirSync(path.join(dir, 'views')).map((f) => path.join(dir, 'views', f))];
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      for (const factor of FACTORS) {
        expect({ file: path.basename(file), names: new RegExp(`['"\`]${factor.id}['"\`]`).test(text) }).toEqual({ file: path.basename(file), names: false });
      }
    }
  });

  test('every registered factor is checked by the contract kit', () => {
    for (const factor of FACTORS) {
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
