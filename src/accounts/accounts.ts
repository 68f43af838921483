/**
 * Accounts: who can sign in. The `id` is random and never changes, so it
 * serves as the stable, opaque `sub`.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Account, Database } from '../db/schema.ts';
import type { PasswordHasher } from './password-hasher.ts';
import { revokeAccountAccess, type EndedSession } from './end-sessions.ts';

export const usernameSchema = z
  .string()
  .trim()
  .min(1, 'a username is required')
  .max(64, 'at most 64 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@+-]*$/, 'letters, digits and . _ @ + - (starting with a letter or digit)');

export const emailSchema = z.email('a valid email address').max(254);
/**
 * The bounds any stored password keeps. What a person's new password must be (length for its context, the
 * blocklist, their own username…) is password-rules.ts, applied where a password is set (src/admin/add-account.ts,
 * password-change.ts); createAccount alone checks only these bounds.
 */
export const passwordSchema = z.string().min(8, 'at least 8 characters').max(256, 'at most 256 characters');
export const displayNameSchema = z.string().trim().min(1).max(200);

export const newAccountSchema = z.object({
  username: usernameSchema,
  email: emailSchema.optional(),
  emailVerified: z.boolean().default(false),
  displayName: displayNameSchema.optional(),
  password: passwordSchema.optional(),
});
export type NewAccountInput = z.input<typeof newAccountSchema>;

export class AccountConflictError extends Error {}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === '23505';
}

export function newAccountId(): string {
  return crypto.randomBytes(16).toString('base64url');
}

export async function createAccount(db: Kysely<Database>, hasher: PasswordHasher, input: NewAccountInput): Promise<Account> {
  const data = newAccountSchema.parse(input);
  const passwordHash = data.password ? await hasher.hash(data.password) : null;
  try {
    return await db
      .insertInto('accounts')
      .values({
        id: newAccountId(),
        username: data.username,
        email: data.email ?? null,
        email_verified: data.emailVerified,
        display_name: data.displayName ?? null,
        password_hash: passwordHash,
        password_changed_at: passwordHash ? new Date() : null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (err) {
    if (isUniqueViolation(err)) throw new AccountConflictError('an account with that username or email already exists');
    throw err;
  }
}

export async function findAccountById(db: Kysely<Database>, id: string): Promise<Account | undefined> {
  return db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Finds by username, or by email when the login contains '@' and no username matches. Case-insensitive. */
export async function findAccountByLogin(db: Kysely<Database>, login: string): Promise<Account | undefined> {
  const needle = login.trim().toLowerCase();
  if (!needle) return undefined;
  const rows = await db
    .selectFrom('accounts')
    .selectAll()
    .where((eb) => eb.or([eb(eb.fn('lower', ['username']), '=', needle), eb(eb.fn('lower', ['email']), '=', needle)]))
    .limit(2)
    .execute();
  return rows.find((r) => r.username.toLowerCase() === needle) ?? rows[0];
}

export async function listAccounts(db: Kysely<Database>): Promise<Account[]> {
  return db.selectFrom('accounts').selectAll().orderBy('username').execute();
}

/** Disables or enables an account. A disabled account keeps no live sessions or tokens: the sessions it ended are returned. */
export async function setDisabled(db: Kysely<Database>, accountId: string, disabled: boolean): Promise<EndedSession[]> {
  return db.transaction().execute(async (trx) => {
    await trx.updateTable('accounts').set({ disabled, updated_at: new Date() }).where('id', '=', accountId).execute();
    return disabled ? (await revokeAccountAccess(trx, accountId)).sessions : [];
  });
}

/** Deletes an account with its sessions and tokens; returns the sessions it ended (for back-channel logout). */
export async function removeAccount(db: Kysely<Database>, accountId: string): Promise<{ removed: boolean; sessions: EndedSession[] }> {
  return db.transaction().execute(async (trx) => {
    const { sessions } = await revokeAccountAccess(trx, accountId);
    const result = await trx.deleteFrom('accounts').where('id', '=', accountId).executeTakeFirst();
    return { removed: Number(result.numDeletedRows) > 0, sessions };
  });
}

export type AuthenticateResult = { ok: true; account: Account } | { ok: false; reason: 'invalid_credentials' };

/**
 * Checks a login and password. An unknown login, a wrong password and a
 * disabled account all do one argon2id verification and return the same
 * failure, so neither the answer nor its timing reveals which accounts exist.
 */
export async function authenticatePassword(db: Kysely<Database>, hasher: PasswordHasher, login: string, password: string): Promise<AuthenticateResult> {
  return checkPassword(db, hasher, await findAccountByLogin(db, login), password);
}

/** `authenticatePassword` for an account already looked up (undefined: the login named none), with the same work and answers. */
export async function checkPassword(db: Kysely<Database>, hasher: PasswordHasher, account: Account | undefined, password: string): Promise<AuthenticateResult> {
  if (!account || !account.password_hash) {
    await hasher.verifyDummy(password);
    return { ok: false, reason: 'invalid_credentials' };
  }
  const verdict = await hasher.verify(account.password_hash, password);
  if (!verdict.ok || account.disabled) return { ok: false, reason: 'invalid_credentials' };
  if (verdict.needsRehash) {
    // Upgrade a hash made with older parameters now that we hold the password.
    // Conditional on the old hash, so a concurrent password change wins.
    const upgraded = await hasher.hash(password);
    await db.updateTable('accounts').set({ password_hash: upgraded }).where('id', '=', account.id).where('password_hash', '=', account.password_hash).execute();
  }
  return { ok: true, account };
}
