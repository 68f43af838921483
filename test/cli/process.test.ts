/**
 * `twofold` as the administrator runs it: real processes through the package
 * bin. On PGlite without a provider the CLI opens the data folder itself; with
 * a provider running it forwards the command over the admin socket; stale and
 * foreign locks; PostgreSQL; bad configuration.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../helpers/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET_KEY = crypto.randomBytes(32).toString('hex');
const SPAWN_TIMEOUT = 60_000;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A clean environment: nothing from the test runner (NODE_OPTIONS, DATABASE_URL…) leaks in. */
function baseEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
  Object.assign(env, { LOG_LEVEL: 'warn', ARGON2_MEMORY_KIB: '8192', ARGON2_ITERATIONS: '1' }, extra);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

const children = new Set<ChildProcess>();

function twofold(args: string[], env: Record<string, string | undefined>, stdin?: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['src/twofold.js', ...args], { cwd: ROOT, env: baseEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`twofold ${args.join(' ')} did not finish in ${SPAWN_TIMEOUT}ms; stderr: ${stderr}`));
    }, SPAWN_TIMEOUT);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(stdin ?? '');
  });
}

/** Runs a command that must succeed. */
async function ok(args: string[], env: Record<string, string | undefined>, stdin?: string): Promise<Outcome> {
  const r = await twofold(args, env, stdin);
  if (r.code !== 0) throw new Error(`twofold ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  expect(r.stderr).toBe('');
  return r;
}

function expectOneLineError(r: Outcome, code: number, pattern: RegExp): void {
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code, stdout: '' });
  expect(r.stderr).toMatch(/^twofold: [^\n]+\n$/);
  expect(r.stderr).toMatch(pattern);
}

/** A pid that belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

function tempDir(): string {
  // Short: the admin socket's path must fit in a unix socket address.
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tf-cli-'));
}

describe('twofold on PGlite', () => {
  const dir = tempDir();
  const dataDir = path.join(dir, 'data');
  const env = { DATA_DIR: dataDir, SECRET_KEY };
  const lockFile = path.join(dataDir, 'twofold.lock');
  let provider: ChildProcess | undefined;

  afterAll(async () => {
    provider?.kill('SIGKILL');
    for (const child of children) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('without a provider the CLI opens the data folder itself, with the same config file as the server', async () => {
    const added = await ok(['user', 'add', 'alice', '--email', 'alice@example.test', '--password-stdin'], env, 'correct horse battery\n');
    expect(added.stdout).toMatch(/^created user alice \(id [\w-]+\)\n$/);
    expect(fs.existsSync(lockFile)).toBe(false);

    // TWOFOLD_CONFIG (YAML) names the same folder and key; the environment sets neither.
    const configFile = path.join(dir, 'twofold.yaml');
    fs.writeFileSync(configFile, `DATA_DIR: ${JSON.stringify(dataDir)}\nSECRET_KEY: ${SECRET_KEY}\n`);
    const listed = await ok(['user', 'list', '--json'], { TWOFOLD_CONFIG: configFile });
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ username: 'alice', email: 'alice@example.test', has_password: true })]);
  }, 120_000);

  test('with the provider running, commands are forwarded over its socket; after it stops the CLI sees the data', async () => {
    const port = await freePort();
    provider = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: baseEnv({ ...env, PORT: String(port) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let providerLog = '';
    provider.stdout!.setEncoding('utf8').on('data', (t: string) => (providerLog += t));
    provider.stderr!.setEncoding('utf8').on('data', (t: string) => (providerLog += t));
    const exited = new Promise<number | null>((resolve) => provider!.on('exit', (code) => resolve(code)));
    const issuer = `http://localhost:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (provider.exitCode !== null || Date.now() > deadline) throw new Error(`the provider did not become ready: ${providerLog}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const added = await ok(['user', 'add', 'bob', '--password-stdin'], env, 'bob password one two\n');
    expect(added.stdout).toMatch(/^created user bob /);
    // The provider holds the folder and advertises its socket.
    const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as { pid: number; socket?: string };
    expect(lock).toEqual({ pid: provider.pid, nonce: expect.any(String), socket: path.join(dataDir, 'twofold.sock') });

    const client = JSON.parse((await ok(['client', 'add', 'web', '--redirect-uri', 'http://app.example.test/cb', '--json'], env)).stdout) as {
      client_id: string;
      client_secret: string;
    };
    expect(client).toMatchObject({ client_id: expect.any(String), client_secret: expect.any(String), redirect_uris: ['http://app.example.test/cb'] });
    // The running provider knows the new client at once.
    const introspection = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${client.client_id}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'token=nothing',
    });
    expect(introspection.status).toBe(200);

    const rotated = await ok(['keys', 'rotate'], env);
    expect(rotated.stdout).toMatch(/^next signing keys: /);
    // Errors come back as they would locally.
    expectOneLineError(await twofold(['user', 'show', 'nobody'], env), 1, /^twofold: no user named nobody\n$/);

    provider.kill('SIGTERM');
    expect(await exited).toBe(0);
    provider = undefined;
    expect(fs.existsSync(lockFile)).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'twofold.sock'))).toBe(false);

    const users = JSON.parse((await ok(['user', 'list', '--json'], env)).stdout) as Array<{ username: string }>;
    expect(users.map((u) => u.username)).toEqual(['alice', 'bob']);
    const clients = JSON.parse((await ok(['client', 'list', '--json'], env)).stdout) as Array<{ client_id: string }>;
    // The account center's own client (migration 0014) is listed beside the one added here.
    expect(clients.map((c) => c.client_id).sort()).toEqual([client.client_id, 'twofold-account'].sort());
    const keys = JSON.parse((await ok(['keys', 'list', '--json'], env)).stdout) as Array<{ status: string }>;
    expect(keys.map((k) => k.status).sort()).toEqual(['active', 'active', 'next', 'next']);
  }, 180_000);

  test('a stale lock (its process gone) is taken over', async () => {
    const pid = await deadPid();
    fs.writeFileSync(lockFile, JSON.stringify({ pid, socket: path.join(dataDir, 'twofold.sock') }));
    const r = await ok(['audit', 'list', '--json'], env);
    const events = JSON.parse(r.stdout) as Array<{ type: string; actor: string }>;
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['account.created', 'client.created', 'keys.rotated']));
    expect(fs.existsSync(lockFile)).toBe(false);
  }, 120_000);

  test('a folder held by a live process that takes no commands: one clear line, exit 1, nothing touched', async () => {
    const held = JSON.stringify({ pid: process.pid });
    fs.writeFileSync(lockFile, held);
    try {
      // The wait for a busy folder is the CLI's to set; two seconds prove the refusal as well as thirty.
      const r = await twofold(['user', 'list'], { ...env, CLI_BUSY_WAIT: '2' });
      expectOneLineError(r, 1, new RegExp(`in use by process ${process.pid}`));
      expect(fs.readFileSync(lockFile, 'utf8')).toBe(held);
      // Help and usage errors need no database.
      const help = await ok(['user', '--help'], env);
      expect(help.stdout).toMatch(/^Usage: twofold user/);
      expectOneLineError(await twofold(['user', 'lst'], env), 2, /unknown command 'lst'/);
    } finally {
      fs.rmSync(lockFile, { force: true });
    }
  }, 120_000);
});

