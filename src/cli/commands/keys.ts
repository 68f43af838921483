import type { Command } from 'commander';
import { activateDueKeys, listKeys, rotateKeys } from '../../oidc/keys.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';

export function registerKeys(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const keys = program.command('keys').description('manage token signing keys');

  keys
    .command('list')
    .description('list signing keys and their state: active (signs), next (published, signs from activates_at), retired (published until expires_at)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { db, config, clock } = ctx.services;
      // A switch that is due is made here too, so the list shows what the providers sign with.
      const activated = await activateDueKeys(db, config.KEY_RETIREMENT_TTL, clock.now());
      if (activated.length) await recordAudit(db, 'keys.activated', { actor: 'system' }, { activated });
      const rows = await listKeys(db);
      if (opts.json) printJson(io, rows);
      else
        printTable(io, rows as unknown as Array<Record<string, unknown>>, ['kid', 'alg', 'status', 'created_at', 'activates_at', 'retired_at', 'expires_at']);
    });

  keys
    .command('rotate')
    .description('publish new signing keys that sign after KEY_PUBLISH_DELAY; the replaced ones stay published for KEY_RETIREMENT_TTL')
    .option('--now', 'emergency (a compromised key): the new keys sign at once, apps that cached the JWKS must fetch it again')
    .option('--withdraw', 'with --now: stop publishing the replaced keys at once, so tokens they signed are no longer accepted')
    .option('--json', 'print JSON')
    .action(async (opts: { now?: boolean; withdraw?: boolean; json?: boolean }) => {
      const { db, sealer, config, clock } = ctx.services;
      if (opts.withdraw && !opts.now) throw new CliError('--withdraw only goes with --now (an emergency rotation)');
      const result = await rotateKeys(db, sealer, {
        retirementTtlSeconds: config.KEY_RETIREMENT_TTL,
        publishDelaySeconds: config.KEY_PUBLISH_DELAY,
        immediate: opts.now,
        withdraw: opts.withdraw,
        now: clock.now(),
      });
      if (result.outcome === 'pending') {
        throw new CliError(
          `a rotation is already pending: ${result.pending.join(', ')} sign from ${result.activatesAt.toISOString()}; wait for it, or switch at once with \`twofold keys rotate --now\``,
        );
      }
      if (result.outcome === 'scheduled') {
        const details = { created: result.created, activates_at: result.activatesAt.toISOString(), publish_delay_seconds: config.KEY_PUBLISH_DELAY };
        await recordAudit(db, 'keys.rotated', { actor }, details);
        if (opts.json) printJson(io, { outcome: 'scheduled', ...details, retired_for_seconds: config.KEY_RETIREMENT_TTL });
        else {
          io.out(
            `next signing keys: ${result.created.join(', ')} (published now)\n` +
              `they sign from ${details.activates_at} (KEY_PUBLISH_DELAY ${config.KEY_PUBLISH_DELAY}s); the keys they replace stay published for ${config.KEY_RETIREMENT_TTL}s after that\n`,
          );
        }
        return;
      }
      const details = { created: result.created, retired: result.retired, dropped: result.dropped, immediate: true, withdrawn: !!opts.withdraw };
      await recordAudit(db, 'keys.rotated', { actor }, details);
      const publishedFor = opts.withdraw ? 0 : config.KEY_RETIREMENT_TTL;
      if (opts.json) printJson(io, { outcome: 'switched', ...details, retired_for_seconds: publishedFor });
      else {
        io.out(
          `new signing keys (signing now): ${result.created.join(', ')}\n` +
            (opts.withdraw
              ? `withdrawn (no longer published): ${result.retired.join(', ') || '(none)'}\n`
              : `retired (still published for ${publishedFor}s): ${result.retired.join(', ') || '(none)'}\n`) +
            'running providers pick up the new keys within 30 seconds\n',
        );
      }
    });
}
