import { sql, type Kysely } from 'kysely';

/**
 * The provider's rows are stored under a keyed hash of their id (the token,
 * code, session cookie value or interaction id) and user code, with the bearer
 * values inside payloads sealed (src/oidc/adapter.ts). The key comes from
 * SECRET_KEY, which a migration never sees, so existing rows cannot be rehashed
 * here: they are deleted. Every session, interaction, code, token and grant
 * ends; everyone signs in again and apps' refresh tokens stop working (see
 * docs/running.md, "Upgrading"). ReplayDetection rows stay (their id is a
 * digest of a used client assertion, not a bearer value), so an assertion used
 * before the upgrade cannot be replayed after it.
 *
 * The state of in-flight interactions (keyed by the interaction id, now by its
 * hash) and the evidence of the ended sessions go with them.
 *
 * Two checks make a write of a clear id fail instead of quietly storing a
 * bearer value: hashed values start with `h1.`, which no id or user code the
 * library makes contains.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`delete from oidc_payloads where kind <> 'ReplayDetection'`.execute(db);
  await sql`delete from interaction_state`.execute(db);
  await sql`delete from session_evidence`.execute(db);
  await sql`alter table oidc_payloads add constraint oidc_payloads_id_hashed check (kind = 'ReplayDetection' or id like 'h1.%')`.execute(db);
  await sql`alter table oidc_payloads add constraint oidc_payloads_user_code_hashed check (user_code is null or user_code like 'h1.%')`.execute(db);
}

/** Back to ids in clear: rows stored under hashes mean nothing to the older code, so they go too. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table oidc_payloads drop constraint if exists oidc_payloads_user_code_hashed`.execute(db);
  await sql`alter table oidc_payloads drop constraint if exists oidc_payloads_id_hashed`.execute(db);
  await sql`delete from oidc_payloads where kind <> 'ReplayDetection'`.execute(db);
  await sql`delete from interaction_state`.execute(db);
  await sql`delete from session_evidence`.execute(db);
}