describe('twofold configuration errors', () => {
  test('an invalid setting: one line naming it, exit 2', async () => {
    const r = await twofold(['user', 'list'], { PORT: 'abc', DATA_DIR: path.join(os.tmpdir(), 'tf-never-created') });
    expectOneLineError(r, 2, /PORT/);
    expect(fs.existsSync(path.join(os.tmpdir(), 'tf-never-created'))).toBe(false);
  }, 120_000);

  test('an unreachable PostgreSQL: one line, exit 1', async () => {
    const port = await freePort();
    const r = await twofold(['user', 'list'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nothing`, SECRET_KEY });
    expectOneLineError(r, 1, /refused/);
  }, 120_000);
});

/** `npm start`'s entry point (src/main.ts) as a process, run to completion. */
function startProvider(env: Record<string, string | undefined>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the provider did not exit in ${SPAWN_TIMEOUT}ms; stderr: ${stderr}`));
    }, SPAWN_TIMEOUT);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm start with a bad configuration', () => {
  test.each([
    ['PORT=abc', { PORT: 'abc' }, 'twofold: Invalid configuration: PORT: expected an integer from 1 to 65535 (got "abc")\n'],
    ['TRUST_PROXY=maybe', { TRUST_PROXY: 'maybe' }, 'twofold: Invalid configuration: TRUST_PROXY: expected true, false, 1, 0, yes or no (got "maybe")\n'],
    [
      'LOG_LEVEL=loud',
      { LOG_LEVEL: 'loud' },
      'twofold: Invalid configuration: LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent" (got "loud")\n',
    ],
    [
      'KEY_RETIREMENT_TTL below ID_TOKEN_TTL',
      { KEY_RETIREMENT_TTL: '600' },
      'twofold: Invalid configuration: KEY_RETIREMENT_TTL: must be at least the longest lifetime of a token the signing keys sign (ID_TOKEN_TTL=3600), or tokens signed just before a rotation could not be verified (got 600)\n',
    ],
  ])(
    '%s: exit 2 and one line saying what is allowed, nothing created',
    async (_name, bad, line) => {
      const dataDir = path.join(os.tmpdir(), `tf-never-${crypto.randomBytes(4).toString('hex')}`);
      const r = await startProvider({ ...bad, DATA_DIR: dataDir, SECRET_KEY });
      expect(r).toEqual({ code: 2, stdout: '', stderr: line });
      expect(fs.existsSync(dataDir)).toBe(false);
    },
    120_000,
  );
});

