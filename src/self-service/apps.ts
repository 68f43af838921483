/**
 * The apps that hold something of a person's: a remembered consent
 * (third-party apps) or refresh tokens (apps with offline access, first-party
 * ones included). Revoking an app ends all of it at once: the consent, every
 * grant for the app and every token and code issued under them
 * (src/admin/consents.ts), so the app asks again at its next sign-in.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import type { Services } from '../services.ts';
import { deleteAppGrants, grantStore, listConsents } from '../admin/consents.ts';
import { recordAudit } from '../security/audit.ts';
import { ACCOUNT_CLIENT_ID } from '../account/client.ts';
import { actingSchema, auditOf, idSchema } from './acting.ts';

export interface AppView {
  clientId: string;
  name: string;
  /** The person allowed the app (remembered consent). */
  consent: boolean;
  /** What it was allowed, or what its tokens carry. */
  scopes: string[];
  /** When the consent was given, or the oldest live refresh token issued. */
  since: Date | null;
  refreshTokens: number;
}

export const listAppsInput = z.object({ accountId: idSchema }).strict();

export async function listApps(services: Services, input: z.input<typeof listAppsInput>): Promise<AppView[]> {
  const { accountId } = listAppsInput.parse(input);
  const [consents, tokens] = await Promise.all([
    listConsents(services, { accountId }),
    services.db
      .selectFrom('oidc_payloads')
      .select([
        sql<string>`jsonb_extract_path_text(payload, 'clientId')`.as('client_id'),
        sql<string>`count(*)`.as('n'),
        sql<number | null>`min((jsonb_extract_path_text(payload, 'iat'))::bigint)`.as('first'),
        sql<string | null>`max(jsonb_extract_path_text(payload, 'scope'))`.as('scope'),
      ])
      .where('kind', '=', 'RefreshToken')
      .where(sql<string>`jsonb_extract_path_text(payload, 'accountId')`, '=', accountId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
      .where('consumed_at', 'is', null)
      .groupBy(sql`jsonb_extract_path_text(payload, 'clientId')`)
      .execute(),
  ]);
  const apps = new Map<string, AppView>();
  for (const c of consents) {
    apps.set(c.client_id, { clientId: c.client_id, name: c.client_name, consent: true, scopes: c.scopes, since: c.granted_at, refreshTokens: 0 });
  }
  const unnamed = tokens.filter((t) => !apps.has(t.client_id)).map((t) => t.client_id);
  const names = new Map(
    unnamed.length
      ? (await services.db.selectFrom('clients').select(['client_id', 'name']).where('client_id', 'in', unnamed).execute()).map((r) => [r.client_id, r.name])
      : [],
  );
  for (const t of tokens) {
    const app = apps.get(t.client_id);
    if (app) {
      app.refreshTokens = Number(t.n);
      continue;
    }
    const name = names.get(t.client_id);
    if (!name) continue; // the app was removed meanwhile
    apps.set(t.client_id, {
      clientId: t.client_id,
      name,
      consent: false,
      scopes: (t.scope ?? '').split(' ').filter(Boolean),
      since: t.first ? new Date(Number(t.first) * 1000) : null,
      refreshTokens: Number(t.n),
    });
  }
  apps.delete(ACCOUNT_CLIENT_ID);
  return [...apps.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export const revokeAppInput = z.object({ accountId: idSchema, clientId: idSchema, acting: actingSchema }).strict();

/** Revokes everything the app holds for the account, in one transaction, audited; an app that holds nothing is `not_found`. */
export async function revokeApp(
  services: Services,
  input: z.input<typeof revokeAppInput>,
): Promise<{ ok: true; consent: boolean; revoked: number } | { ok: false; reason: 'not_found' }> {
  const { accountId, clientId, acting } = revokeAppInput.parse(input);
  if (clientId === ACCOUNT_CLIENT_ID) return { ok: false, reason: 'not_found' };
  return services.db.transaction().execute(async (trx) => {
    const consent = await trx
      .deleteFrom('consents')
      .where('account_id', '=', accountId)
      .where('client_id', '=', clientId)
      .returning('grant_id')
      .executeTakeFirst();
    if (consent) {
      const grants = grantStore(services, trx);
      await grants.destroy(consent.grant_id);
      await grants.revokeByGrantId(consent.grant_id);
    }
    const revoked = await deleteAppGrants(trx, accountId, clientId);
    if (!consent && !revoked) return { ok: false, reason: 'not_found' } as const;
    await recordAudit(trx, 'app.revoked', { ...auditOf(accountId, acting), clientId }, { app: clientId, consent: consent !== undefined, revoked });
    return { ok: true, consent: consent !== undefined, revoked } as const;
  });
}
