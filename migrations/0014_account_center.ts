import { sql, type Kysely } from 'kysely';

/**
 * The account center (src/account/) signs people in through Twofold like any app: it is a first-party client of its
 * own provider, registered here as Keycloak registers its `account-console`. Its redirect URIs are paths, resolved
 * against ISSUER whenever the provider loads the client (src/oidc/clients.ts `resolveAgainstIssuer`), so changing
 * ISSUER needs no update of this row. Public (no secret: a migration has no SECRET_KEY to seal one with), so every
 * exchange uses PKCE; no refresh tokens. Its policy denies trusted devices: a change of sign-in methods is proved
 * with the factor itself, never with a cookie that stands in for it.
 *
 * Beside it, two things its sessions need:
 * - an index on the session id (`sid`) the provider gives the account center, so each page can check that the
 *   provider session behind it is still there (signed out elsewhere, ended by an admin, expired);
 * - an index on a Session's account, for the list of a person's sessions, and where a browser signed in from and
 *   with what (session_evidence.ip, .user_agent), recorded when the session proves something.
 */
const CLIENT_ID = 'twofold-account';

export async function up(db: Kysely<unknown>): Promise<void> {
  const taken = await sql<{ n: number }>`select count(*)::int as n from clients where name = 'Account center' and client_id <> ${CLIENT_ID}`.execute(db);
  const name = taken.rows[0]!.n ? `Account center (${CLIENT_ID})` : 'Account center';
  const metadata = {
    client_name: name,
    redirect_uris: ['/account/callback'],
    post_logout_redirect_uris: ['/account/signed-out'],
    // Where the "sign-in expired" page sends a person back to (interactions/way-back.ts); the provider is not given it.
    initiate_login_uri: '/account',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
  await sql`
    insert into clients (client_id, name, secret_sealed, metadata, first_party, policy)
    values (${CLIENT_ID}, ${name}, null, ${JSON.stringify(metadata)}::jsonb, true, ${JSON.stringify({ trustedDevices: 'deny' })}::jsonb)
    on conflict (client_id) do nothing`.execute(db);

  await sql`create index oidc_payloads_session_account on oidc_payloads (jsonb_extract_path_text(payload, 'accountId')) where kind = 'Session'`.execute(db);
  await sql`create index oidc_payloads_account_center_sid on oidc_payloads (jsonb_extract_path_text(payload, 'authorizations', ${sql.lit(CLIENT_ID)}, 'sid')) where kind = 'Session'`.execute(
    db,
  );
  await db.schema.alterTable('session_evidence').addColumn('ip', 'text').addColumn('user_agent', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('session_evidence').dropColumn('ip').dropColumn('user_agent').execute();
  await sql`drop index if exists oidc_payloads_account_center_sid`.execute(db);
  await sql`drop index if exists oidc_payloads_session_account`.execute(db);
  await sql`delete from clients where client_id = ${CLIENT_ID}`.execute(db);
}