describe('npm start logging', () => {
  test('LOG_LEVEL from the config file applies (debug lines appear); request lines carry the request id', async () => {
    const dir = tempDir();
    const port = await freePort();
    const configFile = path.join(dir, 'twofold.yaml');
    fs.writeFileSync(configFile, `LOG_LEVEL: debug\nPORT: ${port}\nDATA_DIR: ${JSON.stringify(path.join(dir, 'data'))}\nSECRET_KEY: ${SECRET_KEY}\n`);
    // No LOG_LEVEL in the environment: only the file says debug (the default is info).
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: baseEnv({ LOG_LEVEL: undefined, TWOFOLD_CONFIG: configFile }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (
        !(await fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        ))
      ) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the provider did not become ready: ${out}${err}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const res = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`, { headers: { 'x-request-id': 'trace-me-42' } });
      expect(res.headers.get('x-request-id')).toBe('trace-me-42');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      children.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // Standard output is the log: every line JSON (stderr holds only oidc-provider's runtime notice, if any).
    const lines = out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: number; msg: string; reqId?: string; path?: string; status?: number });
    expect(lines.some((l) => l.level === 20)).toBe(true);
    expect(lines.find((l) => l.msg === 'Twofold is ready')).toBeTruthy();
    expect(lines.find((l) => l.msg === 'request' && l.reqId === 'trace-me-42')).toMatchObject({ path: '/.well-known/openid-configuration', status: 200 });
  }, 120_000);
});

const describePostgres = process.env.TEST_DATABASE_URL ? describe : describe.skip;

describePostgres('twofold on PostgreSQL', () => {
  const name = `twofold_cli_${crypto.randomBytes(6).toString('hex')}`;
  let url: string;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    await admin(`create database ${name}`);
    const u = new URL(process.env.TEST_DATABASE_URL!);
    u.pathname = `/${name}`;
    url = u.toString();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await admin(`drop database if exists ${name} with (force)`);
  });

  test('a fresh database: commands ask for `twofold migrate`; after it they work', async () => {
    const env = { DATABASE_URL: url, SECRET_KEY, DATA_DIR: path.join(os.tmpdir(), 'tf-pg-unused') };
    expectOneLineError(await twofold(['user', 'list'], env), 1, /needs migrations .*twofold migrate/);
    expect((await ok(['migrate'], env)).stdout).toMatch(/^applied 0001_initial/);
    expect((await ok(['migrate'], env)).stdout).toBe('the database is up to date\n');
    await ok(['user', 'add', 'carol', '--password-stdin'], env, 'a passphrase for c\n');
    const users = JSON.parse((await ok(['user', 'list', '--json'], env)).stdout) as Array<{ username: string; has_password: boolean }>;
    expect(users).toEqual([expect.objectContaining({ username: 'carol', has_password: true })]);
    // PostgreSQL needs no data folder.
    expect(fs.existsSync(path.join(os.tmpdir(), 'tf-pg-unused'))).toBe(false);
  }, 120_000);
});
