/**
 * Who may introspect a token (RFC 7662): the client it was issued to, and an
 * API registered as a client (`--resource-server <indicator>`) for the access
 * tokens issued for it (their `aud` is its indicator). An API the admin let
 * introspect any opaque token (`--introspect-any`) also gets access tokens
 * without an audience (the ones apps use at userinfo, which mod_auth_openidc
 * and other gateways pass on). Never another API's token, never a refresh token.
 */
import type { Kysely } from 'kysely';
import type { Client } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { resourceServerOfClient } from './resource-servers.ts';

interface IntrospectedToken {
  kind: string;
  clientId?: string;
  aud?: string | string[];
}

export async function mayIntrospect(db: Kysely<Database>, client: Client, token: IntrospectedToken): Promise<boolean> {
  if (client.clientId === token.clientId) return true;
  if (token.kind === 'RefreshToken') return false;
  const server = await resourceServerOfClient(db, client.clientId);
  if (!server) return false;
  const audiences = token.aud === undefined ? [] : Array.isArray(token.aud) ? token.aud : [token.aud];
  if (audiences.includes(server.indicator)) return true;
  return server.introspectAny && audiences.length === 0;
}
