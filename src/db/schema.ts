/**
 * The database schema as kysely sees it. Migrations in migrations/ are the only
 * way the schema changes; keep this file in step with them.
 */
import type { ColumnType, Generated, Insertable, JSONColumnType, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface AccountsTable {
  id: string;
  username: string;
  email: string | null;
  email_verified: Generated<boolean>;
  display_name: string | null;
  disabled: Generated<boolean>;
  password_hash: string | null;
  password_changed_at: NullableTimestamp;
  /** The second factor used last, preselected at the next sign-in. */
  last_factor_id: string | null;
  /** Signed up, email address not yet confirmed: cannot sign in. Migration 0017. */
  sign_up_pending: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface GroupsTable {
  id: string;
  name: string;
  description: string | null;
  created_at: Generated<Date>;
}

export interface AccountGroupsTable {
  account_id: string;
  group_id: string;
  added_at: Generated<Date>;
}

/** Client metadata as node-oidc-provider understands it, minus the secret. */
export type ClientMetadata = Record<string, unknown> & {
  redirect_uris: string[];
  grant_types?: string[];
  response_types?: string[];
  token_endpoint_auth_method?: string;
  post_logout_redirect_uris?: string[];
};

export interface ClientsTable {
  client_id: string;
  name: string;
  /** The client secret, sealed (AES-256-GCM); null for public and private_key_jwt clients. */
  secret_sealed: string | null;
  metadata: JSONColumnType<ClientMetadata>;
  first_party: Generated<boolean>;
  /** Per-client MFA policy (used by the policy engine). */
  policy: JSONColumnType<Record<string, unknown>, Record<string, unknown> | string | undefined, Record<string, unknown> | string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface OidcPayloadsTable {
  kind: string;
  /** `h1.` and a keyed hash of the model's id (src/oidc/adapter.ts); never the id itself. Migration 0007. */
  id: string;
  /** The model's payload, its bearer values (jti, a session cookie inside an interaction…) sealed in `$sealed`. */
  payload: JSONColumnType<Record<string, unknown>>;
  grant_id: string | null;
  /** `h1.` and a keyed hash of a device flow's user code. */
  user_code: string | null;
  /** A session's uid (not a bearer value). */
  uid: string | null;
  expires_at: NullableTimestamp;
  consumed_at: NullableTimestamp;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  /** The private JWK, sealed. */
  jwk_sealed: string;
  /** `next`: published, signs from activates_at; `active`: signs; `retired`: published until expires_at. */
  status: 'next' | 'active' | 'retired';
  created_at: Generated<Date>;
  /** For a next key, when it starts to sign; for an active one, when it did. */
  activates_at: NullableTimestamp;
  retired_at: NullableTimestamp;
  /** When a retired key stops being published. */
  expires_at: NullableTimestamp;
}

/** Back-channel logout notices on their way to apps (migration 0012, src/oidc/backchannel-logout.ts). */
export interface BackchannelLogoutsTable {
  id: Generated<string>;
  client_id: string;
  account_id: string;
  sid: string | null;
  reason: string;
  attempts: Generated<number>;
  next_attempt_at: ColumnType<Date, Date | string, Date | string>;
  last_error: string | null;
  created_at: Generated<Date>;
}

/** A third-party app's remembered consent: the provider Grant that holds it (migration 0013, src/oidc/remembered-consent.ts). */
export interface ConsentsTable {
  account_id: string;
  client_id: string;
  grant_id: string;
  /** When this grant was remembered for the account and app. */
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface ProviderSecretsTable {
  /** e.g. `cookie:<random>` */
  id: string;
  purpose: string;
  value_sealed: string;
  created_at: Generated<Date>;
}

export interface AuditEventsTable {
  id: Generated<string>;
  at: Generated<Date>;
  type: string;
  account_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  actor: string | null;
  details: JSONColumnType<Record<string, unknown>, Record<string, unknown> | string | undefined, Record<string, unknown> | string>;
}

export interface RateLimitsTable {
  key: string;
  points: number;
  expires_at: Timestamp;
}

export interface CredentialsTable {
  id: string;
  account_id: string;
  factor_id: string;
  label: string;
  secret_sealed: string | null;
  data: JSONColumnType<Record<string, unknown>, Record<string, unknown> | string | undefined, Record<string, unknown> | string>;
  /** bigint: pg returns it as a string. */
  counter: ColumnType<string | null, number | string | null | undefined, number | string | null>;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  /** A public identifier the authenticator presents (WebAuthn credential ID); unique when set. Migration 0004. */
  lookup_key: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface OneTimeCodesTable {
  credential_id: string;
  code_hash: string;
  used_at: NullableTimestamp;
}

/** Codes delivered out of band (email, SMS, voice), as keyed hashes. Migration 0005. */
export interface ChallengeCodesTable {
  id: string;
  account_id: string;
  factor_id: string;
  scope: string;
  channel: string;
  code_hash: string;
  attempts: Generated<number>;
  max_attempts: number;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

/** Password reset links, as keyed hashes of their tokens. Migration 0015. */
export interface PasswordResetsTable {
  id: string;
  account_id: string;
  token_hash: string;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  voided_at: NullableTimestamp;
}

/** Answers arriving outside the browser (a phone's approval), for the waiting page. Migration 0016. */
export interface FactorAnswersTable {
  /** A keyed hash of the id the device was given. */
  id: string;
  factor_id: string;
  account_id: string;
  credential_id: string;
  data: JSONColumnType<Record<string, unknown>, Record<string, unknown> | string | undefined, Record<string, unknown> | string>;
  answer: JSONColumnType<Record<string, unknown> | null, Record<string, unknown> | string | null | undefined, Record<string, unknown> | string | null>;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  answered_at: NullableTimestamp;
  taken_at: NullableTimestamp;
}

/** Nonces of accepted factor callbacks, as keyed hashes, until their time window has passed. Migration 0016. */
export interface FactorNoncesTable {
  factor_id: string;
  nonce_hash: string;
  expires_at: Timestamp;
}

/** Email confirmation links of sign-up, as keyed hashes of their tokens. Migration 0017. */
export interface EmailVerificationsTable {
  id: string;
  account_id: string;
  token_hash: string;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  voided_at: NullableTimestamp;
}

export interface InteractionStateTable {
  /** A keyed hash of the interaction's uid (InteractionState.of). */
  uid: string;
  key: string;
  value_sealed: string;
  expires_at: Timestamp;
}

export interface SessionEvidenceTable {
  session_uid: string;
  account_id: string;
  evidence: JSONColumnType<unknown[], unknown[] | string, unknown[] | string>;
  updated_at: Generated<Date>;
  expires_at: Timestamp;
  /** When the session was last used, by the services' clock (coarse: see src/mfa/session-evidence.ts). Migration 0009. */
  last_active_at: NullableTimestamp;
  /** The client address and User-Agent of the browser when the session last proved something. Migration 0014. */
  ip: ColumnType<string | null, string | null | undefined, string | null>;
  user_agent: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PolicyDocumentsTable {
  scope: string;
  version: number;
  document: JSONColumnType<Record<string, unknown>, Record<string, unknown> | string, Record<string, unknown> | string>;
  actor: string;
  created_at: Generated<Date>;
}

export interface TrustedDevicesTable {
  id: string;
  account_id: string;
  token_hash: string;
  label: string;
  binding: string;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  expires_at: Timestamp;
  revoked_at: NullableTimestamp;
  /** The factor whose proof created the device (null: trusted before this was recorded). */
  factor_id: string | null;
}

/** An API registered as a client: the resource indicator it answers to. Migration 0010. */
export interface ResourceServersTable {
  indicator: string;
  client_id: string;
  /** Space-separated scopes that tokens for this API may carry. */
  scopes: Generated<string>;
  /** The admin let this API introspect any opaque access token, not only those issued for it. */
  introspect_any: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface Database {
  policy_documents: PolicyDocumentsTable;
  trusted_devices: TrustedDevicesTable;
  credentials: CredentialsTable;
  one_time_codes: OneTimeCodesTable;
  challenge_codes: ChallengeCodesTable;
  password_resets: PasswordResetsTable;
  email_verifications: EmailVerificationsTable;
  interaction_state: InteractionStateTable;
  factor_answers: FactorAnswersTable;
  factor_nonces: FactorNoncesTable;
  session_evidence: SessionEvidenceTable;
  accounts: AccountsTable;
  groups: GroupsTable;
  account_groups: AccountGroupsTable;
  clients: ClientsTable;
  resource_servers: ResourceServersTable;
  oidc_payloads: OidcPayloadsTable;
  signing_keys: SigningKeysTable;
  backchannel_logouts: BackchannelLogoutsTable;
  consents: ConsentsTable;
  provider_secrets: ProviderSecretsTable;
  audit_events: AuditEventsTable;
  rate_limits: RateLimitsTable;
}

export type Account = Selectable<AccountsTable>;
export type NewAccount = Insertable<AccountsTable>;
export type AccountUpdate = Updateable<AccountsTable>;
export type Group = Selectable<GroupsTable>;
export type ResourceServerRow = Selectable<ResourceServersTable>;
export type ClientRow = Selectable<ClientsTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type CredentialRow = Selectable<CredentialsTable>;
