/**
 * The third-party apps an account allowed (remembered consent, src/oidc/remembered-consent.ts), and revoking one.
 * The CLI's `twofold user consents` and `twofold user revoke-consent` call these; an admin API or the person's own
 * account pages are to call the same.
 *
 * Revoking ends the app's access at once, not only the memory of the consent: the grant goes, and with it every
 * token and code issued under it (refresh tokens included), so the next sign-in to the app asks for consent again.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.ts';
import type { Services } from '../services.ts';
import { createAdapter } from '../oidc/adapter.ts';
import { rememberedConsents } from '../oidc/remembered-consent.ts';
import { recordAudit } from '../security/audit.ts';

type ConsentServices = Pick<Services, 'db' | 'sealer' | 'codeHasher'>;

/** The provider's models that a grant gives rise to, each naming its account and app (never a Session: it stays). */
const GRANT_KINDS = ['Grant', 'AuthorizationCode', 'AccessToken', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'];

const id = z.string().min(1).max(200);

export const listConsentsInput = z.object({ accountId: id }).strict();
export type ListConsentsInput = z.input<typeof listConsentsInput>;

export const revokeConsentInput = z
  .object({
    accountId: id,
    clientId: id,
    /** Recorded as the audit event's actor (`admin:cli`, `user`…). */
    actor: z.string().min(1).max(200),
  })
  .strict();
export type RevokeConsentInput = z.input<typeof revokeConsentInput>;

export interface ConsentView {
  client_id: string;
  client_name: string;
  /** OpenID Connect scopes allowed (`openid profile email`…). */
  scopes: string[];
  /** Individual claims allowed through the claims parameter, beyond those of the scopes. */
  claims: string[];
  /** Scopes allowed per API (resource indicator). */
  api_scopes: Record<string, string[]>;
  granted_at: Date;
  /** When the consent lapses unless the app is used again (each sign-in moves it to GRANT_TTL from then). */
  expires_at: Date | null;
}

/** What the provider's Grant payload holds that a person allowed (lib/models/grant.js). */
interface GrantPayload {
  openid?: { scope?: string; claims?: string[] };
  resources?: Record<string, string | undefined>;
  exp?: number;
}

const words = (s: string | undefined) => (s ?? '').split(' ').filter(Boolean);

export function grantStore(services: ConsentServices, db: Kysely<Database> = services.db) {
  const Adapter = createAdapter(db, services.sealer, services.codeHasher);
  return new Adapter('Grant');
}

/** The apps the account allowed, with what; a remembered grant that is gone is no consent and is left out. */
export async function listConsents(services: ConsentServices, input: ListConsentsInput): Promise<ConsentView[]> {
  const { accountId } = listConsentsInput.parse(input);
  const grants = grantStore(services);
  const views: ConsentView[] = [];
  for (const row of await rememberedConsents(services.db, accountId)) {
    const grant = (await grants.find(row.grant_id)) as GrantPayload | undefined;
    if (!grant) continue;
    views.push({
      client_id: row.client_id,
      client_name: row.client_name,
      scopes: words(grant.openid?.scope),
      claims: grant.openid?.claims ?? [],
      api_scopes: Object.fromEntries(Object.entries(grant.resources ?? {}).map(([indicator, scope]) => [indicator, words(scope)])),
      granted_at: row.created_at,
      expires_at: grant.exp ? new Date(grant.exp * 1000) : null,
    });
  }
  return views;
}

/**
 * Deletes every grant the provider holds for the account and app, and every token and code issued under them
 * (refresh tokens included; never a Session). Run inside the caller's transaction. Returns how many rows went.
 */
export async function deleteAppGrants(db: Kysely<Database>, accountId: string, clientId: string): Promise<number> {
  const result = await db
    .deleteFrom('oidc_payloads')
    .where('kind', 'in', GRANT_KINDS)
    .where((eb) => eb(eb.fn('jsonb_extract_path_text', [eb.ref('payload'), eb.val('accountId')]), '=', accountId))
    .where((eb) => eb(eb.fn('jsonb_extract_path_text', [eb.ref('payload'), eb.val('clientId')]), '=', clientId))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

export type RevokeConsentResult = { ok: true; grantId: string } | { ok: false; reason: 'not_remembered' };

/**
 * Revokes the account's consent to the app: the remembered grant and everything issued under it, and any other grant
 * the provider holds for this account and app with its tokens (one given before consent was remembered, or in two
 * browsers at once), in one transaction, audited.
 */
export async function revokeConsent(services: ConsentServices, input: RevokeConsentInput): Promise<RevokeConsentResult> {
  const { accountId, clientId, actor } = revokeConsentInput.parse(input);
  return services.db.transaction().execute(async (trx) => {
    const row = await trx.deleteFrom('consents').where('account_id', '=', accountId).where('client_id', '=', clientId).returning('grant_id').executeTakeFirst();
    if (!row) return { ok: false, reason: 'not_remembered' } as const;
    // As the library revokes a grant: the grant, then whatever carries its id (refresh and access tokens, codes).
    const grants = grantStore(services, trx);
    await grants.destroy(row.grant_id);
    await grants.revokeByGrantId(row.grant_id);
    await deleteAppGrants(trx, accountId, clientId);
    await recordAudit(trx, 'consent.revoked', { accountId, clientId, actor }, { grant: row.grant_id });
    return { ok: true, grantId: row.grant_id } as const;
  });
}
