import type { Command } from 'commander';
import { ZodError } from 'zod';
import { addMember, createGroup, findGroup, GroupConflictError, listGroups, membersOf, removeGroup, removeMember } from '../../accounts/groups.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../command.ts';
import { requireAccount } from './lookup.ts';

export function registerGroups(program: Command, ctx: CommandContext): void {
  const { io, actor } = ctx;
  const requireGroup = async (name: string) => {
    const group = await findGroup(ctx.services.db, name);
    if (!group) throw new CliError(`no group named ${name}`);
    return group;
  };
  const group = program.command('group').description('manage groups');

  group
    .command('add <name>')
    .description('create a group')
    .option('--description <text>', 'what the group is for')
    .action(async (name: string, opts: { description?: string }) => {
      const { db } = ctx.services;
      try {
        const g = await createGroup(db, name, opts.description);
        await recordAudit(db, 'group.created', { actor }, { group: g.name });
        io.out(`created group ${g.name}\n`);
      } catch (err) {
        if (err instanceof GroupConflictError) throw new CliError(err.message);
        if (err instanceof ZodError) throw new CliError(`invalid group name ${JSON.stringify(name)}: ${err.issues[0]!.message}`);
        throw err;
      }
    });

  group
    .command('list')
    .description('list groups with their member counts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listGroups(ctx.services.db);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['name', 'members', 'description']);
    });

  group
    .command('remove <name>')
    .description('delete a group (its members stay)')
    .action(async (name: string) => {
      const { db } = ctx.services;
      const g = await requireGroup(name);
      await removeGroup(db, g.id);
      await recordAudit(db, 'group.removed', { actor }, { group: g.name });
      io.out(`removed group ${g.name}\n`);
    });

  const members = group.command('members').description('manage group membership');
  members
    .command('add <group> <username>')
    .description('put a user in a group')
    .action(async (groupName: string, username: string) => {
      const { db } = ctx.services;
      const g = await requireGroup(groupName);
      const account = await requireAccount(db, username);
      await addMember(db, g.id, account.id);
      await recordAudit(db, 'group.member_added', { accountId: account.id, actor }, { group: g.name });
      io.out(`${account.username} is in ${g.name}\n`);
    });
  members
    .command('remove <group> <username>')
    .description('take a user out of a group')
    .action(async (groupName: string, username: string) => {
      const { db } = ctx.services;
      const g = await requireGroup(groupName);
      const account = await requireAccount(db, username);
      if (!(await removeMember(db, g.id, account.id))) throw new CliError(`${account.username} is not in ${g.name}`);
      await recordAudit(db, 'group.member_removed', { accountId: account.id, actor }, { group: g.name });
      io.out(`${account.username} removed from ${g.name}\n`);
    });
  members
    .command('list <group>')
    .description("list a group's members")
    .option('--json', 'print JSON')
    .action(async (groupName: string, opts: { json?: boolean }) => {
      const g = await requireGroup(groupName);
      const rows = await membersOf(ctx.services.db, g.id);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['username', 'id']);
    });
}
