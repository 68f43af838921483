/**
 * RFC 8707 resource indicators, as node-oidc-provider's `resourceIndicators`
 * feature: an access token for an API (`resource=<indicator>`) is a JWT (RFC
 * 9068) with that API as its audience, carrying acr, amr and auth_time (RFC
 * 9470) when a user signed in. The APIs are the registered ones and
 * RESOURCE_SERVERS (src/oidc/resource-servers.ts).
 *
 * A machine client (client_credentials) must name the API its token is for, and
 * gets only the scopes both the API and the admin allowed it (`--scope`).
 */
import { errors, type Client, type KoaContextWithOIDC, type ResourceServer as ProviderResourceServer } from 'oidc-provider';
import type { Services } from '../services.ts';
import { findResourceServer } from './resource-servers.ts';

const isClientCredentials = (ctx: KoaContextWithOIDC) => (ctx.oidc.params as { grant_type?: unknown } | undefined)?.grant_type === 'client_credentials';

export function resourceIndicators(services: Services) {
  const { config, db } = services;
  return {
    enabled: true,
    defaultResource: async (ctx: KoaContextWithOIDC, _client: Client, oneOf?: readonly string[]) => {
      if (oneOf) return oneOf;
      if (isClientCredentials(ctx)) throw new errors.InvalidTarget('resource is required: the indicator of the API the token is for');
      return undefined;
    },
    useGrantedResource: () => true,
    getResourceServerInfo: async (ctx: KoaContextWithOIDC, indicator: string, client: Client): Promise<ProviderResourceServer> => {
      const server = await findResourceServer(db, config, indicator);
      if (!server) throw new errors.InvalidTarget();
      let scopes = server.scopes;
      if (isClientCredentials(ctx)) {
        const allowed = new Set(String(client.twofold_client_credentials_scope ?? '').split(' '));
        scopes = scopes.filter((s) => allowed.has(s));
      }
      return {
        scope: scopes.join(' '),
        audience: indicator,
        accessTokenTTL: server.accessTokenTTL ?? config.ACCESS_TOKEN_TTL,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      };
    },
  };
}
