/**
 * FACTORS: what runs is configuration. A built-in id, a path (file or folder)
 * or a package name loads at boot; an entry that cannot be loaded, has no
 * default export, is not a factor, repeats an id, or was written for another
 * contract version stops the start with one line naming the entry. The
 * settings of the factors loaded are checked, their secrets never shown.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { FactorLoadError, isPathEntry, loadFactors } from '../../factors/load.ts';
import { BUILT_IN_FACTORS } from '../../factors/registry.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, StartupError } from '../../src/bootstrap.ts';
import { reportFactors } from '../../src/mfa/factor-report.ts';
import { GLOBAL, groupScope, savePolicy } from '../../src/policy/store.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { createGroup } from '../../src/accounts/groups.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PIN = path.join(ROOT, 'test/fixtures/factor-pin');
const PEPPER = 'pepper-0123456789abcdef';

/** A folder of small modules, each one way of getting an entry wrong. */
const BAD = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-factors-'));
afterAll(() => fs.rmSync(BAD, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(BAD, name)), { recursive: true });
  fs.writeFileSync(path.join(BAD, name), text);
  return path.join(BAD, name);
};

async function loadRefusal(entries: string[], cwd = ROOT): Promise<string> {
  try {
    await loadFactors(entries, { cwd });
  } catch (err) {
    expect(err).toBeInstanceOf(FactorLoadError);
    return (err as Error).message;
  }
  throw new Error('loaded');
}

