/**
 * Proves encryption at rest: a sealed value opens only with the same key and
 * the same context, any tampering is detected, sealing is randomized; and the
 * development master key is generated once into the data folder (mode 0600)
 * and reused, while production insists on SECRET_KEY.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { SealError, Sealer } from '../../src/security/sealer.ts';
import { loadMasterKey } from '../../src/security/secret-key.ts';

const key = crypto.randomBytes(32);
const sealer = new Sealer(key);

/** Flips one bit of one base64url part of a sealed value. */
function tamper(sealed: string, part: 1 | 2 | 3): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[part]!, 'base64url');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[part] = bytes.toString('base64url');
  return parts.join('.');
}

describe('Sealer', () => {
  test('round trip of strings and buffers', () => {
    const sealed = sealer.seal('a secret value ✓', 'totp:cred1');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('secret');
    expect(sealer.openString(sealed, 'totp:cred1')).toBe('a secret value ✓');

    const bytes = crypto.randomBytes(64);
    expect(sealer.open(sealer.seal(bytes, 'blob'), 'blob').equals(bytes)).toBe(true);
    expect(sealer.openString(sealer.seal('', 'empty'), 'empty')).toBe('');
  });

  test('the wrong context fails', () => {
    const sealed = sealer.seal('value', 'signing_key:a');
    expect(() => sealer.open(sealed, 'signing_key:b')).toThrow(SealError);
    expect(() => sealer.open(sealed, '')).toThrow(SealError);
  });

  test('the wrong key fails', () => {
    const sealed = sealer.seal('value', 'ctx');
    const other = new Sealer(crypto.randomBytes(32));
    expect(() => other.open(sealed, 'ctx')).toThrow(SealError);
  });

  test('tampering with the iv, the ciphertext or the tag fails', () => {
    const sealed = sealer.seal('value worth protecting', 'ctx');
    for (const part of [1, 2, 3] as const) {
      expect(() => sealer.open(tamper(sealed, part), 'ctx')).toThrow(SealError);
    }
    // Truncated ciphertext.
    const parts = sealed.split('.');
    parts[2] = parts[2]!.slice(0, -2);
    expect(() => sealer.open(parts.join('.'), 'ctx')).toThrow(SealError);
  });

  test('values that are not sealed are refused', () => {
    for (const bad of ['', 'plain text', 'v2.a.b.c', 'v1.a.b', 'v1.a.b.c.d']) {
      expect(() => sealer.open(bad, 'ctx')).toThrow(SealError);
    }
  });

  test('two seals of the same value differ, and both open', () => {
    const a = sealer.seal('same', 'ctx');
    const b = sealer.seal('same', 'ctx');
    expect(a).not.toBe(b);
    expect(a.split('.')[1]).not.toBe(b.split('.')[1]);
    expect(sealer.openString(a, 'ctx')).toBe('same');
    expect(sealer.openString(b, 'ctx')).toBe('same');
  });

  test('a key of the wrong length is refused', () => {
    expect(() => new Sealer(crypto.randomBytes(16))).toThrow();
  });
});

describe('loadMasterKey', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-secret-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('SECRET_KEY from configuration wins', () => {
    const hex = crypto.randomBytes(32).toString('hex');
    const dataDir = path.join(tmp, 'configured');
    const loaded = loadMasterKey({ SECRET_KEY: hex, dataDir, production: true });
    expect(loaded.source).toBe('config');
    expect(loaded.key.toString('hex')).toBe(hex);
    expect(fs.existsSync(path.join(dataDir, 'secret.key'))).toBe(false);
  });

  test('in development a key is generated once into the data folder (0600) and reused', () => {
    const dataDir = path.join(tmp, 'dev', 'nested');
    const first = loadMasterKey({ dataDir, production: false });
    expect(first.source).toBe('generated');
    expect(first.key).toHaveLength(32);
    const file = path.join(dataDir, 'secret.key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(first.key.toString('hex'));

    const second = loadMasterKey({ dataDir, production: false });
    expect(second.source).toBe('data-dir');
    expect(second.key.equals(first.key)).toBe(true);

    // Values sealed under the first run open in the second.
    const sealed = new Sealer(first.key).seal('persisted', 'ctx');
    expect(new Sealer(second.key).openString(sealed, 'ctx')).toBe('persisted');
  });

  test('a corrupt key file stops the start instead of being replaced', () => {
    const dataDir = path.join(tmp, 'corrupt');
    fs.mkdirSync(dataDir, { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'secret.key'), 'not a key\n');
    expect(() => loadMasterKey({ dataDir, production: false })).toThrow(/does not hold a 32-byte key/);
    expect(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8')).toBe('not a key\n');
  });

  test('production without SECRET_KEY is refused and writes nothing', () => {
    const dataDir = path.join(tmp, 'prod');
    expect(() => loadMasterKey({ dataDir, production: true })).toThrow(/SECRET_KEY/);
    expect(fs.existsSync(path.join(dataDir, 'secret.key'))).toBe(false);
  });
});
