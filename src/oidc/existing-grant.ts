/**
 * The provider's `loadExistingGrant`: which grant an authorization request
 * continues, and so what the consent prompt still has to ask.
 *
 * First-party apps are trusted: their grant holds whatever they ask for, with no
 * consent page.
 *
 * A third-party app continues the grant its consent was given in: the one just
 * given, the browser session's, or else the one remembered for the account and
 * app (remembered-consent.ts), so a new browser asks nothing already allowed.
 * The library's consent prompt then asks only for scopes and claims the grant
 * has not seen; a request for the same or fewer goes straight back to the app.
 */
import type { Grant, KoaContextWithOIDC } from 'oidc-provider';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { forgetConsent, rememberedGrantId } from './remembered-consent.ts';

export function loadExistingGrant(db: Kysely<Database>) {
  return async (ctx: KoaContextWithOIDC): Promise<Grant | undefined> => {
    const client = ctx.oidc.client!;
    const session = ctx.oidc.session!;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    const existing = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!session.accountId) return existing;
    if (client.twofold_first_party === true) return firstPartyGrant(ctx, existing);
    return thirdPartyGrant(db, ctx, existing?.accountId === session.accountId ? existing : undefined);
  };
}

async function firstPartyGrant(ctx: KoaContextWithOIDC, existing: Grant | undefined): Promise<Grant> {
  const client = ctx.oidc.client!;
  const accountId = ctx.oidc.session!.accountId!;
  if (existing && existing.accountId !== accountId) return existing;
  const grant = existing ?? new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId });
  grant.addOIDCScope(ctx.oidc.requestParamOIDCScopes ? [...ctx.oidc.requestParamOIDCScopes].join(' ') : 'openid');
  const claims = ctx.oidc.requestParamClaims ? [...ctx.oidc.requestParamClaims] : [];
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
    const wanted = [...(ctx.oidc.requestParamScopes ?? [])].filter((s) => server.scopes.has(s));
    if (wanted.length) grant.addResourceScope(indicator, wanted.join(' '));
  }
  await grant.save();
  return grant;
}

async function thirdPartyGrant(db: Kysely<Database>, ctx: KoaContextWithOIDC, current: Grant | undefined): Promise<Grant | undefined> {
  const session = ctx.oidc.session!;
  const key = { accountId: session.accountId!, clientId: ctx.oidc.client!.clientId };
  const remembered = await rememberedGrantId(db, key);
  let grant = current;
  if (!grant && remembered) {
    grant = await ctx.oidc.provider.Grant.find(remembered);
    // Expired or revoked: no consent; a new one is remembered when given.
    if (!grant) await forgetConsent(db, { ...key, grantId: remembered });
  }
  if (!grant || grant.jti !== remembered) return grant;
  // Signing out of this browser must not revoke a grant other browsers and later sign-ins share: the library revokes
  // a session's grants at logout unless it persists. The session's own tokens still end with it (they are bound to it).
  // (The container first: on a session without one, authorizationFor hands out a detached object.)
  session.ensureClientContainer(key.clientId);
  session.authorizationFor(key.clientId).persistsLogout = true;
  // Each use moves its expiry to a full GRANT_TTL from now (the library keeps a grant's first expiry on every save),
  // so consent to an app in use is not dropped GRANT_TTL after it was first given.
  grant.exp = undefined;
  await grant.save();
  return grant;
}
