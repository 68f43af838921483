/**
 * The ceiling: a bare node-oidc-provider (the version Twofold runs), with its
 * in-memory adapter and its development interactions (any login and password
 * accepted: no password hash, no second factor, no database, no policy).
 *
 * Set like Twofold where the flow would otherwise differ, so the two do the
 * same protocol work: the app is first-party (a grant is made without a consent
 * page, as Twofold does for --first-party apps), refresh tokens are issued to
 * it and rotate on every use, PKCE is required, RS256 ID tokens, same TTLs.
 *
 * Usage (run.ts does this): PORT=… node --import tsx test/bench/bare-provider.ts
 * Prints one JSON line {"ready":true,"issuer":…,"clientId":…,"clientSecret":…}.
 * Listens on 127.0.0.1 only.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const redirectUri = process.env.BENCH_REDIRECT_URI ?? 'http://127.0.0.1/bench/callback';
const clientId = 'bench-bare';
const clientSecret = crypto.randomBytes(32).toString('base64url');

function jwk(alg: 'RS256' | 'ES256') {
  const { privateKey } = alg === 'RS256' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), alg, use: 'sig' };
}

const server = http.createServer();
await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const configuration: Configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [jwk('RS256'), jwk('ES256')] as never },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'updated_at'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 14 * 86400, Session: 14 * 86400, Interaction: 3600, Grant: 14 * 86400 },
  // A first-party app: the grant is made without asking (Twofold's loadExistingGrant does the same).
  loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client!;
    const session = ctx.oidc.session!;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    const existing = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!session.accountId) return existing;
    const grant = existing ?? new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(ctx.oidc.requestParamOIDCScopes ? [...ctx.oidc.requestParamOIDCScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
  expiresWithSession: async (_ctx, code) => !code.scopes.has('offline_access'),
};

// The library prints a notice per development feature; keep stdout for the ready line.
const warn = console.warn;
console.warn = () => {};
const provider = new Provider(issuer, configuration);
console.warn = warn;
provider.on('server_error', (_ctx, err) => process.stderr.write(`bare provider server_error: ${(err as Error).stack}\n`));
server.on('request', provider.callback());
server.keepAliveTimeout = 5_000;

process.stdout.write(`${JSON.stringify({ ready: true, issuer, clientId, clientSecret, redirectUri })}\n`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