describe('loadFactors', () => {
  test('tells a path from a package name', () => {
    for (const entry of ['./pin', '../pin', '/opt/pin.js', 'file:///opt/pin.js', '.', '..'])
      expect({ entry, path: isPathEntry(entry) }).toEqual({ entry, path: true });
    for (const entry of ['twofold-factor-pin', '@acme/twofold-push', 'totp', 'factors/pin.js'])
      expect({ entry, path: isPathEntry(entry) }).toEqual({ entry, path: false });
  });

  test('a built-in id is the built-in factor; a path is a module outside the tree, file or folder, relative to the working directory', async () => {
    const loaded = await loadFactors(['webauthn', 'totp', './test/fixtures/factor-pin'], { cwd: ROOT });
    expect(loaded.map((l) => [l.entry, l.factor.id])).toEqual([
      ['webauthn', 'webauthn'],
      ['totp', 'totp'],
      ['./test/fixtures/factor-pin', 'pin'],
    ]);
    expect(loaded[0]!.factor).toBe(BUILT_IN_FACTORS.find((f) => f.id === 'webauthn'));
    const [byFile] = await loadFactors(['./index.js'], { cwd: PIN });
    expect(byFile!.factor.id).toBe('pin');
    const [byUrl] = await loadFactors([pathToFileURL(path.join(PIN, 'index.js')).href]);
    expect(byUrl!.factor.id).toBe('pin');
    const [byAbsolute] = await loadFactors([PIN], { cwd: os.tmpdir() });
    expect(byAbsolute!.factor.id).toBe('pin');
  });

  test('a folder is read as a package: exports, main, then index.js', async () => {
    const pin = () => `export { default } from ${JSON.stringify(pathToFileURL(path.join(PIN, 'index.js')).href)};\n`;
    write('by-main/package.json', JSON.stringify({ main: 'lib/factor.js', type: 'module' }));
    write('by-main/lib/factor.js', pin());
    write('by-exports/package.json', JSON.stringify({ type: 'module', exports: { '.': { import: './esm/factor.js', require: './cjs/factor.cjs' } } }));
    write('by-exports/esm/factor.js', pin());
    write('by-index/package.json', JSON.stringify({ type: 'module' }));
    write('by-index/index.js', pin());
    for (const dir of ['by-main', 'by-exports', 'by-index']) expect((await loadFactors([`./${dir}`], { cwd: BAD }))[0]!.factor.id).toBe('pin');
    write('empty/README.md', 'nothing to load');
    expect(await loadRefusal(['./empty'], BAD)).toBe(
      `FACTORS entry ./empty: ${path.join(BAD, 'empty')} is a folder without a package.json naming its module (exports or main) or an index.js`,
    );
  });

  test('refuses, naming the entry: nothing there, no package of that name, a module that does not load', async () => {
    expect(await loadRefusal(['totp', './factors/nowhere'])).toBe(`FACTORS entry ./factors/nowhere: no file or folder ${path.join(ROOT, 'factors/nowhere')}`);
    expect(await loadRefusal(['twofold-factor-nowhere'])).toBe(
      'FACTORS entry twofold-factor-nowhere: not a built-in factor (totp, webauthn, passkey, backup-codes, email-code, sms-code), and no package of that name is installed beside Twofold (npm install twofold-factor-nowhere in its folder; a path begins with ./ or /)',
    );
    // A typo of a built-in id reads the same way: it is not one.
    expect(await loadRefusal(['totpp'])).toMatch(/^FACTORS entry totpp: not a built-in factor \(totp, /);
    write('broken.mjs', 'export default {;\n');
    expect(await loadRefusal(['./broken.mjs'], BAD)).toMatch(/^FACTORS entry \.\/broken\.mjs: cannot be loaded: /);
  });

  test('refuses a module without a default export, or whose default export is not a factor', async () => {
    write('named.mjs', 'export const factor = { id: "named" };\n');
    expect(await loadRefusal(['./named.mjs'], BAD)).toBe('FACTORS entry ./named.mjs: its module has no default export (export default defineFactor({ … }))');
    write('string.mjs', 'export default "totp";\n');
    expect(await loadRefusal(['./string.mjs'], BAD)).toBe(
      'FACTORS entry ./string.mjs: its default export is not a factor (an object with an id, see docs/writing-a-factor.md)',
    );
    // A package that is not a factor at all (here: one Twofold itself uses).
    expect(await loadRefusal(['yaml'])).toBe('FACTORS entry yaml: its default export is not a factor (an object with an id, see docs/writing-a-factor.md)');
  });

  test('refuses two entries that are the same factor', async () => {
    write('totp-again.mjs', `export { default } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'factors/totp/index.ts')).href)};\n`);
    expect(await loadRefusal(['totp', './totp-again.mjs'], BAD)).toBe(
      'FACTORS entry ./totp-again.mjs: its factor id totp is also that of entry totp; each factor is listed once',
    );
  });
});

describe('FACTORS at start', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('pglite');
  });
  afterAll(async () => {
    await database?.close();
  });

  async function started(env: Record<string, string>) {
    return openServices(testConfig(39_997, env), { handle: database, migrate: true });
  }

  async function startRefusal(env: Record<string, string>): Promise<string> {
    try {
      const opened = await started(env);
      await opened.close();
    } catch (err) {
      expect(err).toBeInstanceOf(StartupError);
      return (err as Error).message;
    }
    throw new Error('started');
  }

  test('only what FACTORS lists runs, in its order; a factor from outside the tree runs beside the built-in ones', async () => {
    const opened = await started({ FACTORS: `./test/fixtures/factor-pin,totp`, FACTOR_SETTINGS: JSON.stringify({ pin: { pepper: PEPPER, length: 4 } }) });
    try {
      const { registry } = opened.services.factors;
      expect(registry.ids()).toEqual(['pin', 'totp']);
      expect(registry.get('pin')!.settings).toEqual({ length: 4, pepper: PEPPER });
      // Its words are in the catalogue, as a built-in factor's are.
      expect(opened.services.catalogue.text('de', 'pin.label')).toBe('PIN');
    } finally {
      await opened.close();
    }
  });

  test('a listed factor that cannot work here is off, with the reason it gives', async () => {
    const opened = await started({ FACTORS: 'totp,./test/fixtures/factor-pin,email-code,sms-code' });
    try {
      const { registry } = opened.services.factors;
      expect(registry.ids()).toEqual(['totp']);
      expect(Object.fromEntries(registry.off().map((o) => [o.factor.id, o.reason]))).toEqual({
        pin: 'no pepper: set FACTOR_SETTINGS {"pin":{"pepper":"…"}} (16 characters or more)',
        'email-code': expect.stringMatching(/^no email delivery: set SMTP_URL/),
        'sms-code': 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET',
      });
    } finally {
      await opened.close();
    }
    const dev = await started({ FACTORS: 'totp,email-code', EMAIL_CODES: 'on' });
    expect(dev.services.factors.registry.ids()).toEqual(['totp', 'email-code']);
    await dev.close();
  });

  test('stops the start with one line naming the FACTORS entry at fault', async () => {
    expect(await startRefusal({ FACTORS: 'totp,twofold-factor-nowhere' })).toMatch(/^FACTORS entry twofold-factor-nowhere: not a built-in factor/);
    write('old/index.mjs', `import pin from ${JSON.stringify(pathToFileURL(path.join(PIN, 'index.js')).href)};\nexport default { ...pin, apiVersion: 1 };\n`);
    expect(await startRefusal({ FACTORS: `totp,${path.join(BAD, 'old')}` })).toBe(
      `FACTORS entry ${path.join(BAD, 'old')}: factor pin: written for contract version 1; this Twofold speaks version 2, where every text a factor gives a person is now a message key of its own catalogue (messagesDir with an en.json holding <id>.label and <id>.description) (see docs/factor-contract-changelog.md#version-2)`,
    );
    write(
      'viewless/index.mjs',
      `import pin from ${JSON.stringify(pathToFileURL(path.join(PIN, 'index.js')).href)};\nexport default { ...pin, viewsDir: ${JSON.stringify(BAD)} };\n`,
    );
    expect(await startRefusal({ FACTORS: path.join(BAD, 'viewless') })).toBe(
      `FACTORS entry ${path.join(BAD, 'viewless')}: factor pin: missing view challenge.hbs in ${BAD}`,
    );
  });

  test('FACTOR_SETTINGS: a bad value or an unknown id stops the start, and a secret never shows; a built-in factor left out keeps its settings unused', async () => {
    const secret = 'short-secret';
    const bad = await startRefusal({ FACTORS: 'totp,./test/fixtures/factor-pin', FACTOR_SETTINGS: JSON.stringify({ pin: { pepper: secret } }) });
    expect(bad).toBe('FACTOR_SETTINGS: factor pin settings: pepper: Too small: expected string to have >=16 characters (a secret: its value is not shown)');
    const typo = await startRefusal({ FACTORS: 'totp,./test/fixtures/factor-pin', FACTOR_SETTINGS: JSON.stringify({ pim: { pepper: PEPPER } }) });
    expect(typo).toBe('FACTOR_SETTINGS: settings given for unknown factor "pim" (known: totp, pin)');
    const misnamed = await startRefusal({ FACTORS: './test/fixtures/factor-pin', FACTOR_SETTINGS: JSON.stringify({ pin: { peper: PEPPER } }) });
    expect(misnamed).toMatch(/^FACTOR_SETTINGS: factor pin settings: \(root\): Unrecognized key: "peper"/);
    for (const message of [bad, typo, misnamed]) expect(message).not.toMatch(new RegExp(`${secret}|${PEPPER}`));
    // Kept for when it is listed again; a bad value in it is not this start's business.
    const opened = await started({ FACTORS: 'totp', FACTOR_SETTINGS: JSON.stringify({ webauthn: { timeout: 1 } }) });
    expect(opened.services.factors.registry.ids()).toEqual(['totp']);
    await opened.close();
  });

  test('the start-up report: factors on with their settings (secrets redacted), off ones with why, policies allowing a factor not on', async () => {
    const opened = await started({ FACTORS: 'totp,./test/fixtures/factor-pin,sms-code', FACTOR_SETTINGS: JSON.stringify({ pin: { pepper: PEPPER } }) });
    const { db } = opened.services;
    try {
      await savePolicy(db, GLOBAL, { factors: ['totp', 'pin', 'webauthn'] }, 'admin:test');
      const staff = await createGroup(db, 'staff');
      await savePolicy(db, groupScope(staff.id), { level: 2, factors: ['webauthn'] }, 'admin:test');
      await savePolicy(db, groupScope(staff.id), { level: 2, factors: ['webauthn', 'sms-code'] }, 'admin:test');
      const app = await createClient(db, opened.services.sealer, { name: 'payroll', redirectUris: ['http://payroll.example.test/cb'] });
      await db
        .updateTable('clients')
        .set({ policy: JSON.stringify({ factors: ['totp'] }) })
        .where('client_id', '=', app.clientId)
        .execute();
      const lines: Array<[string, Record<string, unknown>, string]> = [];
      await reportFactors(db, opened.services.factors.registry, { info: (f, m) => lines.push(['info', f, m]), warn: (f, m) => lines.push(['warn', f, m]) });
      expect(lines).toEqual([
        [
          'info',
          { factors: { totp: { algorithm: 'SHA1', digits: 6, period: 30, window: 1 }, pin: { length: 6, pepper: '[redacted]' } } },
          'factors on: totp, pin',
        ],
        [
          'info',
          { factor: 'sms-code', reason: 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET' },
          'factor sms-code is off: no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET',
        ],
        [
          'warn',
          { policy: 'global', notOn: ['webauthn'] },
          'the global policy allows webauthn, not on here (FACTORS, or the factor is off); only totp, pin count there',
        ],
        [
          'warn',
          { policy: 'group staff', notOn: ['webauthn', 'sms-code'] },
          'the group staff policy allows webauthn, sms-code, not on here (FACTORS, or the factor is off); no factor it allows is on, so its sign-ins that need a second factor cannot be met',
        ],
      ]);
      expect(JSON.stringify(lines)).not.toContain(PEPPER);
    } finally {
      await db.deleteFrom('policy_documents').execute();
      await opened.close();
    }
  });
});
