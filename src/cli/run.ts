/**
 * The `twofold` command's table of sub-commands. It runs against services,
 * either in the CLI's own process or inside the provider (see
 * admin-socket.ts), and never calls process.exit itself.
 *
 * The services may be given already open (the provider, tests) or as an
 * opener that is called only once a command is about to run, so `--help`,
 * usage errors and unknown commands never touch the database.
 */
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import type { Services } from '../services.ts';
import { CliError, CliExit, type CliIO } from './io.ts';
import { describeZodError, usageCheckOf, type CommandContext } from './command.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerUsers } from './commands/users.ts';
import { registerGroups } from './commands/groups.ts';
import { registerClients } from './commands/clients.ts';
import { registerKeys } from './commands/keys.ts';
import { registerAudit } from './commands/audit.ts';
import { registerFactorList, registerFactors } from './commands/factors.ts';
import { registerPolicy } from './commands/policy.ts';
import { registerDevices } from './commands/devices.ts';
import { registerConsents } from './commands/consents.ts';

/**
 * Opens the services for the command about to run (its path, e.g. `user add`);
 * `migrated` names the migrations that opening applied.
 */
export type ServicesOpener = (command: string) => Promise<{ services: Services; migrated?: string[] }>;

/** `user add`, `group members add`… */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Commander's messages ("error: unknown option '--x'\n(Did you mean --y?)") as one line naming the help to read. */
function oneLine(cmd: Command, message: string): string {
  const text = message
    .replace(/^error:\s*/, '')
    .replace(/\s*\n\s*\(Did you mean (.*)\?\)/g, '; did you mean $1?')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  const help = ['twofold', commandPath(cmd), '--help'].filter(Boolean).join(' ');
  return `twofold: ${text} (see \`${help}\`)\n`;
}

export function buildProgram(io: CliIO, actor: string, open: ServicesOpener): Command {
  let services: Services | undefined;
  let migrated: string[] = [];
  const ctx: CommandContext = {
    io,
    actor,
    get services(): Services {
      if (!services) throw new Error('services are opened before a command runs');
      return services;
    },
    get migrated(): string[] {
      return migrated;
    },
  };
  const program = new Command('twofold')
    .description('Administer a Twofold identity provider')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    .showHelpAfterError(false)
    .showSuggestionAfterError(true);
  program.hook('preAction', async (_root, action) => {
    usageCheckOf(action)?.(action);
    if (services) return;
    const opened = await open(commandPath(action));
    services = opened.services;
    migrated = opened.migrated ?? [];
  });
  registerMigrate(program, ctx);
  registerUsers(program, ctx);
  registerFactors(
    program.commands.find((c) => c.name() === 'user')!,
    ctx,
  );
  registerDevices(
    program.commands.find((c) => c.name() === 'user')!,
    ctx,
  );
  registerConsents(
    program.commands.find((c) => c.name() === 'user')!,
    ctx,
  );
  registerFactorList(program, ctx);
  registerPolicy(program, ctx);
  registerGroups(program, ctx);
  registerClients(program, ctx);
  registerKeys(program, ctx);
  registerAudit(program, ctx);
  // Every command writes to io and reports usage errors on one line.
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(oneLine(cmd, s)),
      getOutHelpWidth: () => 80,
      getErrHelpWidth: () => 80,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}

/** Runs one command line (without the program name); returns the exit code. */
export async function runCli(argv: string[], io: CliIO, source: Services | ServicesOpener, actor = 'admin:cli'): Promise<number> {
  const open: ServicesOpener = typeof source === 'function' ? source : async () => ({ services: source });
  const program = buildProgram(io, actor, open);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit with 0; usage errors were already printed (one line).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliExit) return err.code;
    if (err instanceof CliError) {
      io.err(`twofold: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ZodError) {
      io.err(`twofold: ${describeZodError(err)}\n`);
      return 1;
    }
    throw err;
  }
}
