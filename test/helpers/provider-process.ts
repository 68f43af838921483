/**
 * A provider in a process of its own (`node src/main.ts`, as `npm run dev`
 * runs it), on a PostgreSQL database a test already uses (or, without a URL,
 * on PGlite in a data folder): its own pool, its own memory, nothing shared
 * with the test process but the database. For claims about "another provider
 * process", and for the fault tests, which kill it and start it again on the
 * same port and data folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import { factorSettings, TEST_SECRET_KEY } from './server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const READY_TIMEOUT = 60_000;

export interface ProviderProcess {
  issuer: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Resolves when the process has exited, with how. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the process printed, for failure messages. */
  log(): string;
  close(): Promise<void>;
}

export interface ProviderProcessOptions {
  /** Listen here (a restarted provider keeps its issuer); default a free port. */
  port?: number;
  /** The data folder (PGlite's files when there is no database URL); kept on close. Default a temporary one, removed on close. */
  dataDir?: string;
  /** Never read the process's stdout (the log): the pipe fills up, as with a log shipper that stopped. */
  stdoutUnread?: boolean;
  /** Run `npm start`'s own path, the bundle in .build/ (src/launch.js, rebuilt when stale), instead of the sources. */
  bundled?: boolean;
}

/** The node arguments that start the provider: from the sources (as `npm run dev`), or as `npm start` does. */
const providerArgs = (bundled?: boolean) => (bundled ? ['src/launch.js', 'main'] : ['--import', 'tsx', 'src/main.ts']);

/** Starts the provider on `databaseUrl` (PGlite when undefined) with the test suite's SECRET_KEY (so sealed rows open) and waits until /readyz answers. */
export async function startProviderProcess(
  databaseUrl: string | undefined,
  env: Record<string, string> = {},
  options: ProviderProcessOptions = {},
): Promise<ProviderProcess> {
  const port = options.port ?? (await freePort());
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-proc-'));
  // A clean environment: nothing of the test runner's (NODE_OPTIONS, TEST_DATABASE_URL…) leaks in.
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: process.env.TMPDIR,
    LOG_LEVEL: 'warn',
    ARGON2_MEMORY_KIB: '8192',
    ARGON2_ITERATIONS: '1',
    PURGE_INTERVAL: '0',
    PORT: String(port),
    DATA_DIR: dataDir,
    SECRET_KEY: TEST_SECRET_KEY,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...env,
    FACTOR_SETTINGS: factorSettings(env.FACTOR_SETTINGS),
  };
  const child = spawn(process.execPath, providerArgs(options.bundled), { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  if (!options.stdoutUnread) child.stdout!.setEncoding('utf8').on('data', (t: string) => (output += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (output += t));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    // An unread stdout would keep its pipe (and the test run) open.
    child.stdout?.destroy();
    if (!options.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`the provider process did not become ready: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { issuer: `http://localhost:${port}`, port, dataDir, child, exited, log: () => output, close };
}

/**
 * Runs the provider as `npm start` does with `env` (on PGlite in a throwaway data folder) when
 * it is expected not to start, and returns its exit code and what it wrote to stderr, less
 * oidc-provider's warning about a Node.js version it does not know (not Twofold's line).
 */
export async function refusedStart(env: Record<string, string>, options: { bundled?: boolean } = {}): Promise<{ code: number | null; stderr: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-refused-'));
  const childEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOG_LEVEL: 'warn',
    PORT: String(await freePort()),
    DATA_DIR: dataDir,
    SECRET_KEY: TEST_SECRET_KEY,
    ...env,
  };
  try {
    const child = spawn(process.execPath, providerArgs(options.bundled), { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return {
      code,
      stderr: stderr
        .split('\n')
        .filter((line) => !line.startsWith('oidc-provider WARNING'))
        .join('\n'),
    };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
