/**
 * node-oidc-provider's configuration for Twofold. Nothing is left on the
 * library's development defaults: storage is the kysely adapter, keys come from
 * the database, interactions are Twofold's own, and every feature in use is
 * named here.
 */
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Services } from '../services.ts';
import { logger } from '../logger.ts';
import { createAdapter } from './adapter.ts';
import { findAccount } from './account-claims.ts';
import type { KeyMaterial } from './keys.ts';
import { interactionPolicy } from './interaction-policy.ts';
import { loadExistingGrant } from './existing-grant.ts';
import { forgetGrant } from './remembered-consent.ts';
import { acrTableOf } from '../mfa/requirement.ts';
import { ADD_FACTOR_PARAM, invalidAddFactorRequest } from '../mfa/add-factor.ts';
import { renderErrorPage, renderLogoutPage, renderLoggedOutPage } from '../../interactions/provider-pages.ts';
// APIs, machine clients and per-app settings (issue 11): resource indicators, introspection, JWT access tokens, PKCE.
import { SCOPES } from './scopes.ts';
import { AUTH_METHODS, invalidTwofoldMetadata, pkceRequired, TWOFOLD_METADATA } from './clients.ts';
import { resourceIndicators } from './resource-indicators.ts';
import { mayIntrospect } from './introspection.ts';
import { claimsParameterProblem } from './claims-parameter.ts';
import { jwtAccessTokenHandles, recordJwtAccessTokens } from './jwt-access-tokens.ts';
import { DatabaseUnavailableError } from '../db/outage.ts';
import { UNAVAILABLE_MESSAGE } from '../http/errors.ts';
import { providerFetch, queueProviderLogouts } from './backchannel-logout.ts';
import { deviceFlowFeature, deviceGrantRefusal, expiredDeviceResume, throttleUserCodes } from './device-flow.ts';
import { offeredLanguages } from '../i18n/catalogue.ts';

