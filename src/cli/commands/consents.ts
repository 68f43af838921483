/**
 * `twofold user consents <username>`: the third-party apps a user allowed (remembered consent), and
 * `twofold user revoke-consent <username> <client>`: revoking one, with the app's tokens (audited).
 */
import type { Command } from 'commander';
import { findClientRow } from '../../oidc/clients.ts';
import { listConsents, revokeConsent } from '../../admin/consents.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';

export function registerConsents(user: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  user
    .command('consents <username>')
    .description('list the third-party apps a user allowed, with what and since when')
    .option('--json', 'print JSON')
    .action(async (username: string, opts: { json?: boolean }) => {
      const account = await requireAccount(ctx.services.db, username);
      const rows = await listConsents(ctx.services, { accountId: account.id });
      if (opts.json) printJson(io, rows);
      else {
        const table = rows.map((r) => ({ ...r, api_scopes: Object.entries(r.api_scopes).map(([api, scopes]) => `${api} ${scopes.join(',')}`) }));
        printTable(io, table, ['client_id', 'client_name', 'scopes', 'api_scopes', 'granted_at', 'expires_at']);
      }
    });

  user
    .command('revoke-consent <username> <client>')
    .description("revoke a user's consent to a third-party app (client id or name): its grant, tokens and codes go, and the next sign-in asks again")
    .action(async (username: string, clientName: string) => {
      const { db } = ctx.services;
      const account = await requireAccount(db, username);
      const client = await findClientRow(db, clientName);
      if (!client) throw new CliError(`no client named ${clientName}`);
      const result = await revokeConsent(ctx.services, { accountId: account.id, clientId: client.client_id, actor });
      if (!result.ok) throw new CliError(`${account.username} has no remembered consent to ${client.name}`);
      io.out(`revoked ${account.username}'s consent to ${client.name}; its tokens no longer work\n`);
    });
}
