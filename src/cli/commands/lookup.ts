/** Shared look-ups that turn a name on the command line into a row, or a clear error. */
import type { Kysely } from 'kysely';
import type { Account, Database } from '../../db/schema.ts';
import { findAccountByLogin } from '../../accounts/accounts.ts';
import { CliError } from '../io.ts';

export async function requireAccount(db: Kysely<Database>, login: string): Promise<Account> {
  const account = await findAccountByLogin(db, login);
  if (!account) throw new CliError(`no user named ${login}`);
  return account;
}
