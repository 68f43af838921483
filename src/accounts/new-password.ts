/**
 * The password rules (password-rules.ts) applied to one account: its
 * username and email, the product's name, and whether the password would be
 * its only factor. Every path that sets a password goes through here or
 * through `newAccountPassword`: the `twofold` command, the account center,
 * a reset link (all by way of password-change.ts) and account creation.
 */
import type { Kysely } from 'kysely';
import type { Account, Database } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { checkNewPassword, type PasswordContext, type PasswordVerdict } from './password-rules.ts';

/** Only the factor registry of the engine is read (which factors count as a factor of their own). */
export type PasswordServices = Pick<Services, 'db' | 'config'> & { factors: Pick<Services['factors'], 'registry'> };

/**
 * Whether the account has no factor but its password: no credential of a
 * registered factor that can serve on its own or as a second step. Backup
 * codes do not count (they only recover another factor), nor do credentials
 * of a factor this deployment no longer registers (they cannot be used).
 */
export async function passwordIsOnlyFactor(db: Kysely<Database>, registry: Services['factors']['registry'], accountId: string): Promise<boolean> {
  const rows = await db.selectFrom('credentials').select('factor_id').distinct().where('account_id', '=', accountId).execute();
  return !rows.some((r) => {
    const registered = registry.get(r.factor_id);
    return registered !== undefined && !registered.factor.recoveryOnly;
  });
}

export async function passwordContext(services: PasswordServices, account: Pick<Account, 'id' | 'username' | 'email'>): Promise<PasswordContext> {
  return {
    username: account.username,
    email: account.email,
    productName: services.config.brand.name,
    onlyFactor: await passwordIsOnlyFactor(services.db, services.factors.registry, account.id),
  };
}

/** Checks a new password for an existing account. */
export async function checkAccountPassword(
  services: PasswordServices,
  account: Pick<Account, 'id' | 'username' | 'email'>,
  password: string,
): Promise<PasswordVerdict> {
  return checkNewPassword(password, await passwordContext(services, account));
}

/** Checks the password of an account being created: it has no other factor yet. */
export function newAccountPassword(
  services: Pick<Services, 'config'>,
  account: { username: string; email?: string | null },
  password: string,
): PasswordVerdict {
  return checkNewPassword(password, { username: account.username, email: account.email, productName: services.config.brand.name, onlyFactor: true });
}
