/**
 * FACTORS as `npm start` and the `twofold` bin run it: from the bundle in
 * .build/ (src/launch.js), which is built without any factor of the
 * operator's. A factor outside the tree still loads at start, by path
 * (JavaScript, or TypeScript through tsx), and by the name of a package
 * installed in Twofold's folder; the provider runs it; a bad entry stops the
 * start with one line naming it, and a secret setting never reaches the log.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { refusedStart, startProviderProcess, type ProviderProcess } from '../helpers/provider-process.ts';
import { TEST_SECRET_KEY } from '../helpers/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PIN = path.join(ROOT, 'test/fixtures/factor-pin');
/** The fixture, installed as a package beside Twofold's own dependencies (as `npm install` would put it). */
const PACKAGE = 'twofold-factor-pin-test';
const INSTALLED = path.join(ROOT, 'node_modules', PACKAGE);
const PEPPER = 'pepper-0123456789abcdef';
const SETTINGS = JSON.stringify({ pin: { pepper: PEPPER } });

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-bundle-factors-'));
const dataDir = path.join(work, 'data');

/** The bundled `twofold` command, on PGlite in one data folder for the whole file. */
function twofold(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['src/twofold.js', ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LOG_LEVEL: 'warn',
        ARGON2_MEMORY_KIB: '8192',
        ARGON2_ITERATIONS: '1',
        DATA_DIR: dataDir,
        SECRET_KEY: TEST_SECRET_KEY,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout,
        stderr: stderr
          .split('\n')
          .filter((l) => !l.startsWith('oidc-provider WARNING'))
          .join('\n'),
      });
    });
  });
}

async function listed(env: Record<string, string>): Promise<Array<{ id: string; on: boolean; settings: unknown }>> {
  const r = await twofold(['factors', '--json'], env);
  if (r.code !== 0) throw new Error(`twofold factors exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ id: string; on: boolean; settings: unknown }>;
}

beforeAll(() => {
  if (fs.existsSync(INSTALLED)) throw new Error(`${INSTALLED} exists already`);
  fs.symlinkSync(PIN, INSTALLED, 'dir');
});
afterAll(() => {
  fs.rmSync(INSTALLED, { force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('factors from outside the tree, loaded by the bundle', () => {
  test('the bundled command loads a factor by path, by package name, and a TypeScript one', async () => {
    const byPath = await listed({ FACTORS: 'totp,./test/fixtures/factor-pin', FACTOR_SETTINGS: SETTINGS });
    expect(byPath.map((f) => [f.id, f.on])).toEqual([
      ['totp', true],
      ['pin', true],
    ]);
    expect(byPath[1]!.settings).toEqual({ length: 6, pepper: '[redacted]' });

    const byName = await listed({ FACTORS: `${PACKAGE},totp`, FACTOR_SETTINGS: SETTINGS });
    expect(byName.map((f) => f.id)).toEqual(['pin', 'totp']);

    // TypeScript in a package of its own ("type": "module"): the bundle has no loader for it, so tsx is registered.
    const typed = path.join(work, 'typed');
    fs.mkdirSync(typed);
    fs.writeFileSync(path.join(typed, 'package.json'), JSON.stringify({ name: 'typed-factor', type: 'module', main: 'factor.ts' }));
    fs.writeFileSync(
      path.join(typed, 'factor.ts'),
      `import pin from ${JSON.stringify(pathToFileURL(path.join(PIN, 'index.js')).href)};\nconst factor: Record<string, unknown> = { ...pin };\nexport default factor;\n`,
    );
    const fromTypeScript = await listed({ FACTORS: typed, FACTOR_SETTINGS: JSON.stringify({ pin: { length: 8, pepper: PEPPER } }) });
    expect(fromTypeScript).toEqual([{ id: 'pin', on: true, settings: { length: 8, pepper: '[redacted]' } }]);
  });

  test('a bad entry stops the bundled command and npm start with one line naming it', async () => {
    const cli = await twofold(['factors'], { FACTORS: 'totp,./factors-local/nowhere' });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe(`twofold: FACTORS entry ./factors-local/nowhere: no file or folder ${path.join(ROOT, 'factors-local/nowhere')}\n`);
    const start = await refusedStart({ FACTORS: 'totp,twofold-factor-nowhere' }, { bundled: true });
    expect(start).toEqual({
      code: 2,
      stderr:
        'twofold: FACTORS entry twofold-factor-nowhere: not a built-in factor (totp, webauthn, passkey, backup-codes, email-code, sms-code), and no package of that name is installed beside Twofold (npm install twofold-factor-nowhere in its folder; a path begins with ./ or /)\n',
    });
  });

  describe('npm start with a package named in FACTORS', () => {
    let provider: ProviderProcess;
    beforeAll(async () => {
      provider = await startProviderProcess(
        undefined,
        { FACTORS: `${PACKAGE},totp,sms-code`, FACTOR_SETTINGS: SETTINGS, LOG_LEVEL: 'info' },
        { bundled: true },
      );
    });
    afterAll(async () => {
      await provider?.close();
    });

    test('runs it, says so at start with its settings redacted, and says why a factor is off', async () => {
      const lines = provider
        .log()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; factors?: unknown; reason?: string });
      expect(lines.find((l) => l.msg.startsWith('factors on:'))).toEqual(
        expect.objectContaining({ msg: 'factors on: pin, totp', factors: { pin: { length: 6, pepper: '[redacted]' }, totp: expect.any(Object) } }),
      );
      expect(lines.find((l) => l.msg.startsWith('factor sms-code is off'))).toEqual(
        expect.objectContaining({ reason: 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET' }),
      );
      expect(provider.log()).not.toContain(PEPPER);
      // The running provider's own view, over its admin socket.
      const r = await twofold(['factors', '--json'], { DATA_DIR: provider.dataDir, FACTORS: 'totp' });
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as Array<{ id: string; on: boolean }>).map((f) => [f.id, f.on])).toEqual([
        ['pin', true],
        ['totp', true],
        ['sms-code', false],
      ]);
    });
  });
});
