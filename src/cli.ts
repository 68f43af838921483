/**
 * `twofold …`: the administrator's command. With PostgreSQL it opens the
 * database itself. With PGlite only one process may open the data folder, so
 * when the provider is running the command is sent to it over the admin socket;
 * otherwise the CLI opens the folder itself (holding its lock).
 */
import path from 'node:path';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirBusyError, readLock } from './db/data-dir-lock.ts';
import { openServices, StartupError } from './bootstrap.ts';
import { sendToProvider } from './cli/admin-socket.ts';
import { runCli } from './cli/run.ts';
import type { CliIO } from './cli/io.ts';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** File arguments are resolved here, since the command may run in the provider's process with another working folder. */
function absolutiseFiles(argv: string[]): string[] {
  return argv.map((arg, i) => (argv[i - 1] === '--jwks-file' ? path.resolve(arg) : arg));
}

export async function main(argv: string[]): Promise<number> {
  const io: CliIO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  const args = absolutiseFiles(argv);
  const helpOnly = args.length === 0 || args.includes('--help') || args.includes('-h');
  if (args.includes('--password-stdin')) io.stdin = await readStdin();

  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`twofold: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  process.env.LOG_LEVEL ??= 'warn';

  if (!config.DATABASE_URL && !helpOnly) {
    const holder = readLock(config.dataDir);
    if (holder && holder.pid !== process.pid) {
      if (!holder.socket) {
        io.err(`twofold: the data folder ${config.dataDir} is in use by process ${holder.pid}, which does not accept commands; stop it or try again\n`);
        return 1;
      }
      try {
        const answer = await sendToProvider(holder.socket, { argv: args, stdin: io.stdin });
        io.out(answer.stdout);
        io.err(answer.stderr);
        return answer.code;
      } catch (err) {
        io.err(`twofold: cannot reach the provider (process ${holder.pid}) through ${holder.socket}: ${(err as Error).message}\n`);
        return 1;
      }
    }
  }

  let opened;
  try {
    // Only `migrate` changes the schema; other commands refuse an outdated one.
    opened = await openServices(config, { migrate: args[0] === 'migrate' || (helpOnly ? false : config.MIGRATE_ON_START && !config.DATABASE_URL) });
  } catch (err) {
    if (err instanceof StartupError || err instanceof DataDirBusyError) {
      io.err(`twofold: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  try {
    return await runCli(args, io, opened.services, 'admin:cli');
  } finally {
    await opened.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`twofold: internal error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
