import type { Command } from 'commander';
import { listKeys, rotateKeys } from '../../oidc/keys.ts';
import { recordAudit } from '../../security/audit.ts';
import { printJson, printTable } from '../io.ts';
import type { CommandContext } from '../run.ts';

export function registerKeys(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const keys = program.command('keys').description('manage token signing keys');

  keys
    .command('list')
    .description('list signing keys, active first')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listKeys(ctx.services.db);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows as unknown as Array<Record<string, unknown>>, ['kid', 'alg', 'status', 'created_at', 'expires_at']);
    });

  keys
    .command('rotate')
    .description('make new signing keys; the old ones stay published for KEY_RETIREMENT_TTL seconds')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { db, sealer, config } = ctx.services;
      const result = await rotateKeys(db, sealer, config.KEY_RETIREMENT_TTL);
      await recordAudit(db, 'keys.rotated', { actor }, result);
      if (opts.json) printJson(io, { ...result, retired_for_seconds: config.KEY_RETIREMENT_TTL });
      else io.out(`new signing keys: ${result.created.join(', ')}\nretired (still published for ${config.KEY_RETIREMENT_TTL}s): ${result.retired.join(', ') || '(none)'}\nrunning providers pick up the new keys within 30 seconds\n`);
    });
}
