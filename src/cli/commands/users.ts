import type { Command } from 'commander';
import { AccountConflictError, listAccounts, removeAccount, setDisabled } from '../../accounts/accounts.ts';
import { changePassword } from '../../accounts/password-change.ts';
import { notifySessionsEnded } from '../../accounts/end-sessions.ts';
import { groupsOf } from '../../accounts/groups.ts';
import type { Account } from '../../db/schema.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printFields, printJson, printTable, secretFromStdin } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';
import { unlockAccount } from '../../admin/unlock-account.ts';
import { addAccount } from '../../admin/add-account.ts';
import { Catalogue, type MessageRef } from '../../i18n/catalogue.ts';

/** The command speaks English; a refusal's words are the same the pages show. */
let english: Catalogue | undefined;
const say = (message: MessageRef) => (english ??= new Catalogue()).text('en', message.key, message.params);

function publicView(a: Account) {
  return {
    id: a.id,
    username: a.username,
    email: a.email,
    email_verified: a.email_verified,
    name: a.display_name,
    disabled: a.disabled,
    // Signed up, address not yet confirmed: cannot sign in (src/accounts/sign-up.ts).
    sign_up_pending: a.sign_up_pending,
    has_password: a.password_hash !== null,
    created_at: a.created_at,
  };
}

export function registerUsers(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const user = program.command('user').description('manage user accounts');

  user
    .command('add <username>')
    .description('create a user')
    .option('--email <email>', 'email address')
    .option('--email-verified', 'mark the email address as verified')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--json', 'print JSON')
    .action(async (username: string, opts: { email?: string; emailVerified?: boolean; name?: string; passwordStdin?: boolean; json?: boolean }) => {
      const password = opts.passwordStdin ? secretFromStdin(io, 'password') : undefined;
      try {
        const added = await addAccount(
          ctx.services,
          { username, email: opts.email, emailVerified: opts.emailVerified ?? false, displayName: opts.name, password },
          actor,
        );
        if (!added.ok) throw new CliError(`password refused: ${say(added.message)}`);
        const { account } = added;
        if (opts.json) printJson(io, publicView(account));
        else io.out(`created user ${account.username} (id ${account.id})${password ? '' : '; set a password with `twofold user set-password`'}\n`);
      } catch (err) {
        if (err instanceof AccountConflictError) throw new CliError(err.message);
        throw err;
      }
    });

  user
    .command('list')
    .description('list users')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = (await listAccounts(ctx.services.db)).map(publicView);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['username', 'email', 'name', 'disabled', 'id']);
    });

  user
    .command('show <username>')
    .description('show one user')
    .option('--json', 'print JSON')
    .action(async (username: string, opts: { json?: boolean }) => {
      const { db } = ctx.services;
      const account = await requireAccount(db, username);
      const groups = (await groupsOf(db, account.id)).map((g) => g.name);
      const view = { ...publicView(account), groups };
      if (opts.json) printJson(io, view);
      else printFields(io, view, { join: ', ' });
    });

  user
    .command('set-password <username>')
    .description("set a user's password (read from standard input); ends all their sessions and revokes their tokens")
    .requiredOption('--password-stdin', 'read the password from standard input')
    .action(async (username: string) => {
      const account = await requireAccount(ctx.services.db, username);
      const result = await changePassword(ctx.services, { accountId: account.id, password: secretFromStdin(io, 'password'), via: 'admin', actor });
      if (!result.ok) {
        if (result.reason === 'refused') throw new CliError(`password refused: ${say(result.message)}`);
        throw new CliError(result.reason === 'invalid_input' ? result.message : `no user ${username}`);
      }
      io.out(`password set for ${account.username}; sessions ended: ${result.sessionsEnded.length}, grants, tokens and codes revoked: ${result.revoked}\n`);
    });

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    user
      .command(`${name} <username>`)
      .description(disabled ? 'disable a user and end their sessions' : 'enable a user')
      .action(async (username: string) => {
        const { db } = ctx.services;
        const account = await requireAccount(db, username);
        await notifySessionsEnded(ctx.services, account.id, await setDisabled(db, account.id, disabled), 'disabled');
        await recordAudit(db, disabled ? 'account.disabled' : 'account.enabled', { accountId: account.id, actor });
        io.out(`${account.username} ${disabled ? 'disabled' : 'enabled'}\n`);
      });
  }

  user
    .command('unlock <username>')
    .description("clear a user's lockouts: every failure counted against the account (passwords, second factors, known browsers, passkeys)")
    .action(async (username: string) => {
      const { db } = ctx.services;
      const account = await requireAccount(db, username);
      const { cleared } = await unlockAccount(db, { accountId: account.id, actor });
      io.out(cleared ? `unlocked ${account.username} (${cleared} counter(s) cleared)\n` : `nothing to unlock for ${account.username}\n`);
    });

  user
    .command('remove <username>')
    .description('delete a user, their sessions and tokens')
    .action(async (username: string) => {
      const { db } = ctx.services;
      const account = await requireAccount(db, username);
      await notifySessionsEnded(ctx.services, account.id, (await removeAccount(db, account.id)).sessions, 'removed');
      await recordAudit(db, 'account.removed', { accountId: account.id, actor }, { username: account.username });
      io.out(`removed ${account.username}\n`);
    });
}
