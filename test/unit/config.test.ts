/**
 * Proves the configuration contract: the documented defaults, one-line
 * ConfigError naming the offending key (without echoing secrets), production's
 * refusal to start without SECRET_KEY or with an http ISSUER, SECRET_KEY_FILE
 * (read once, refused when others may read or change it), and the config
 * file (JSON or YAML) being read, overridden by the environment, and strict
 * about unknown keys.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { afterAll, describe, expect, test } from '@jest/globals';
import { ConfigError, decodeKey, loadConfig } from '../../src/config.ts';
import { loadMasterKey } from '../../src/security/secret-key.ts';
import { BUILT_IN_FACTOR_IDS } from '../../factors/built-in.ts';

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

  test('FACTOR_SETTINGS is never echoed: a typo in it may sit next to an API key', () => {
    const key = 'sk_live_0123456789abcdefghij';
    // A closing brace missing: the whole value would otherwise be printed.
    expect(configError({ FACTOR_SETTINGS: `{"push":{"apiKey":"${key}"}` }).message).toBe(
      'Invalid configuration: FACTOR_SETTINGS: a JSON object keyed by factor id (got "…")',
    );
    expect(configError({ FACTOR_SETTINGS: `["${key}"]` }).message).not.toContain(key);
    const file = writeFile('settings.yaml', `FACTOR_SETTINGS: ["${key}"]\n`);
    expect(configError({ TWOFOLD_CONFIG: file }).message).toBe('Invalid configuration: FACTOR_SETTINGS: a JSON object keyed by factor id (got "…")');
  });

  test('a bad value that is not secret is shown', () => {
    expect(configError({ PORT: 'abc' }).message).toContain('"abc"');
  });

  test.each([
    [{ PORT: 'abc' }, 'PORT: expected an integer from 1 to 65535 (got "abc")'],
    [{ PORT: '0' }, 'PORT: expected an integer from 1 to 65535 (got "0")'],
    [{ PORT: '80.5' }, 'PORT: expected an integer from 1 to 65535 (got "80.5")'],
    [{ PORT: '1e3' }, 'PORT: expected an integer from 1 to 65535 (got "1e3")'],
    [{ ARGON2_ITERATIONS: '21' }, 'ARGON2_ITERATIONS: expected an integer from 1 to 20 (got "21")'],
    [{ ID_TOKEN_TTL: '30' }, 'ID_TOKEN_TTL: expected whole seconds from 60 to 86400 (got "30")'],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY: expected true, false, 1, 0, yes or no (got "maybe")'],
    [{ MIGRATE_ON_START: 'on' }, 'MIGRATE_ON_START: expected true, false, 1, 0, yes or no (got "on")'],
    [{ ISSUER: 'not a url' }, 'ISSUER: expected an http:// or https:// URL such as https://id.example.com (got "not a url")'],
    [{ ISSUER: 'ftp://idp.example.com' }, 'ISSUER: expected an http:// or https:// URL such as https://id.example.com (got "ftp://idp.example.com")'],
    [
      { ISSUER: 'https://idp.example.com/' },
      'ISSUER: expected a URL without a trailing slash, query or fragment, such as https://id.example.com (got "https://idp.example.com/")',
    ],
    [{ SMS_WEBHOOK_URL: 'gateway' }, 'SMS_WEBHOOK_URL: expected an http:// or https:// URL (got "gateway")'],
    [{ WEBAUTHN_ORIGINS: 'nope' }, 'WEBAUTHN_ORIGINS.0: expected http:// or https:// origins (got "nope")'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent" (got "loud")'],
  ])('the message says what is allowed: %j', (env, expected) => {
    expect(configError(env).message).toBe(`Invalid configuration: ${expected}`);
  });

  test('a config file value of the wrong type gets the same message', () => {
    const file = writeFile('wrong-types.json', JSON.stringify({ PORT: true }));
    expect(configError({ TWOFOLD_CONFIG: file }).message).toBe('Invalid configuration: PORT: expected an integer from 1 to 65535 (got true)');
    const flag = writeFile('wrong-flag.json', JSON.stringify({ TRUST_PROXY: 'sometimes' }));
    expect(configError({ TWOFOLD_CONFIG: flag }).message).toBe('Invalid configuration: TRUST_PROXY: expected true, false, 1, 0, yes or no (got "sometimes")');
  });

  test('booleans: the documented words, any case, and booleans from a file', () => {
    for (const [word, value] of [
      ['true', true],
      ['FALSE', false],
      ['1', true],
      ['0', false],
      ['Yes', true],
      [' no ', false],
    ] as const) {
      expect(loadConfig({ TRUST_PROXY: word }).TRUST_PROXY).toBe(value);
    }
    expect(loadConfig({ TWOFOLD_CONFIG: writeFile('bool.yaml', 'TRUST_PROXY: true\n') }).TRUST_PROXY).toBe(true);
  });
});

describe('KEY_RETIREMENT_TTL covers the tokens the keys sign', () => {
  test('shorter than ID_TOKEN_TTL or ACCESS_TOKEN_TTL is refused, naming the longest', () => {
    expect(configError({ KEY_RETIREMENT_TTL: '600' }).message).toBe(
      'Invalid configuration: KEY_RETIREMENT_TTL: must be at least the longest lifetime of a token the signing keys sign (ID_TOKEN_TTL=3600), or tokens signed just before a rotation could not be verified (got 600)',
    );
    expect(configError({ KEY_RETIREMENT_TTL: '7200', ID_TOKEN_TTL: '600', ACCESS_TOKEN_TTL: '9000' }).message).toMatch(
      /^Invalid configuration: KEY_RETIREMENT_TTL: .*\(ACCESS_TOKEN_TTL=9000\).*\(got 7200\)$/,
    );
  });

  test("an API's own access token lifetime counts too", () => {
    const RESOURCE_SERVERS = JSON.stringify({ 'https://api.example.com': { scope: 'orders:read', accessTokenTTL: 80000 } });
    expect(configError({ KEY_RETIREMENT_TTL: '7200', RESOURCE_SERVERS }).message).toMatch(
      /\(RESOURCE_SERVERS https:\/\/api\.example\.com accessTokenTTL=80000\)/,
    );
    expect(loadConfig({ KEY_RETIREMENT_TTL: '80000', RESOURCE_SERVERS }).KEY_RETIREMENT_TTL).toBe(80000);
  });

  test('equal to the longest lifetime is enough', () => {
    expect(loadConfig({ KEY_RETIREMENT_TTL: '3600' }).KEY_RETIREMENT_TTL).toBe(3600);
    expect(loadConfig({ KEY_RETIREMENT_TTL: '600', ID_TOKEN_TTL: '600', ACCESS_TOKEN_TTL: '600' }).KEY_RETIREMENT_TTL).toBe(600);
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

describe('SECRET_KEY_FILE', () => {
  const keyFile = (name: string, text: string, mode: number): string => {
    const file = writeFile(name, text);
    fs.chmodSync(file, mode);
    return file;
  };

  test('the key is read from the file (whitespace around it ignored) and is the master key', () => {
    const raw = crypto.randomBytes(32);
    const file = keyFile('key-600', `${raw.toString('base64')}\n`, 0o600);
    const config = loadConfig({ SECRET_KEY_FILE: file, DATA_DIR: path.join(tmp, 'data-600') });
    expect(config.SECRET_KEY).toBe(raw.toString('base64'));
    expect(loadMasterKey(config)).toEqual({ key: raw, source: 'file' });
    // Owner-only read, and a group that may read it (a service's group), are fine.
    expect(loadConfig({ SECRET_KEY_FILE: keyFile('key-400', KEY_HEX, 0o400) }).SECRET_KEY).toBe(KEY_HEX);
    expect(loadConfig({ SECRET_KEY_FILE: keyFile('key-640', KEY_HEX, 0o640) }).SECRET_KEY).toBe(KEY_HEX);
  });

  test('a file others may read, or anyone but its owner may change, is refused in one line that says how to fix it', () => {
    for (const [mode, shown, who] of [
      [0o644, '0644', 'read by any user'],
      [0o604, '0604', 'read by any user'],
      [0o602, '0602', 'written by any user'],
      [0o620, '0620', 'written by its group'],
    ] as const) {
      const message = configError({ SECRET_KEY_FILE: keyFile(`key-${shown}`, KEY_HEX, mode) }).message;
      expect(message).toMatch(new RegExp(`^Invalid configuration: SECRET_KEY_FILE: .*key-${shown} can be ${who} \\(mode ${shown}\\); .*chmod 600`));
      expect(message).not.toContain(KEY_HEX);
    }
  });

  test('exactly one of SECRET_KEY and SECRET_KEY_FILE', () => {
    const file = keyFile('key-both', KEY_HEX, 0o600);
    expect(configError({ SECRET_KEY: KEY_HEX, SECRET_KEY_FILE: file }).message).toBe(
      'Invalid configuration: SECRET_KEY_FILE: set either SECRET_KEY or SECRET_KEY_FILE, not both',
    );
  });

  test('a missing file, a folder, or a file without a key are refused without echoing what it holds', () => {
    expect(configError({ SECRET_KEY_FILE: path.join(tmp, 'no-such-key') }).message).toMatch(
      /^Invalid configuration: SECRET_KEY_FILE: cannot read .*no-such-key \(ENOENT\)$/,
    );
    const folder = path.join(tmp, 'key-folder');
    fs.mkdirSync(folder, { mode: 0o700 });
    expect(configError({ SECRET_KEY_FILE: folder }).message).toMatch(/key-folder is not a file$/);
    const secretish = 'not-a-key-but-private';
    const message = configError({ SECRET_KEY_FILE: keyFile('key-bad', secretish, 0o600) }).message;
    expect(message).toMatch(/key-bad does not hold 32 bytes as 64 hex characters or base64$/);
    expect(message).not.toContain(secretish);
  });

  test('production takes the key from a file outside DATA_DIR, and refuses one inside it', () => {
    const production = { NODE_ENV: 'production', ISSUER: 'https://idp.example.com' };
    const dataDir = path.join(tmp, 'prod-data');
    fs.mkdirSync(dataDir);
    const outside = keyFile('key-prod', KEY_HEX, 0o600);
    expect(loadConfig({ ...production, DATA_DIR: dataDir, SECRET_KEY_FILE: outside }).SECRET_KEY).toBe(KEY_HEX);
    const inside = path.join(dataDir, 'secret.key');
    fs.writeFileSync(inside, KEY_HEX, { mode: 0o600 });
    expect(configError({ ...production, DATA_DIR: dataDir, SECRET_KEY_FILE: inside }).message).toMatch(
      /^Invalid configuration: SECRET_KEY_FILE: .* is inside DATA_DIR /,
    );
    // Through a relative DATA_DIR or a symbolic link the folder is the same folder.
    const link = path.join(tmp, 'prod-data-link');
    fs.symlinkSync(dataDir, link);
    expect(configError({ ...production, DATA_DIR: link, SECRET_KEY_FILE: inside }).message).toMatch(/is inside DATA_DIR/);
    // Development keeps its generated key in DATA_DIR anyway, so a file there is allowed.
    expect(loadConfig({ DATA_DIR: dataDir, SECRET_KEY_FILE: inside }).SECRET_KEY).toBe(KEY_HEX);
  });
});

describe('production', () => {
  test('refuses to start without SECRET_KEY', () => {
    const err = configError({ NODE_ENV: 'production', ISSUER: 'https://idp.example.com' });
    expect(err.message).toMatch(/^Invalid configuration: SECRET_KEY: required in production, or SECRET_KEY_FILE /);
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

describe('FACTORS', () => {
  test('runs every built-in factor, in their order, unless set', () => {
    expect(loadConfig({}).FACTORS).toEqual([...BUILT_IN_FACTOR_IDS]);
  });

  test('lists built-in ids and module specifiers, from the environment or a config file', () => {
    expect(loadConfig({ FACTORS: 'totp, ./factors/push ,twofold-factor-duo' }).FACTORS).toEqual(['totp', './factors/push', 'twofold-factor-duo']);
    const file = writeFile('factors.yaml', 'FACTORS:\n  - webauthn\n  - /opt/twofold/push.js\n');
    expect(loadConfig({ TWOFOLD_CONFIG: file }).FACTORS).toEqual(['webauthn', '/opt/twofold/push.js']);
  });

  test('refuses an entry listed twice', () => {
    expect(configError({ FACTORS: 'totp,webauthn,totp' }).message).toBe(
      'Invalid configuration: FACTORS: each factor is listed once (got "totp,webauthn,totp")',
    );
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
