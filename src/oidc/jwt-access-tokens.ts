/**
 * JWT access tokens (RFC 9068, the tokens issued for APIs) at introspection
 * and revocation.
 *
 * node-oidc-provider keeps no record of a JWT access token and refuses one at
 * both endpoints, so an API that introspects (mod_auth_openidc as a resource
 * server) learned nothing, and a revoked grant or an ended session did not
 * show. Twofold keeps a record of each, as the opaque format stores its tokens,
 * under a handle: a keyed hash of the JWT's `jti` that only this provider can
 * compute (a `jti` an API writes to its log is not a token). At the two
 * endpoints a JWT this provider signed is swapped for its handle before the
 * library reads the request, so the library's own client authentication,
 * policy (src/oidc/introspection.ts), grant and session checks and revocation
 * apply unchanged. A JWT this provider did not sign matches nothing: inactive,
 * like any unknown token.
 */
import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import type { AccessToken, ClientCredentials, JWTStructured } from 'oidc-provider';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import type { JWK } from './keys.ts';
import { readBody, replayBody } from '../http/replay-body.ts';

/** The library's routes for the two endpoints (Twofold keeps its defaults). */
const ROUTES = new Set(['/token/introspection', '/token/revocation']);

const handleOf = (hasher: KeyedHasher, jti: string) => hasher.hash(jti, 'jwt-access-token');

/**
 * formats.customizers.jwt: runs as each JWT access token is issued (the library awaits it) and stores the
 * token's record under its handle, with the token's grant and session, so revoking either ends it too.
 */
export function recordJwtAccessTokens(hasher: KeyedHasher) {
  return async (_ctx: unknown, token: AccessToken | ClientCredentials, jwt: JWTStructured): Promise<void> => {
    const { jti, iat, exp } = jwt.payload as { jti: string; iat: number; exp: number };
    const model = token.constructor as unknown as { IN_PAYLOAD: string[] };
    const record: Record<string, unknown> = {};
    for (const key of model.IN_PAYLOAD) {
      const value = (token as unknown as Record<string, unknown>)[key];
      if (value !== undefined) record[key] = value;
    }
    const handle = handleOf(hasher, jti);
    Object.assign(record, { jti: handle, kind: token.kind, iat, exp });
    await token.adapter.upsert(handle, record, Math.max(1, exp - Math.floor(Date.now() / 1000)));
  };
}

interface VerifyingKey {
  alg: string;
  key: crypto.KeyObject;
}

function verifyingKeys(jwks: JWK[]): Map<string, VerifyingKey> {
  const keys = new Map<string, VerifyingKey>();
  for (const jwk of jwks) {
    if (!jwk.kid || !jwk.alg) continue;
    keys.set(jwk.kid, { alg: jwk.alg, key: crypto.createPublicKey({ key: jwk, format: 'jwk' } as Parameters<typeof crypto.createPublicKey>[0]) });
  }
  return keys;
}

function json(part: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The jti of a JWT access token this provider signed (RFC 9068 `at+jwt`, our issuer), else undefined. Expiry is the record's business. */
function ourJti(token: string, keys: Map<string, VerifyingKey>, issuer: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const header = json(parts[0]!);
  const signer = typeof header?.kid === 'string' ? keys.get(header.kid) : undefined;
  if (
    !signer ||
    header!.alg !== signer.alg ||
    String(header!.typ)
      .toLowerCase()
      .replace(/^application\//, '') !== 'at+jwt'
  )
    return undefined;
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2]!, 'base64url');
  const key = signer.alg.startsWith('ES') ? { key: signer.key, dsaEncoding: 'ieee-p1363' as const } : signer.key;
  if (!crypto.verify('sha256', signed, key, signature)) return undefined;
  const payload = json(parts[1]!);
  return payload?.iss === issuer && typeof payload.jti === 'string' ? payload.jti : undefined;
}

/** Whether a value has the shape of a compact JWS (the library refuses those at these endpoints). */
const looksLikeJws = (value: string) => /^[\w-]+\.[\w-]+\.[\w-]*$/.test(value) && json(value.split('.')[0]!) !== undefined;

/** Runs before the provider's routes: swaps a JWT access token in the `token` parameter for its handle. */
export function jwtAccessTokenHandles(options: { issuer: string; jwks: JWK[]; hasher: KeyedHasher }): Middleware {
  const keys = verifyingKeys(options.jwks);
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !ROUTES.has(ctx.path) || !ctx.is('application/x-www-form-urlencoded')) return next();
    let raw: Buffer;
    try {
      raw = await readBody(ctx);
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'failed to parse the request body' };
      return;
    }
    const form = new URLSearchParams(raw.toString('utf8'));
    const tokens = form.getAll('token');
    // One token parameter, shaped like a JWS: otherwise the library answers (a duplicate is its error to give).
    if (tokens.length === 1 && looksLikeJws(tokens[0]!)) {
      const jti = ourJti(tokens[0]!, keys, options.issuer);
      form.set('token', jti ? handleOf(options.hasher, jti) : crypto.randomBytes(32).toString('base64url'));
      replayBody(ctx, Buffer.from(form.toString(), 'utf8'));
    }
    return next();
  };
}
