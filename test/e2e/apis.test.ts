/**
 * APIs and machine clients (issue 11): an API registered as a client
 * (`client add … --resource-server`) introspects the access tokens issued for
 * it (JWTs, RFC 9068) with its own credentials, and, when the admin lets it
 * (`--introspect-any`), opaque ones; unrelated clients and revoked tokens get
 * active:false. Machine clients get JWT access tokens for an API by
 * client_credentials. RESOURCE_SERVERS keeps working. Discovery lists exactly
 * what is enabled. openid-client and plain fetch as the parties, on every
 * database in the matrix.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const ORDERS = 'https://orders.example.test';
const BILLING = 'https://billing.example.test';
const LEGACY = 'https://legacy.example.test';

interface Registered {
  client_id: string;
  client_secret: string | null;
}

/** A party that authenticates with client_secret_basic: introspection, revocation, client_credentials. */
async function party(issuer: string, client: Registered): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), client.client_id, client.client_secret!, oidc.ClientSecretBasic(client.client_secret!), {
    execute: [oidc.allowInsecureRequests],
  });
}

for (const kind of DIALECTS) {
  describe(`APIs and machine clients on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    const run = cliRunner(() => services);
    let app: RelyingParty;
    let appClient: Registered;
    let orders: oidc.Configuration;
    let ordersClient: Registered;
    let billing: oidc.Configuration;
    let unrelated: oidc.Configuration;
    let machine: oidc.Configuration;
    let machineClient: Registered;

    async function add(...argv: string[]): Promise<Registered> {
      const r = await run('client', 'add', ...argv, '--json');
      expect(r).toMatchObject({ code: 0, err: '' });
      return JSON.parse(r.out) as Registered;
    }

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', RESOURCE_SERVERS: JSON.stringify({ [LEGACY]: { scope: 'legacy:read' } }) });
      services = server.opened.services;
      appClient = await add('web', '--redirect-uri', REDIRECT, '--first-party', '--post-logout-redirect-uri', 'http://app.example.test/bye');
      app = await relyingParty(server.issuer, appClient.client_id, appClient.client_secret, REDIRECT);
      ordersClient = await add('orders-api', '--resource-server', ORDERS, '--resource-scopes', 'orders:read orders:write');
      orders = await party(server.issuer, ordersClient);
      billing = await party(server.issuer, await add('billing-api', '--resource-server', BILLING, '--resource-scopes', 'billing:read', '--introspect-any'));
      unrelated = await party(server.issuer, await add('unrelated', '--redirect-uri', 'http://other.example.test/cb'));
      machineClient = await add('batch', '--client-credentials', '--scope', 'orders:read billing:read');
      machine = await party(server.issuer, machineClient);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    let n = 0;
    /** A new user signs in to the app with password and TOTP (acr level 2); `extra` goes on the authorization request. */
    async function signIn(extra: Record<string, string> = {}) {
      const username = `u${++n}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      const secret = await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      const auth = await app.authorizationUrl(extra);
      const page = await agent.follow(auth.url);
      const second = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      const done = await agent.submit(formAction(second.body), { code: totpCode(secret) });
      expect(done.location).toMatch(/code=/);
      return { agent, sub: account.id, tokens: await app.redeem(done.location!, auth) };
    }

    test('the API introspects the JWT access token issued for it: active, with acr, amr, auth_time, sub, scope, client_id, aud', async () => {
      const { tokens, sub } = await signIn({ resource: ORDERS, scope: 'openid orders:read' });
      expect(tokens.access_token.split('.')).toHaveLength(3);
      const answer = await oidc.tokenIntrospection(orders, tokens.access_token);
      expect(answer).toMatchObject({
        active: true,
        sub,
        scope: 'orders:read',
        client_id: appClient.client_id,
        aud: ORDERS,
        acr: 'urn:twofold:acr:2',
        token_type: 'Bearer',
      });
      expect(answer.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(typeof answer.auth_time).toBe('number');
      expect(answer.auth_time).toBe(decodeJwt(tokens.access_token).auth_time);
      // The app itself may introspect its token too.
      expect(await oidc.tokenIntrospection(app.config, tokens.access_token)).toMatchObject({ active: true, aud: ORDERS });
      // An unrelated client learns nothing; another API neither, even one that may introspect opaque tokens.
      expect(await oidc.tokenIntrospection(unrelated, tokens.access_token)).toEqual({ active: false });
      expect(await oidc.tokenIntrospection(billing, tokens.access_token)).toEqual({ active: false });
    });

    test('an opaque access token: only an API the admin let introspect any (--introspect-any); never a refresh token', async () => {
      const { tokens, sub } = await signIn({ scope: 'openid profile offline_access' });
      expect(tokens.access_token.split('.')).toHaveLength(1);
      expect(await oidc.tokenIntrospection(orders, tokens.access_token)).toEqual({ active: false });
      const answer = await oidc.tokenIntrospection(billing, tokens.access_token);
      expect(answer).toMatchObject({ active: true, sub, client_id: appClient.client_id, acr: 'urn:twofold:acr:2', scope: expect.stringContaining('openid') });
      expect(answer.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
      expect(typeof answer.auth_time).toBe('number');
      expect(await oidc.tokenIntrospection(unrelated, tokens.access_token)).toEqual({ active: false });
      expect(tokens.refresh_token).toBeTruthy();
      expect(await oidc.tokenIntrospection(billing, tokens.refresh_token!)).toEqual({ active: false });
      expect((await oidc.tokenIntrospection(app.config, tokens.refresh_token!)).active).toBe(true);
    });

    test('revoked: an opaque token, a JWT revoked by the app, the JWTs of a revoked grant, and the JWT of an ended session', async () => {
      const opaque = (await signIn()).tokens;
      expect((await oidc.tokenIntrospection(billing, opaque.access_token)).active).toBe(true);
      await oidc.tokenRevocation(app.config, opaque.access_token);
      expect(await oidc.tokenIntrospection(billing, opaque.access_token)).toEqual({ active: false });

      const jwt = (await signIn({ resource: ORDERS, scope: 'openid orders:read' })).tokens;
      expect((await oidc.tokenIntrospection(orders, jwt.access_token)).active).toBe(true);
      await oidc.tokenRevocation(app.config, jwt.access_token);
      expect(await oidc.tokenIntrospection(orders, jwt.access_token)).toEqual({ active: false });

      // Revoking the refresh token revokes the grant, and every access token issued under it.
      const granted = (await signIn({ resource: ORDERS, scope: 'openid offline_access orders:read' })).tokens;
      expect(granted.refresh_token).toBeTruthy();
      expect((await oidc.tokenIntrospection(orders, granted.access_token)).active).toBe(true);
      await oidc.tokenRevocation(app.config, granted.refresh_token!);
      expect(await oidc.tokenIntrospection(orders, granted.access_token)).toEqual({ active: false });

      // Without offline_access the token ends with the session: RP-initiated logout ends both.
      const { agent, tokens } = await signIn({ resource: ORDERS, scope: 'openid orders:read' });
      expect((await oidc.tokenIntrospection(orders, tokens.access_token)).active).toBe(true);
      const confirm = await agent.follow(
        oidc.buildEndSessionUrl(app.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://app.example.test/bye' }).toString(),
      );
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      await agent.submit(formAction(confirm.body), { xsrf, logout: 'yes' });
      expect(await oidc.tokenIntrospection(orders, tokens.access_token)).toEqual({ active: false });
    });

    test('a JWT Twofold did not sign, and an ID token, are inactive (not an error); the API must authenticate', async () => {
      const { tokens } = await signIn({ resource: ORDERS, scope: 'openid orders:read' });
      const { privateKey } = await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      const header = JSON.parse(Buffer.from(tokens.access_token.split('.')[0]!, 'base64url').toString()) as { kid: string };
      const forged = await new SignJWT({ ...decodeJwt(tokens.access_token), scope: 'orders:write' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: header.kid })
        .sign(privateKey);
      expect(await oidc.tokenIntrospection(orders, forged)).toEqual({ active: false });
      expect(await oidc.tokenIntrospection(orders, tokens.id_token!)).toEqual({ active: false });
      const anonymous = await fetch(new URL('/token/introspection', server.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: tokens.access_token }),
      });
      expect(anonymous.status).toBe(400);
      expect(await anonymous.json()).toMatchObject({ error: 'invalid_request' });
      const wrongSecret = await fetch(new URL('/token/introspection', server.issuer), {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${ordersClient.client_id}:nope`).toString('base64')}`,
        },
        body: new URLSearchParams({ token: tokens.access_token }),
      });
      expect(wrongSecret.status).toBe(401);
      expect(await wrongSecret.json()).toMatchObject({ error: 'invalid_client' });
    });

    test('client_credentials: a JWT for the API, verified against /jwks; sub is the client, no acr or amr; only the scopes allowed', async () => {
      const response = await oidc.clientCredentialsGrant(machine, { resource: ORDERS, scope: 'orders:read orders:write' });
      expect(response.scope).toBe('orders:read');
      const jwks = createRemoteJWKSet(new URL(machine.serverMetadata().jwks_uri!));
      const { payload, protectedHeader } = await jwtVerify(response.access_token, jwks, { issuer: server.issuer, audience: ORDERS, typ: 'at+jwt' });
      expect(protectedHeader.alg).toBe('ES256');
      expect(payload).toMatchObject({ sub: machineClient.client_id, client_id: machineClient.client_id, scope: 'orders:read', aud: ORDERS });
      for (const claim of ['acr', 'amr', 'auth_time']) expect(payload).not.toHaveProperty(claim);
      // The API introspects it like any token issued for it.
      const answer = await oidc.tokenIntrospection(orders, response.access_token);
      expect(answer).toMatchObject({ active: true, sub: machineClient.client_id, client_id: machineClient.client_id, scope: 'orders:read', aud: ORDERS });
      expect(answer).not.toHaveProperty('acr');

      // The resource is required; an unknown one is refused; an app without the grant is refused.
      await expect(oidc.clientCredentialsGrant(machine, { scope: 'orders:read' })).rejects.toMatchObject({ error: 'invalid_target' });
      await expect(oidc.clientCredentialsGrant(machine, { resource: 'https://unknown.example.test', scope: 'orders:read' })).rejects.toMatchObject({
        error: 'invalid_target',
      });
      await expect(oidc.clientCredentialsGrant(app.config, { resource: ORDERS, scope: 'orders:read' })).rejects.toMatchObject({
        error: 'invalid_request',
        error_description: 'requested grant type is not allowed for this client',
      });
      // A scope the admin did not allow this machine is not granted.
      const none = await oidc.clientCredentialsGrant(machine, { resource: ORDERS, scope: 'orders:write' });
      expect(none.scope).toBeUndefined();
      expect(decodeJwt(none.access_token)).not.toHaveProperty('scope');
    });

    test('RESOURCE_SERVERS still names APIs: a JWT access token with that audience (they verify it; no client to introspect with)', async () => {
      const { tokens, sub } = await signIn({ resource: LEGACY, scope: 'openid legacy:read' });
      const jwks = createRemoteJWKSet(new URL(app.config.serverMetadata().jwks_uri!));
      const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: LEGACY, typ: 'at+jwt' });
      expect(payload).toMatchObject({ scope: 'legacy:read', acr: 'urn:twofold:acr:2', sub });
    });

    test('the CLI: show, a taken indicator, public or misplaced flags refused, update audited and in force at once, remove', async () => {
      const shown = JSON.parse((await run('client', 'show', 'orders-api', '--json')).out) as Record<string, unknown>;
      expect(shown).toMatchObject({
        type: 'confidential',
        redirect_uris: [],
        grant_types: [],
        resource_server: { indicator: ORDERS, scopes: ['orders:read', 'orders:write'], introspect_any: false },
      });
      expect(shown).not.toHaveProperty('pkce');
      expect(JSON.parse((await run('client', 'show', 'batch', '--json')).out)).toMatchObject({
        grant_types: ['client_credentials'],
        client_credentials_scopes: ['orders:read', 'billing:read'],
      });
      expect((await run('client', 'show', 'orders-api')).out).toMatch(/resource_server\s+.*orders\.example\.test/);

      const taken = await run('client', 'add', 'copycat', '--resource-server', ORDERS);
      expect(taken).toMatchObject({ code: 1, out: '' });
      expect(taken.err).toBe(`twofold: --resource-server: ${ORDERS} is already registered to orders-api (one client per API)\n`);
      expect((await run('client', 'show', 'copycat')).code).toBe(1);
      const pub = await run('client', 'add', 'spa-api', '--public', '--redirect-uri', REDIRECT, '--resource-server', 'https://spa.example.test');
      expect(pub.err).toMatch(/^twofold: --resource-server: .*cannot be a public client\n$/);
      expect((await run('client', 'add', 'x', '--redirect-uri', REDIRECT, '--resource-scopes', 'a')).err).toMatch(
        /^twofold: --resource-scopes: only for an API/,
      );
      expect((await run('client', 'add', 'x', '--redirect-uri', REDIRECT, '--scope', 'a')).err).toMatch(/^twofold: --scope: only for a machine client/);
      expect((await run('client', 'add', 'x', '--resource-server', 'not a uri')).err).toMatch(
        /^twofold: --resource-server: an absolute URI without a fragment/,
      );
      expect((await run('client', 'add', 'x', '--resource-server', 'https://x.example.test', '--resource-scopes', 'openid')).err).toMatch(
        /^twofold: --resource-scopes.*openid is an OpenID scope/,
      );

      // Granted later, in force on the next request, audited.
      const { tokens } = await signIn();
      expect(await oidc.tokenIntrospection(orders, tokens.access_token)).toEqual({ active: false });
      const updated = await run('client', 'update', 'orders-api', '--introspect-any');
      expect(updated).toMatchObject({ code: 0, err: '' });
      expect(updated.out).toMatch(/^updated orders-api: resource_server .*"introspect_any":true/);
      expect((await oidc.tokenIntrospection(orders, tokens.access_token)).active).toBe(true);
      const events = await listAudit(services.db, { type: 'client.updated' });
      expect(events.find((e) => e.client_id === ordersClient.client_id)).toMatchObject({
        actor: 'admin:test',
        details: { resource_server: { indicator: ORDERS, introspect_any: true } },
      });
      expect((await run('client', 'update', 'orders-api', '--no-introspect-any')).code).toBe(0);
      expect(await oidc.tokenIntrospection(orders, tokens.access_token)).toEqual({ active: false });

      // A client with no redirect URIs that stops being an API would be nothing: refused, nothing changed.
      const web = (await signIn({ resource: ORDERS, scope: 'openid orders:read' })).tokens;
      const nothing = await run('client', 'update', 'orders-api', '--no-resource-server');
      expect(nothing.err).toMatch(/^twofold: --redirect-uri: at least one --redirect-uri \(or --resource-server/);
      expect((await oidc.tokenIntrospection(orders, web.access_token)).active).toBe(true);
      // Turned into a machine client instead, it introspects nothing; an app that becomes the API (keeping its sign-in) does.
      expect((await run('client', 'update', 'orders-api', '--no-resource-server', '--client-credentials')).code).toBe(0);
      expect(await oidc.tokenIntrospection(orders, web.access_token)).toEqual({ active: false });
      expect(JSON.parse((await run('client', 'show', 'orders-api', '--json')).out)).toMatchObject({
        grant_types: ['client_credentials'],
        client_credentials_scopes: [],
      });
      expect(JSON.parse((await run('client', 'show', 'orders-api', '--json')).out)).not.toHaveProperty('resource_server');
      expect((await run('client', 'update', 'unrelated', '--resource-server', ORDERS, '--resource-scopes', 'orders:read')).code).toBe(0);
      expect((await oidc.tokenIntrospection(unrelated, web.access_token)).active).toBe(true);

      // Removing the API's client removes the API: resource= it is refused.
      expect((await run('client', 'remove', 'unrelated')).code).toBe(0);
      const agent = new UserAgent(server.issuer);
      const auth = await app.authorizationUrl({ resource: ORDERS, scope: 'openid orders:read' });
      const hop = await agent.follow(auth.url);
      expect(new URL(hop.location!).searchParams.get('error')).toBe('invalid_target');
    });

    test('discovery lists exactly what is enabled', () => {
      const meta = app.config.serverMetadata();
      expect([...meta.grant_types_supported!].sort()).toEqual([
        'authorization_code',
        'client_credentials',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ]);
      expect([...meta.scopes_supported!].sort()).toEqual(['email', 'offline_access', 'openid', 'profile']);
      expect([...meta.claims_supported!].sort()).toEqual([
        'acr',
        'amr',
        'auth_time',
        'email',
        'email_verified',
        'iss',
        'name',
        'preferred_username',
        'sid',
        'sub',
        'updated_at',
      ]);
      expect(meta.code_challenge_methods_supported).toEqual(['S256']);
      expect(meta.response_types_supported).toEqual(['code']);
      expect(meta.introspection_endpoint).toBe(`${server.issuer}/token/introspection`);
      expect(meta.revocation_endpoint).toBe(`${server.issuer}/token/revocation`);
      for (const key of [
        'token_endpoint_auth_methods_supported',
        'introspection_endpoint_auth_methods_supported',
        'revocation_endpoint_auth_methods_supported',
      ] as const) {
        expect([...(meta[key] as string[])].sort()).toEqual(['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt']);
      }
      expect(meta.claims_parameter_supported).toBe(true);
      expect(meta.registration_endpoint).toBeUndefined();
    });
  });
}
