/**
 * The `twofold` process: reads the same configuration as the server, then
 * either opens the database itself or, when a provider holds the PGlite data
 * folder, sends the command line to it over the admin socket.
 *
 * The database is opened only when a command is about to run (see run.ts), so
 * `--help` and usage errors work without it, even while the folder is busy.
 */
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { DataDirBusyError, readLock } from '../db/data-dir-lock.ts';
import { openServices, StartupError, type Opened } from '../bootstrap.ts';
import { loadKeyMaterial } from '../oidc/keys.ts';
import { SealError } from '../security/sealer.ts';
import type { Services } from '../services.ts';
import { sendToProvider } from './admin-socket.ts';
import { CliError, CliExit, type CliIO } from './io.ts';
import { runCli, type ServicesOpener } from './run.ts';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** File arguments are resolved here, since the command may run in the provider's process with another working folder. */
export function absolutiseFiles(argv: string[]): string[] {
  return argv.map((arg, i) => {
    if (argv[i - 1] === '--jwks-file') return path.resolve(arg);
    if (argv[i - 1] === '--file' && arg !== '-') return path.resolve(arg);
    if (arg.startsWith('--jwks-file=')) return `--jwks-file=${path.resolve(arg.slice('--jwks-file='.length))}`;
    return arg;
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Refuses to write with a SECRET_KEY other than the one that sealed the stored
 * secrets: what this run sealed could never be opened by the provider.
 */
async function checkSecretKey(services: Services): Promise<void> {
  try {
    await loadKeyMaterial(services.db, services.sealer);
  } catch (err) {
    if (err instanceof SealError)
      throw new CliError("SECRET_KEY does not match the key that encrypted the stored data; use the provider's SECRET_KEY (or its DATA_DIR)");
    throw err;
  }
}

/**
 * What to do about an outdated schema, true for this database kind: on PGlite
 * MIGRATE_ON_START=true makes the CLI migrate as it opens the folder; on
 * PostgreSQL the CLI migrates only as `twofold migrate` (it may share the
 * database with running providers), whatever MIGRATE_ON_START says.
 */
export function migrationAdvice(config: Config): string {
  return config.DATABASE_URL
    ? 'run `twofold migrate` (on PostgreSQL the twofold command migrates only then; a provider started with MIGRATE_ON_START=true, the default, migrates too)'
    : 'run `twofold migrate` or set MIGRATE_ON_START=true';
}

/** The open error, with the CLI's own advice when the schema is outdated (the server's message speaks for `npm start`). */
function startupMessage(err: Error, config: Config): string {
  const outdated = /^(the database needs migrations \([^)]*\));/.exec(err.message);
  return outdated ? `${outdated[1]}; ${migrationAdvice(config)}` : err.message;
}

export async function main(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = absolutiseFiles(argv);
  let opened: Opened | undefined;

  const open: ServicesOpener = async (command) => {
    const fileFromStdin = args.some((a, i) => a === '-' && args[i - 1] === '--file');
    if (args.includes('--password-stdin') || args.includes('--secret-stdin') || fileFromStdin) io.stdin = await readStdin();
    let config: Config;
    try {
      config = loadConfig(env);
    } catch (err) {
      if (err instanceof ConfigError) {
        io.err(`twofold: ${err.message}\n`);
        throw new CliExit(2);
      }
      throw err;
    }
    const migrate = command === 'migrate' || (config.MIGRATE_ON_START && !config.DATABASE_URL);
    // A provider on a loaded machine may take a while to open its socket after taking the lock.
    const deadline = Date.now() + config.CLI_BUSY_WAIT * 1000;
    for (;;) {
      if (!config.DATABASE_URL) {
        const holder = readLock(config.dataDir);
        if (holder && holder.pid !== process.pid) {
          if (holder.socket) {
            let answer;
            try {
              answer = await sendToProvider(holder.socket, { argv: args, stdin: io.stdin });
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              // A provider between opening the folder and listening, or shutting down.
              if ((code === 'ENOENT' || code === 'ECONNREFUSED') && Date.now() < deadline) {
                await sleep(100);
                continue;
              }
              throw new CliError(`cannot reach the provider (process ${holder.pid}) through ${holder.socket}: ${(err as Error).message}`);
            }
            io.out(answer.stdout);
            io.err(answer.stderr);
            throw new CliExit(answer.code);
          }
          if (Date.now() < deadline) {
            await sleep(100);
            continue;
          }
          throw new CliError(`the data folder ${config.dataDir} is in use by process ${holder.pid}, which does not accept commands; stop it or try again`);
        }
      }
      try {
        opened = await openServices(config, { migrate });
        break;
      } catch (err) {
        // Someone took the folder between our look and our lock: look again.
        if (err instanceof DataDirBusyError && Date.now() < deadline) continue;
        if (err instanceof StartupError || err instanceof DataDirBusyError) throw new CliError(startupMessage(err, config));
        const code = (err as NodeJS.ErrnoException).code;
        if (!config.DATABASE_URL && code && /^E[A-Z]+$/.test(code))
          throw new CliError(`cannot open the data folder ${config.dataDir}: ${(err as Error).message}`);
        throw err;
      }
    }
    if (command !== 'migrate') await checkSecretKey(opened.services);
    return { services: opened.services, migrated: opened.migrated };
  };

  try {
    return await runCli(args, io, open, 'admin:cli');
  } finally {
    await opened?.close();
  }
}
