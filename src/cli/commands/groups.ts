import type { Command } from 'commander';
import { addMember, createGroup, findGroup, GroupConflictError, listGroups, membersOf, removeGroup, removeMember } from '../../accounts/groups.ts';
import { recordAudit } from '../../security/audit.ts';
import { CliError, printJson, printTable } from '../io.ts';
import type { CommandContext } from '../run.ts';
import { requireAccount } from './lookup.ts';

export function registerGroups(program: Command, { services, io, actor }: CommandContext): void {
  const { db } = services;
  const requireGroup = async (name: string) => {
    const group = await findGroup(db, name);
    if (!group) throw new CliError(`no group named ${name}`);
    return group;
  };
  const group = program.command('group').description('manage groups');

  group
    .command('add <name>')
    .option('--description <text>', 'what the group is for')
    .action(async (name: string, opts: { description?: string }) => {
      try {
        const g = await createGroup(db, name, opts.description);
        await recordAudit(db, 'group.created', { actor }, { group: g.name });
        io.out(`created group ${g.name}\n`);
      } catch (err) {
        if (err instanceof GroupConflictError) throw new CliError(err.message);
        throw err;
      }
    });

  group
    .command('list')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listGroups(db);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['name', 'members', 'description']);
    });

  group.command('remove <name>').action(async (name: string) => {
    const g = await requireGroup(name);
    await removeGroup(db, g.id);
    await recordAudit(db, 'group.removed', { actor }, { group: g.name });
    io.out(`removed group ${g.name}\n`);
  });

  const members = group.command('members').description('manage group membership');
  members.command('add <group> <username>').action(async (groupName: string, username: string) => {
    const g = await requireGroup(groupName);
    const account = await requireAccount(db, username);
    await addMember(db, g.id, account.id);
    await recordAudit(db, 'group.member_added', { accountId: account.id, actor }, { group: g.name });
    io.out(`${account.username} is in ${g.name}\n`);
  });
  members.command('remove <group> <username>').action(async (groupName: string, username: string) => {
    const g = await requireGroup(groupName);
    const account = await requireAccount(db, username);
    if (!(await removeMember(db, g.id, account.id))) throw new CliError(`${account.username} is not in ${g.name}`);
    await recordAudit(db, 'group.member_removed', { accountId: account.id, actor }, { group: g.name });
    io.out(`${account.username} removed from ${g.name}\n`);
  });
  members
    .command('list <group>')
    .option('--json', 'print JSON')
    .action(async (groupName: string, opts: { json?: boolean }) => {
      const g = await requireGroup(groupName);
      const rows = await membersOf(db, g.id);
      if (opts.json) printJson(io, rows);
      else printTable(io, rows, ['username', 'id']);
    });
}
