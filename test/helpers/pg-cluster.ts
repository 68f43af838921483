/**
 * A throwaway PostgreSQL cluster for the fault tests: Debian's own server
 * binaries (initdb, pg_ctl) on a data folder in a temporary directory and a
 * free port of its own, so a test can terminate its backends, restart it or
 * stop it without touching the shared server at 127.0.0.1:5432.
 *
 * PostgreSQL refuses to run as root; under root (CI containers) the cluster
 * runs as the `postgres` user (Debian's package makes it) or, failing that, as
 * `nobody`. `destroy()` stops the server (immediately) and removes the folder;
 * call it in afterAll whatever happened.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports.ts';

/** The newest server binaries Debian installed (/usr/lib/postgresql/<major>/bin), or PG_BIN_DIR. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  majors.sort((a, b) => Number(b) - Number(a));
  if (!majors.length) throw new Error(`no PostgreSQL server binaries under ${root}/*/bin (install Debian's postgresql package, or set PG_BIN_DIR)`);
  return path.join(root, majors[0]!, 'bin');
}

/** Who runs the server: ourselves, or an unprivileged user when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
      return { uid, gid };
    } catch {
      /* next */
    }
  }
  throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as');
}

export interface PgCluster {
  port: number;
  /** postgres://…/postgres of the cluster (trust authentication, user postgres). */
  adminUrl: string;
  /** A URL for a database of that name on this cluster. */
  urlFor(database: string): string;
  /** Runs one statement as the superuser on its own connection. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[], database?: string): Promise<T[]>;
  /** `select pg_terminate_backend(pid)` for every other backend of `database`; how many were terminated. */
  terminateBackends(database: string): Promise<number>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Whether `select 1` answers now (one attempt). */
  answers(): Promise<boolean>;
  destroy(): Promise<void>;
}

function run(bin: string, args: string[], owner: { uid: number; gid: number } | undefined, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(owner ?? {}), env: { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C' } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (out += t));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed (${signal ?? code}):\n${out}`));
    });
  });
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBinDir();
  const owner = runAs();
  // Short: the unix socket's path must fit in 107 bytes. Under root, in /tmp: the server's user must reach it.
  const dir = fs.mkdtempSync(path.join(owner ? '/tmp' : os.tmpdir(), 'tf-pg-'));
  const data = path.join(dir, 'data');
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  fs.chmodSync(dir, 0o700);
  const port = await freePort();
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], owner);
  // Our own port, on 127.0.0.1 only, its socket in our folder (never Debian's /var/run/postgresql); small, and quick to stop.
  const options = [
    '-c',
    `port=${port}`,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dir}`,
    '-c',
    'max_connections=60',
    '-c',
    'shared_buffers=32MB',
  ].join(' ');
  const pgCtl = (...args: string[]) => run(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'server.log'), '-o', options, ...args], owner);
  await pgCtl('start', '-w', '-t', '60');

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const query = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = [], database = 'postgres'): Promise<T[]> => {
    const client = new pg.Client({ connectionString: urlFor(database), connectionTimeoutMillis: 5000 });
    client.on('error', () => {}); // a restart under us is what these tests do
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  };
  let destroyed = false;
  return {
    port,
    adminUrl,
    urlFor,
    query,
    async terminateBackends(database) {
      const rows = await query<{ terminated: boolean }>(
        'select pg_terminate_backend(pid) as terminated from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [database],
      );
      return rows.filter((r) => r.terminated).length;
    },
    stop: async (mode = 'fast') => void (await pgCtl('stop', '-w', '-m', mode)),
    start: async () => void (await pgCtl('start', '-w', '-t', '60')),
    restart: async (mode = 'fast') => void (await pgCtl('restart', '-w', '-m', mode, '-t', '60')),
    answers: () =>
      query('select 1').then(
        () => true,
        () => false,
      ),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await pgCtl('stop', '-w', '-m', 'immediate').catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
