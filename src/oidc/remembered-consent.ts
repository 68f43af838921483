/**
 * Remembered consent: what a person allowed a third-party app is kept in one
 * provider Grant per account and app, and the consents table (migration 0013)
 * says which grant that is, so a new browser session (another device, or after
 * signing out) finds it instead of asking again. The table is only a pointer:
 * scopes, claims and the grant's lifetime stay in the Grant, in the provider's
 * store, and a pointer to a grant that is gone (expired, revoked at the
 * revocation endpoint, removed with the account's access) counts as no consent.
 *
 * How long: a remembered grant lives GRANT_TTL from the last sign-in to the app
 * through it, not from the first consent (src/oidc/existing-grant.ts moves its
 * expiry at each use). An app in use keeps its consent until the person or an
 * admin revokes it (`twofold user revoke-consent`, src/admin/consents.ts); one
 * left unused for GRANT_TTL asks again, as a grant that nothing uses should not
 * stay open for ever.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface ConsentKey {
  accountId: string;
  clientId: string;
}

/** Remembers `grantId` as the grant holding the account's consent to the app (a later consent's grant replaces it). */
export async function rememberConsent(db: Kysely<Database>, key: ConsentKey & { grantId: string }): Promise<void> {
  const now = new Date();
  await db
    .insertInto('consents')
    .values({ account_id: key.accountId, client_id: key.clientId, grant_id: key.grantId, created_at: now, updated_at: now })
    .onConflict((oc) =>
      oc.columns(['account_id', 'client_id']).doUpdateSet((eb) => ({
        grant_id: eb.ref('excluded.grant_id'),
        // Remembered since: the first consent kept in this grant, not the last scope added to it.
        created_at: eb
          .case()
          .when('consents.grant_id', '=', eb.ref('excluded.grant_id'))
          .then(eb.ref('consents.created_at'))
          .else(eb.ref('excluded.created_at'))
          .end(),
        updated_at: eb.ref('excluded.updated_at'),
      })),
    )
    .execute();
}

/** The grant remembered for the account and app, if any (the caller checks that it still exists). */
export async function rememberedGrantId(db: Kysely<Database>, key: ConsentKey): Promise<string | undefined> {
  const row = await db
    .selectFrom('consents')
    .select('grant_id')
    .where('account_id', '=', key.accountId)
    .where('client_id', '=', key.clientId)
    .executeTakeFirst();
  return row?.grant_id;
}

/**
 * Forgets the consent remembered in `grantId`, found gone. Conditional on the grant, so a consent given meanwhile
 * (a new grant in the row) stays.
 */
export async function forgetConsent(db: Kysely<Database>, key: ConsentKey & { grantId: string }): Promise<void> {
  await db.deleteFrom('consents').where('account_id', '=', key.accountId).where('client_id', '=', key.clientId).where('grant_id', '=', key.grantId).execute();
}

/** Forgets whatever consent `grantId` held (the provider revoked the grant). */
export async function forgetGrant(db: Kysely<Database>, grantId: string): Promise<void> {
  await db.deleteFrom('consents').where('grant_id', '=', grantId).execute();
}

/** Every consent remembered for the account, with the app's name, oldest first. */
export async function rememberedConsents(db: Kysely<Database>, accountId: string) {
  return db
    .selectFrom('consents')
    .innerJoin('clients', 'clients.client_id', 'consents.client_id')
    .select(['consents.client_id', 'clients.name as client_name', 'consents.grant_id', 'consents.created_at'])
    .where('consents.account_id', '=', accountId)
    .orderBy('consents.created_at')
    .orderBy('consents.client_id')
    .execute();
}
