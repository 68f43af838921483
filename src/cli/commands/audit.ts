import type { Command } from 'commander';
import { listAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';

export function registerAudit(program: Command, ctx: CommandContext): void {
  const { io } = ctx;
  program
    .command('audit')
    .description('security events')
    .command('list')
    .description('list events, newest first')
    .option('--user <username>', "only this user's events")
    .option('--type <type>', 'only events of this type (e.g. login.failed)')
    .option('--limit <n>', 'how many, newest first', '100')
    .option('--json', 'print JSON')
    .action(async (opts: { user?: string; type?: string; limit: string; json?: boolean }) => {
      const { db } = ctx.services;
      const limit = Number(opts.limit);
      if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 10000)
        throw new CliError(`--limit: a whole number from 1 to 10000 (got ${JSON.stringify(opts.limit)})`);
      const accountId = opts.user ? (await requireAccount(db, opts.user)).id : undefined;
      const rows = (await listAudit(db, { accountId, type: opts.type, limit })).map((e) => ({ ...e, id: String(e.id) }));
      if (opts.json) printJson(io, rows);
      else
        printTable(
          io,
          rows.map((r) => ({ ...r, details: JSON.stringify(r.details) })),
          ['at', 'type', 'account_id', 'client_id', 'ip', 'actor', 'details'],
        );
    });
}