export function buildProvider(services: Services, keys: KeyMaterial): Provider {
  const { config, db, sealer } = services;

  const configuration: Configuration = {
    adapter: createAdapter(db, sealer, services.codeHasher, config.ISSUER),
    findAccount: (ctx, sub) => findAccount(db, sub, ctx.oidc?.client),
    jwks: { keys: keys.jwks as never },
    cookies: {
      keys: keys.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', secure: config.secureCookies, signed: true },
      short: { httpOnly: true, sameSite: 'lax', secure: config.secureCookies, signed: true },
      names: { session: 'twofold.session', interaction: 'twofold.interaction', resume: 'twofold.resume' },
    },
    scopes: [...SCOPES],
    acrValues: acrTableOf(config).values(),
    claims: {
      // acr, amr and auth_time ride with openid so they always reach the ID token (the library masks ID token claims by scope).
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', 'preferred_username', 'updated_at'],
      email: ['email', 'email_verified'],
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
    },
    responseTypes: ['code'],
    // PKCE (S256 only) for every client (OAuth 2.1 / RFC 9700), not only public ones, unless the operator relaxes it
    // (PKCE_REQUIRED=public) or an admin does for one confidential app (`client update … --pkce optional`).
    pkce: { required: (_ctx, client) => pkceRequired(client, config.PKCE_REQUIRED) },
    allowOmittingSingleRegisteredRedirectUri: false,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    // APIs and gateways read how to authenticate at introspection and revocation from discovery: as at the token endpoint.
    discovery: {
      claim_types_supported: ['normal'],
      introspection_endpoint_auth_methods_supported: [...AUTH_METHODS],
      revocation_endpoint_auth_methods_supported: [...AUTH_METHODS],
      // The languages the pages speak; an app passes one in ui_locales (src/i18n/language.ts).
      ui_locales_supported: offeredLanguages(config.THEME_DIR, config.PSEUDO_LANGUAGE),
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      userinfoSigningAlgValues: ['RS256', 'ES256'],
      introspectionSigningAlgValues: ['RS256', 'ES256'],
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      requestObjectSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    },
    // An app may ask for a sign-in method to be added (src/mfa/add-factor.ts); an unknown factor is refused up front.
    extraParams: {
      [ADD_FACTOR_PARAM](_ctx, value) {
        const problem = invalidAddFactorRequest(services.factors.registry, value);
        if (problem) throw new errors.InvalidRequest(problem);
      },
    },
    extraClientMetadata: {
      properties: ['twofold_first_party', 'twofold_policy', ...TWOFOLD_METADATA],
      validator(_ctx, key, value) {
        if (key === 'twofold_first_party' && value !== undefined && typeof value !== 'boolean') throw new Error('twofold_first_party must be a boolean');
        const problem = invalidTwofoldMetadata(key, value);
        if (problem) throw new Error(problem);
      },
    },
    // Refresh tokens for every client allowed the grant; without offline_access they end with the session.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Rotate on every use: a stolen refresh token is detected when either party uses it again.
    rotateRefreshToken: true,
    ttl: {
      AccessToken: config.ACCESS_TOKEN_TTL,
      AuthorizationCode: config.AUTHORIZATION_CODE_TTL,
      IdToken: config.ID_TOKEN_TTL,
      RefreshToken: config.REFRESH_TOKEN_TTL,
      Session: config.SESSION_TTL,
      Interaction: config.INTERACTION_TTL,
      Grant: config.GRANT_TTL,
      DeviceCode: config.DEVICE_CODE_TTL,
    },
    interactions: {
      policy: interactionPolicy(services),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // First-party apps never see a consent page; a third-party app's consent is remembered (src/oidc/existing-grant.ts).
    loadExistingGrant: loadExistingGrant(db),
    features: {
      devInteractions: { enabled: false },
      // RFC 8707 resource indicators: access tokens for an API are JWTs (RFC 9068) carrying acr, amr and auth_time (RFC 9470).
      resourceIndicators: resourceIndicators(services),
      // Machine clients (`client add … --client-credentials`): tokens for an API, no user, so no acr/amr; sub is the client.
      clientCredentials: { enabled: true },
      // The claims parameter's shape (OIDC Core 5.5) is checked before anything reads it: a malformed one is invalid_request.
      claimsParameter: {
        enabled: true,
        assertClaimsParameter: async (_ctx, claims) => {
          const problem = claimsParameterProblem(claims);
          if (problem) throw new errors.InvalidRequest(problem);
        },
      },
      // The token's own client, and an API registered as a client for the tokens issued for it (src/oidc/introspection.ts).
      introspection: { enabled: true, allowedPolicy: async (_ctx, client, token) => mayIntrospect(db, client, token) },
      // A client may revoke only its own tokens.
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => client.clientId === token.clientId },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => renderLogoutPage(ctx, form),
        postLogoutSuccessSource: (ctx) => renderLoggedOutPage(ctx),
      },
      // OIDC Back-Channel Logout 1.0 for apps registered with --backchannel-logout-uri; delivery is queued and retried
      // (src/oidc/backchannel-logout.ts), so /session/end never waits on an app.
      backchannelLogout: { enabled: config.BACKCHANNEL_LOGOUT },
      // RFC 8628 for apps registered with --device-flow (src/oidc/device-flow.ts); off (DEVICE_FLOW=false), discovery omits it.
      deviceFlow: deviceFlowFeature(services),
      registration: { enabled: false },
    },
    renderError: (ctx, out, error) => renderErrorPage(ctx, out, error),
    fetch: providerFetch,
    // RFC 9470: an API can see how the user authenticated (in JWT access tokens and introspection) and ask for a step-up.
    extraTokenClaims: (ctx, token) => {
      // A machine's token has no user: its subject is the client, in introspection as in its JWT.
      if (token.kind === 'ClientCredentials') return { sub: token.clientId };
      if (token.kind !== 'AccessToken') return undefined;
      const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.DeviceCode ?? ctx.oidc.entities.RefreshToken;
      if (!source) return undefined;
      return { acr: source.acr, amr: source.amr, auth_time: source.authTime };
    },
    // The granted scopes' claims go in the ID token too (apps build their user from it), unless an app is set to minimal.
    conformIdTokenClaims: false,
    // JWT access tokens are kept on record, so introspection, revocation and grant revocation reach them.
    formats: { customizers: { jwt: recordJwtAccessTokens(services.codeHasher) } },
    expiresWithSession: async (_ctx, code) => !code.scopes.has('offline_access'),
  };

  const provider = new Provider(config.ISSUER, configuration);
  // Forwarded headers are honoured only when the operator says a proxy terminates TLS.
  provider.proxy = config.TRUST_PROXY;
  // A grant the library revokes (the revocation endpoint, a reused refresh token, a sign-out) takes its remembered
  // consent along. Lookups would find the grant gone anyway; this keeps the table from holding dead pointers.
  provider.on('grant.revoked', (_ctx: KoaContextWithOIDC, grantId: string) => {
    forgetGrant(db, grantId).catch((err: unknown) => logger.error({ err }, 'could not forget the consent of a revoked grant'));
  });
  if (config.BACKCHANNEL_LOGOUT) queueProviderLogouts(provider, services);
  if (config.DEVICE_FLOW) {
    throttleUserCodes(provider, services);
    expiredDeviceResume(provider);
    deviceGrantRefusal(provider);
  }
  // A JWT access token at introspection or revocation is looked up by its record (src/oidc/jwt-access-tokens.ts).
  provider.use(jwtAccessTokenHandles({ issuer: config.ISSUER, jwks: keys.jwks, hasher: services.codeHasher }));
  // The library answers 500 server_error itself; keep the cause in our log (never in the response).
  // A database outage it answers 503 (the error's statusCode): broken infrastructure, said plainly, not a bug.
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    if (err instanceof DatabaseUnavailableError) {
      (ctx.state?.log ?? logger).warn({ err: err.message, code: err.code, path: ctx.path }, 'database unavailable');
      const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
      if (body && typeof body === 'object' && !Buffer.isBuffer(body) && body.error === 'server_error') body.error_description = UNAVAILABLE_MESSAGE;
      return;
    }
    (ctx.state?.log ?? logger).error({ err, path: ctx.path }, 'provider server_error');
  });
  return provider;
}

declare module 'oidc-provider' {
  interface Client {
    twofold_first_party?: boolean;
    twofold_policy?: Record<string, unknown>;
    twofold_pkce?: string;
    twofold_id_token_claims?: string;
    twofold_client_credentials_scope?: string;
  }
}
