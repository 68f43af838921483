/** Groups of accounts; the policy engine attaches requirements to them. */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database, Group } from '../db/schema.ts';
import { forget } from '../db/request-memo.ts';
import { GROUP_POLICY_MEMO } from '../policy/store.ts';

export const groupNameSchema = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits and . _ -');

export class GroupConflictError extends Error {}

export async function createGroup(db: Kysely<Database>, name: string, description?: string): Promise<Group> {
  const valid = groupNameSchema.parse(name);
  try {
    return await db
      .insertInto('groups')
      .values({ id: crypto.randomBytes(12).toString('base64url'), name: valid, description: description ?? null })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new GroupConflictError(`a group named ${valid} already exists`);
    throw err;
  }
}

export async function findGroup(db: Kysely<Database>, name: string): Promise<Group | undefined> {
  return db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listGroups(db: Kysely<Database>): Promise<Array<Group & { members: number }>> {
  const rows = await db
    .selectFrom('groups')
    .leftJoin('account_groups', 'account_groups.group_id', 'groups.id')
    .select(['groups.id', 'groups.name', 'groups.description', 'groups.created_at'])
    .select((eb) => eb.fn.count<string>('account_groups.account_id').as('members'))
    .groupBy(['groups.id'])
    .orderBy('groups.name')
    .execute();
  return rows.map((r) => ({ ...r, members: Number(r.members) }));
}

export async function removeGroup(db: Kysely<Database>, groupId: string): Promise<void> {
  await db.deleteFrom('groups').where('id', '=', groupId).execute();
  forget(GROUP_POLICY_MEMO);
}

export async function addMember(db: Kysely<Database>, groupId: string, accountId: string): Promise<void> {
  await db
    .insertInto('account_groups')
    .values({ group_id: groupId, account_id: accountId })
    .onConflict((oc) => oc.doNothing())
    .execute();
  forget(GROUP_POLICY_MEMO);
}

export async function removeMember(db: Kysely<Database>, groupId: string, accountId: string): Promise<boolean> {
  const r = await db.deleteFrom('account_groups').where('group_id', '=', groupId).where('account_id', '=', accountId).executeTakeFirst();
  forget(GROUP_POLICY_MEMO);
  return Number(r.numDeletedRows) > 0;
}

export async function groupsOf(db: Kysely<Database>, accountId: string): Promise<Group[]> {
  return db
    .selectFrom('groups')
    .innerJoin('account_groups', 'account_groups.group_id', 'groups.id')
    .select(['groups.id', 'groups.name', 'groups.description', 'groups.created_at'])
    .where('account_groups.account_id', '=', accountId)
    .orderBy('groups.name')
    .execute();
}

export async function membersOf(db: Kysely<Database>, groupId: string): Promise<Array<{ id: string; username: string }>> {
  return db
    .selectFrom('accounts')
    .innerJoin('account_groups', 'account_groups.account_id', 'accounts.id')
    .select(['accounts.id', 'accounts.username'])
    .where('account_groups.group_id', '=', groupId)
    .orderBy('accounts.username')
    .execute();
}
