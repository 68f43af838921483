/**
 * A provider in a process of its own (`node src/main.ts`, as `npm run dev`
 * runs it), on a PostgreSQL database a test already uses: its own pool, its
 * own memory, nothing shared with the test process but the database. For
 * claims about "another provider process".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import { TEST_SECRET_KEY } from './server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const READY_TIMEOUT = 60_000;

export interface ProviderProcess {
  issuer: string;
  child: ChildProcess;
  /** What the process printed, for failure messages. */
  log(): string;
  close(): Promise<void>;
}

/** Starts the provider on `databaseUrl` with the test suite's SECRET_KEY (so sealed rows open) and waits until /readyz answers. */
export async function startProviderProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ProviderProcess> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-proc-'));
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
    DATABASE_URL: databaseUrl,
    ...env,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (output += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (output += t));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`the provider process did not become ready: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { issuer: `http://localhost:${port}`, child, log: () => output, close };
}
