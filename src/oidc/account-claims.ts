/** node-oidc-provider's view of an account: the stable `sub` and claims by scope. */
import type { Kysely } from 'kysely';
import type { Account as ProviderAccount } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { findAccountById } from '../accounts/accounts.ts';

export async function findAccount(db: Kysely<Database>, sub: string): Promise<ProviderAccount | undefined> {
  const account = await findAccountById(db, sub);
  // A disabled account no longer exists as far as tokens and userinfo are concerned.
  if (!account || account.disabled) return undefined;
  return {
    accountId: account.id,
    claims: () => ({
      sub: account.id,
      preferred_username: account.username,
      name: account.display_name ?? account.username,
      updated_at: Math.floor(account.updated_at.getTime() / 1000),
      ...(account.email ? { email: account.email, email_verified: account.email_verified } : {}),
    }),
  };
}
