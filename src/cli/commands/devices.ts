/**
 * `twofold user devices <username>`: a user's trusted devices with their real
 * state (live, revoked, expired, or void because the account's factors or
 * password changed since), and revoking them (audited).
 */
import type { Command } from 'commander';
import { listDevices, revokeAllDevices, revokeDevice } from '../../mfa/trusted-devices.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';

export function registerDevices(user: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  user
    .command('devices <username>')
    .description('list a user\'s trusted devices ("don\'t ask again on this device"), or revoke them')
    .option('--revoke <id>', 'revoke one device')
    .option('--revoke-all', 'revoke every device')
    .option('--json', 'print JSON')
    .action(async (username: string, opts: { revoke?: string; revokeAll?: boolean; json?: boolean }) => {
      const { db } = ctx.services;
      const account = await requireAccount(db, username);
      if (opts.revoke) {
        if (!(await revokeDevice(db, account.id, opts.revoke))) throw new CliError(`${account.username} has no live device ${opts.revoke}`);
        await recordAudit(db, 'device.revoked', { accountId: account.id, actor }, { device: opts.revoke });
        io.out(`revoked ${opts.revoke}\n`);
        return;
      }
      if (opts.revokeAll) {
        const n = await revokeAllDevices(db, account.id);
        // An audit event says something happened: none when there was nothing to revoke.
        if (n === 0) {
          io.out(`no devices to revoke for ${account.username}\n`);
          return;
        }
        await recordAudit(db, 'device.revoked', { accountId: account.id, actor }, { all: true, count: n });
        io.out(`revoked ${n} device(s) of ${account.username}\n`);
        return;
      }
      const rows = await listDevices(db, account.id);
      if (opts.json) printJson(io, rows);
      else
        printTable(io, rows as unknown as Array<Record<string, unknown>>, [
          'id',
          'label',
          'state',
          'factor_id',
          'created_at',
          'last_used_at',
          'expires_at',
          'revoked_at',
        ]);
    });
}
