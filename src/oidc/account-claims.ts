/**
 * node-oidc-provider's view of an account: the stable `sub` and claims by scope.
 *
 * The provider puts the claims of the granted scopes (profile, email) in the ID
 * token as well as in userinfo (conformIdTokenClaims off): Auth.js and
 * express-openid-connect build their user from the ID token alone. An app set to
 * `--id-token-claims minimal` gets in its ID token only `sub` and what it asked
 * for by name in the claims parameter (OIDC Core 5.4); userinfo still has the rest.
 */
import type { Kysely } from 'kysely';
import type { Account as ProviderAccount, AccountClaims, ClaimsParameterMember } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { findAccountById } from '../accounts/accounts.ts';

/** The app asking, as far as its claims are concerned. */
interface ClaimsClient {
  twofold_id_token_claims?: string;
}

export async function findAccount(db: Kysely<Database>, sub: string, client?: ClaimsClient): Promise<ProviderAccount | undefined> {
  const account = await findAccountById(db, sub);
  // A disabled account no longer exists as far as tokens and userinfo are concerned.
  if (!account || account.disabled) return undefined;
  const all: AccountClaims = {
    sub: account.id,
    preferred_username: account.username,
    name: account.display_name ?? account.username,
    updated_at: Math.floor(account.updated_at.getTime() / 1000),
    ...(account.email ? { email: account.email, email_verified: account.email_verified } : {}),
  };
  return {
    accountId: account.id,
    claims: (use: string, _scope: string, requested: { [key: string]: null | ClaimsParameterMember }) => {
      if (use !== 'id_token' || client?.twofold_id_token_claims !== 'minimal') return all;
      const asked = new Set(Object.keys(requested ?? {}));
      return Object.fromEntries(Object.entries(all).filter(([claim]) => claim === 'sub' || asked.has(claim))) as AccountClaims;
    },
  };
}
