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
 * The durable floor: with BARE_STORE=postgres (BARE_DATABASE_URL) or pglite
 * (BARE_PGLITE_DIR), the same provider stores everything through the simplest
 * adapter of its own (bare-adapter.ts: one table, BARE_TABLE, plain `pg` or
 * PGlite in this process; the app stays in configuration), and counts its
 * statements: GET /__bench/statements, POST /__bench/statements/reset.
 *
 * Usage (run.ts does this): PORT=… node --import tsx test/bench/bare-provider.ts
 * Prints one JSON line {"ready":true,"issuer":…,"clientId":…,"clientSecret":…}.
 * Listens on 127.0.0.1 only.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { adapterFor, createTable, StatementTally, type Queryable } from './bare-adapter.ts';

const port = Number(process.env.PORT ?? 0);
const redirectUri = process.env.BENCH_REDIRECT_URI ?? 'http://127.0.0.1/bench/callback';
const clientId = 'bench-bare';
const clientSecret = crypto.randomBytes(32).toString('base64url');

function jwk(alg: 'RS256' | 'ES256') {
  const { privateKey } =
    alg === 'RS256' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), alg, use: 'sig' };
}

const store = process.env.BARE_STORE ?? 'memory';
const table = process.env.BARE_TABLE ?? 'bench_bare_oidc';
const tally = new StatementTally();
let db: (Queryable & { end?: () => Promise<void>; close?: () => Promise<void> }) | undefined;
if (store === 'postgres') {
  const { default: pg } = await import('pg');
  // Twofold's pool size (DATABASE_POOL_SIZE's default).
  db = new pg.Pool({ connectionString: process.env.BARE_DATABASE_URL, max: 10 }) as unknown as Queryable & { end: () => Promise<void> };
} else if (store === 'pglite') {
  const { PGlite } = await import('@electric-sql/pglite');
  // As Twofold opens its own (src/db/database.ts): a data folder, 16 MB of shared buffers.
  db = (await PGlite.create({
    dataDir: process.env.BARE_PGLITE_DIR,
    startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'],
  })) as unknown as Queryable & { close: () => Promise<void> };
} else if (store !== 'memory') {
  throw new Error(`BARE_STORE: memory, postgres or pglite (got ${store})`);
}
if (db) await createTable(db, table);

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
  ...(db ? { adapter: adapterFor(db, table, tally) } : {}),
};

// The library prints a notice per development feature; keep stdout for the ready line.
const warn = console.warn;
console.warn = () => {};
const provider = new Provider(issuer, configuration);
console.warn = warn;
provider.on('server_error', (_ctx, err) => process.stderr.write(`bare provider server_error: ${(err as Error).stack}\n`));
const oidc = provider.callback();
server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
  if (!req.url?.startsWith('/__bench/statements')) return oidc(req, res);
  if (req.method === 'POST') tally.reset();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ counts: tally.counts }));
});
server.keepAliveTimeout = 5_000;

process.stdout.write(`${JSON.stringify({ ready: true, issuer, clientId, clientSecret, redirectUri })}\n`);
const stop = () =>
  server.close(async () => {
    if (db && store === 'postgres') await db.query(`drop table if exists ${table}`).catch(() => {});
    await (db?.end ?? db?.close)?.call(db).catch(() => {});
    process.exit(0);
  });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
