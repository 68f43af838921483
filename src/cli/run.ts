/**
 * The `twofold` command's table of sub-commands. It runs against open
 * services, either in the CLI's own process or inside the provider (see
 * admin-socket.ts), and never calls process.exit itself.
 */
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import type { Services } from '../services.ts';
import { CliError, type CliIO } from './io.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerUsers } from './commands/users.ts';
import { registerGroups } from './commands/groups.ts';
import { registerClients } from './commands/clients.ts';
import { registerKeys } from './commands/keys.ts';
import { registerAudit } from './commands/audit.ts';

export interface CommandContext {
  services: Services;
  io: CliIO;
  /** Recorded as the actor of audit events. */
  actor: string;
}

export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('twofold')
    .description('Administer a Twofold identity provider')
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) })
    .showHelpAfterError(false);
  registerMigrate(program, ctx);
  registerUsers(program, ctx);
  registerGroups(program, ctx);
  registerClients(program, ctx);
  registerKeys(program, ctx);
  registerAudit(program, ctx);
  // Sub-commands inherit the error handling.
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

/** Runs one command line (without the program name); returns the exit code. */
export async function runCli(argv: string[], io: CliIO, services: Services, actor = 'admin:cli'): Promise<number> {
  const program = buildProgram({ services, io, actor });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit with 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      io.err(`twofold: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ZodError) {
      const issue = err.issues[0]!;
      io.err(`twofold: ${issue.path.length ? issue.path.join('.') + ': ' : ''}${issue.message}\n`);
      return 1;
    }
    throw err;
  }
}
