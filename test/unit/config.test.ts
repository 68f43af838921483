/**
 * Proves the configuration contract: the documented defaults, one-line
 * ConfigError naming the offending key (without echoing secrets), production's
 * refusal to start without SECRET_KEY or with an http ISSUER, and the config
 * file (JSON or YAML) being read, overridden by the environment, and strict
 * about unknown keys.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { afterAll, describe, expect, test } from '@jest/globals';
import { ConfigError, decodeKey, loadConfig } from '../../src/config.ts';

const KEY_HEX = crypto.randomBytes(32).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-config-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

function writeFile(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.ISSUER).toBe('http://localhost:3000');
    expect(config.NODE_ENV).toBe('development');
    expect(config.production).toBe(false);
    expect(config.secureCookies).toBe(false);
    expect(config.TRUST_PROXY).toBe(false);
    expect(config.PKCE_REQUIRED).toBe('all');
    expect(config.MIGRATE_ON_START).toBe(true);
    expect(config.ARGON2_MEMORY_KIB).toBe(12288);
    expect(config.ARGON2_ITERATIONS).toBe(3);
    expect(config.ARGON2_PARALLELISM).toBe(1);
    expect(config.HASH_QUEUE_LIMIT).toBe(64);
    expect(config.HASH_CONCURRENCY).toBeGreaterThanOrEqual(1);
    expect(config.SECRET_KEY).toBeUndefined();
    expect(config.DATABASE_URL).toBeUndefined();
    expect(path.isAbsolute(config.dataDir)).toBe(true);
    expect(config.dataDir).toBe(path.resolve('./data'));
  });

  test('the default issuer follows PORT', () => {
    expect(loadConfig({ PORT: '8080' }).ISSUER).toBe('http://localhost:8080');
  });

  test('strings from the environment are coerced', () => {
    const config = loadConfig({ PORT: '4000', TRUST_PROXY: 'yes', MIGRATE_ON_START: '0', HASH_QUEUE_LIMIT: '0' });
    expect(config.PORT).toBe(4000);
    expect(config.TRUST_PROXY).toBe(true);
    expect(config.MIGRATE_ON_START).toBe(false);
    expect(config.HASH_QUEUE_LIMIT).toBe(0);
  });

  test('an empty environment value counts as unset', () => {
    expect(loadConfig({ PORT: '' }).PORT).toBe(3000);
  });

  test('variables that are not settings are ignored', () => {
    expect(() => loadConfig({ PATH: '/usr/bin', HOME: '/root', TWOFOLD_UNKNOWN: 'x' })).not.toThrow();
  });
});

describe('bad values stop the start with one line naming the key', () => {
  test.each([
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '0' }],
    ['PORT', { PORT: '70000' }],
    ['ISSUER', { ISSUER: 'https://idp.example.com/' }],
    ['ISSUER', { ISSUER: 'https://idp.example.com?x=1' }],
    ['ISSUER', { ISSUER: 'ftp://idp.example.com' }],
    ['ISSUER', { ISSUER: 'not a url' }],
    ['SECRET_KEY', { SECRET_KEY: 'too-short' }],
    ['SECRET_KEY', { SECRET_KEY: 'zz'.repeat(32) }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://db/x' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'maybe' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['ARGON2_MEMORY_KIB', { ARGON2_MEMORY_KIB: '1024' }],
    ['NODE_ENV', { NODE_ENV: 'staging' }],
  ])('%s: %j', (key, env) => {
    const err = configError(env);
    expect(err.message).toMatch(new RegExp(`^Invalid configuration: ${key}: `));
  });

  test('a malformed SECRET_KEY or DATABASE_URL is not echoed back', () => {
    const secret = 'my-secret-but-malformed-key';
    expect(configError({ SECRET_KEY: secret }).message).not.toContain(secret);
    const url = 'mysql://user:hunter2@db/x';
    expect(configError({ DATABASE_URL: url }).message).not.toContain('hunter2');
  });

  test('a bad value that is not secret is shown', () => {
    expect(configError({ PORT: 'abc' }).message).toContain('"abc"');
  });
});

describe('SECRET_KEY formats', () => {
  test('64 hex characters and base64 (standard or url-safe) of 32 bytes are accepted', () => {
    const raw = crypto.randomBytes(32);
    expect(decodeKey(raw.toString('hex'))).toEqual(raw);
    expect(decodeKey(raw.toString('base64'))).toEqual(raw);
    expect(decodeKey(raw.toString('base64url'))).toEqual(raw);
    expect(loadConfig({ SECRET_KEY: raw.toString('base64') }).SECRET_KEY).toBe(raw.toString('base64'));
  });

  test('other lengths are refused', () => {
    expect(decodeKey(crypto.randomBytes(31).toString('hex'))).toBeUndefined();
    expect(decodeKey(crypto.randomBytes(33).toString('base64'))).toBeUndefined();
    expect(decodeKey(crypto.randomBytes(16).toString('base64'))).toBeUndefined();
  });
});

describe('production', () => {
  test('refuses to start without SECRET_KEY', () => {
    const err = configError({ NODE_ENV: 'production', ISSUER: 'https://idp.example.com' });
    expect(err.message).toMatch(/^Invalid configuration: SECRET_KEY: /);
  });

  test('refuses an http ISSUER, including the default one', () => {
    expect(configError({ NODE_ENV: 'production', SECRET_KEY: KEY_HEX, ISSUER: 'http://idp.example.com' }).message).toMatch(/^Invalid configuration: ISSUER: /);
    expect(configError({ NODE_ENV: 'production', SECRET_KEY: KEY_HEX }).message).toMatch(/^Invalid configuration: ISSUER: /);
  });

  test('starts with SECRET_KEY and an https ISSUER, with secure cookies', () => {
    const config = loadConfig({ NODE_ENV: 'production', SECRET_KEY: KEY_HEX, ISSUER: 'https://idp.example.com' });
    expect(config.production).toBe(true);
    expect(config.secureCookies).toBe(true);
    expect(config.ISSUER).toBe('https://idp.example.com');
  });
});

describe('config file', () => {
  test('JSON is read', () => {
    const file = writeFile('twofold.json', JSON.stringify({ PORT: 4100, LOG_LEVEL: 'warn', TRUST_PROXY: true }));
    const config = loadConfig({ TWOFOLD_CONFIG: file });
    expect(config.PORT).toBe(4100);
    expect(config.ISSUER).toBe('http://localhost:4100');
    expect(config.LOG_LEVEL).toBe('warn');
    expect(config.TRUST_PROXY).toBe(true);
  });

  test.each(['twofold.yaml', 'twofold.yml'])('YAML is read (%s)', (name) => {
    const file = writeFile(name, 'PORT: 4200\nISSUER: https://idp.example.org\nARGON2_ITERATIONS: 4\nMIGRATE_ON_START: false\n');
    const config = loadConfig({ TWOFOLD_CONFIG: file });
    expect(config.PORT).toBe(4200);
    expect(config.ISSUER).toBe('https://idp.example.org');
    expect(config.secureCookies).toBe(true);
    expect(config.ARGON2_ITERATIONS).toBe(4);
    expect(config.MIGRATE_ON_START).toBe(false);
  });

  test('the environment wins over the file', () => {
    const file = writeFile('wins.yaml', 'PORT: 4300\nLOG_LEVEL: warn\n');
    const config = loadConfig({ TWOFOLD_CONFIG: file, PORT: '4301' });
    expect(config.PORT).toBe(4301);
    expect(config.LOG_LEVEL).toBe('warn');
  });

  test('a bad value in the file names the key', () => {
    const file = writeFile('bad-value.json', JSON.stringify({ PORT: 'abc' }));
    expect(configError({ TWOFOLD_CONFIG: file }).message).toMatch(/^Invalid configuration: PORT: /);
  });

  test('an unknown key in the file is refused, by name', () => {
    const file = writeFile('unknown.yaml', 'PORT: 4400\nPROT: 4401\n');
    const err = configError({ TWOFOLD_CONFIG: file });
    expect(err.message).toContain('PROT');
    expect(err.message).toContain('unknown setting');
  });

  test('a missing file, malformed file or non-object file is a ConfigError', () => {
    expect(configError({ TWOFOLD_CONFIG: path.join(tmp, 'missing.json') }).message).toMatch(/^TWOFOLD_CONFIG: cannot read/);
    expect(configError({ TWOFOLD_CONFIG: writeFile('broken.json', '{"PORT": ') }).message).toMatch(/^TWOFOLD_CONFIG: .* is not valid JSON/);
    expect(configError({ TWOFOLD_CONFIG: writeFile('broken.yaml', 'PORT: [1, 2\n') }).message).toMatch(/^TWOFOLD_CONFIG: .* is not valid YAML/);
    expect(configError({ TWOFOLD_CONFIG: writeFile('list.yaml', '- PORT\n- 3000\n') }).message).toMatch(/must hold an object/);
  });
});
