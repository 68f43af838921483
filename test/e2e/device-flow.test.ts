/**
 * The device authorization grant (RFC 8628), with openid-client as the device
 * and the scripted browser as the person: the code is entered at /device, the
 * sign-in is the normal one (password, TOTP as the policy and the device's
 * acr_values say), and the device's tokens carry that sign-in's acr and amr.
 * Wrong codes get a page (and are throttled per address), a cancelled or
 * expired flow gets RFC 8628's errors, and discovery lists the endpoint only
 * while DEVICE_FLOW is on. On every database in the matrix.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { storedUserCode } from '../../src/oidc/adapter.ts';
import { DEVICE_CODE_GRANT } from '../../src/oidc/clients.ts';
import { reset } from '../../src/security/rate-limit.ts';
import { USER_CODE_GUESSES } from '../../src/oidc/device-flow.ts';
import type { Services } from '../../src/services.ts';

const REFEDS_MFA = 'https://refeds.org/profile/mfa';
const PASSWORD = 'a long password';
let n = 0;

const xsrfOf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;

async function device(issuer: string, clientId: string, secret: string | null): Promise<oidc.Configuration> {
  const auth = secret ? oidc.ClientSecretBasic(secret) : oidc.None();
  return oidc.discovery(new URL(issuer), clientId, secret ? { client_secret: secret } : {}, auth, {
    execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
  });
}

/** Polls once the person is done: the test's device does not wait the 5 s interval a real one would. */
function poll(config: oidc.Configuration, started: oidc.DeviceAuthorizationResponse) {
  return oidc.pollDeviceAuthorizationGrant(config, { ...started, interval: 0 });
}

for (const kind of DIALECTS) {
  describe(`device authorization grant on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let cli: oidc.Configuration;
    let tv: oidc.Configuration;
    let tvSecret: string;
    const run = cliRunner(() => services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' });
      services = server.opened.services;
      // Registered as an admin would, with the commands docs/connecting-apps.md gives.
      // The CLI is a third-party app: its users are asked for consent, on the same page as any app's.
      const added = await run('client', 'add', 'cli', '--device-flow', '--public', '--json');
      expect(added.code).toBe(0);
      cli = await device(server.issuer, JSON.parse(added.out).client_id, null);
      const tvAdded = JSON.parse((await run('client', 'add', 'tv', '--device-flow', '--first-party', '--json')).out);
      tvSecret = tvAdded.client_secret;
      tv = await device(server.issuer, tvAdded.client_id, tvSecret);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function user(totp = false) {
      const username = `d${++n}`;
      const account = await createAccount(services.db, services.hasher, { username, password: PASSWORD });
      const secret = totp ? await enrolTotp(services, account.id) : undefined;
      return { username, secret };
    }

    /** The person enters the code at the verification URI and confirms it: the sign-in page follows. */
    async function enterCode(agent: UserAgent, started: oidc.DeviceAuthorizationResponse): Promise<Hop> {
      const entry = await agent.follow(started.verification_uri);
      expect(entry.status).toBe(200);
      const confirm = await agent.submit(formAction(entry.body), { xsrf: xsrfOf(entry.body), user_code: started.user_code.toLowerCase() });
      expect(confirm.body).toContain(started.user_code);
      return agent.submit(formAction(confirm.body), { xsrf: xsrfOf(confirm.body), user_code: started.user_code, confirm: 'yes' });
    }

    test('client add --device-flow: a public CLI with the device grant and refresh tokens, shown and audited; update turns it on and off', async () => {
      const shown = JSON.parse((await run('client', 'show', 'cli', '--json')).out);
      expect(shown).toMatchObject({ type: 'public', device_flow: true, redirect_uris: [] });
      expect(shown.grant_types).toEqual([DEVICE_CODE_GRANT, 'refresh_token']);
      const created = await services.db
        .selectFrom('audit_events')
        .select('details')
        .where('type', '=', 'client.created')
        .where('client_id', '=', shown.client_id)
        .executeTakeFirstOrThrow();
      expect(created.details).toMatchObject({ device_flow: true });

      expect((await run('client', 'add', 'web', '--redirect-uri', 'http://app.example.test/cb')).code).toBe(0);
      const on = await run('client', 'update', 'web', '--device-flow');
      expect(on.code).toBe(0);
      expect(JSON.parse((await run('client', 'show', 'web', '--json')).out)).toMatchObject({
        device_flow: true,
        grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
      });
      const off = await run('client', 'update', 'web', '--no-device-flow', '--json');
      expect(JSON.parse(off.out)).toMatchObject({ device_flow: false, grant_types: ['authorization_code', 'refresh_token'] });
      const audited = await services.db.selectFrom('audit_events').select('details').where('type', '=', 'client.updated').orderBy('id').execute();
      expect(audited.map((a) => (a.details as Record<string, unknown>).device_flow)).toEqual([true, false]);
      // A device client that would keep no way to sign in is refused, naming the option.
      const none = await run('client', 'update', 'cli', '--no-device-flow');
      expect(none.code).not.toBe(0);
      expect(none.err).toMatch(/--device-flow/);
    });

    test('password + TOTP with acr_values on the device request: the device tokens carry otp and the requested acr', async () => {
      const { username, secret } = await user(true);
      const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid profile', acr_values: REFEDS_MFA });
      expect(started.verification_uri).toBe(`${server.issuer}/device`);
      expect(started.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      // The user code is stored as a keyed hash, never in clear.
      const rows = await services.db.selectFrom('oidc_payloads').select(['user_code', 'payload']).where('kind', '=', 'DeviceCode').execute();
      expect(rows.some((r) => r.user_code === storedUserCode(services.codeHasher, started.user_code.replace('-', '')))).toBe(true);
      expect(JSON.stringify(rows)).not.toContain(started.user_code.replace('-', ''));

      const agent = new UserAgent(server.issuer);
      const login = await enterCode(agent, started);
      expect(login.url).toMatch(/\/interaction\//);
      const second = await agent.submit(formAction(login.body), { login: username, password: PASSWORD });
      expect(second.body).toContain('Two-step verification');
      const done = await agent.submit(formAction(second.body), { code: totpCode(secret!) });
      expect(done.status).toBe(200);
      expect(done.body).toContain('You are signed in on tv');
      // The done page is one of ours: the layout and its CSP.
      expect(done.headers.get('content-security-policy')).toContain("script-src 'self'");

      const tokens = await poll(tv, started);
      const claims = tokens.claims()!;
      expect(claims.acr).toBe(REFEDS_MFA);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.preferred_username).toBe(username);
      // So does the access token, for an API that introspects it.
      const introspected = await oidc.tokenIntrospection(tv, tokens.access_token);
      expect(introspected).toMatchObject({ active: true, acr: REFEDS_MFA, sub: claims.sub });
      expect(introspected.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
      // A device code is redeemed once.
      await expect(poll(tv, started)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    test('a public third-party CLI: password, consent, level 1 and pwd; a refresh token for later', async () => {
      const { username } = await user();
      const started = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid offline_access' });
      const agent = new UserAgent(server.issuer);
      const login = await enterCode(agent, started);
      const consent = await agent.submit(formAction(login.body), { login: username, password: PASSWORD });
      expect(consent.body).toContain('asks to access your account');
      const done = await agent.submit(formAction(consent.body), {});
      expect(done.body).toContain('You are signed in on cli');
      const tokens = await poll(cli, started);
      expect(tokens.claims()).toMatchObject({ acr: 'urn:twofold:acr:1', amr: ['pwd'] });
      expect(tokens.refresh_token).toBeDefined();
    });

    test('a wrong or missing code gets a page saying so, not a 500; verification_uri_complete posts the code', async () => {
      const agent = new UserAgent(server.issuer);
      const entry = await agent.follow(`${server.issuer}/device`);
      const wrong = await agent.submit(formAction(entry.body), { xsrf: xsrfOf(entry.body), user_code: 'BBBB-BBBB' });
      expect(wrong.status).toBe(400);
      expect(wrong.body).toContain('That code is not valid');
      expect(wrong.body).toContain('name="user_code"');
      const empty = await agent.submit(formAction(wrong.body), { xsrf: xsrfOf(wrong.body), user_code: '' });
      expect(empty.status).toBe(400);
      expect(empty.body).toContain('Enter the code shown on your device');
      // A form whose browser session is gone (a stale tab, cookies cleared) is refused with a page, not a 500.
      const stale = await new UserAgent(server.issuer).submit(`${server.issuer}/device`, { user_code: 'BBBB-BBBB' });
      expect(stale.status).toBe(400);
      expect(stale.body).toContain('This page has expired');

      const started = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      const complete = await agent.follow(started.verification_uri_complete!);
      expect(complete.body).toContain(`value="${started.user_code}"`);
    });

    test('a cancelled flow: the device gets access_denied; an expired one: expired_token, and the person is told', async () => {
      const denied = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      const agent = new UserAgent(server.issuer);
      const entry = await agent.follow(denied.verification_uri);
      const confirm = await agent.submit(formAction(entry.body), { xsrf: xsrfOf(entry.body), user_code: denied.user_code });
      const cancelled = await agent.submit(formAction(confirm.body), { xsrf: xsrfOf(confirm.body), user_code: denied.user_code, abort: 'yes' });
      expect(cancelled.status).toBe(200);
      expect(cancelled.body).toContain('The sign-in was cancelled');
      await expect(poll(cli, denied)).rejects.toMatchObject({ error: 'access_denied' });
      // Cancelled later, at the sign-in page: the same answer to the device.
      const quit = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      const login = await enterCode(agent, quit);
      const gone = await agent.follow(/href="(\/interaction\/[^"]+\/abort)"/.exec(login.body)![1]!);
      expect(gone.body).toContain('The sign-in was cancelled');
      await expect(poll(cli, quit)).rejects.toMatchObject({ error: 'access_denied' });

      const expired = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      // Ten minutes later, without waiting them: the row as time would leave it.
      const past = Math.floor(Date.now() / 1000) - 1;
      await sql`update oidc_payloads set expires_at = now() - interval '1 second', payload = payload || jsonb_build_object('exp', ${past}::int)
                where kind = 'DeviceCode' and user_code = ${storedUserCode(services.codeHasher, expired.user_code.replace('-', ''))}`.execute(services.db);
      const late = await agent.follow(expired.verification_uri);
      const told = await agent.submit(formAction(late.body), { xsrf: xsrfOf(late.body), user_code: expired.user_code });
      expect(told.status).toBe(400);
      expect(told.body).toContain('That code has expired');
      await expect(poll(cli, expired)).rejects.toMatchObject({ error: 'expired_token' });
    });

    test('a client registered without --device-flow gets unauthorized_client', async () => {
      const web = JSON.parse((await run('client', 'add', 'plain', '--redirect-uri', 'http://app.example.test/cb', '--json')).out);
      const config = await device(server.issuer, web.client_id, web.client_secret);
      await expect(oidc.initiateDeviceAuthorization(config, { scope: 'openid' })).rejects.toMatchObject({ error: 'unauthorized_client' });
    });

    test('discovery lists the device endpoint and grant while DEVICE_FLOW is on, and neither when it is off', async () => {
      const on = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(on.device_authorization_endpoint).toBe(`${server.issuer}/device/auth`);
      expect(on.grant_types_supported).toContain(DEVICE_CODE_GRANT);
      const off = await startTestServer(database, { MFA: 'optional', DEVICE_FLOW: 'false' });
      try {
        const meta = (await (await fetch(`${off.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
        expect(meta).not.toHaveProperty('device_authorization_endpoint');
        expect(meta.grant_types_supported).not.toContain(DEVICE_CODE_GRANT);
        expect((await fetch(`${off.issuer}/device`)).status).toBe(404);
      } finally {
        await off.close();
      }
    });

    test('guessing user codes from one address is slowed (a wait, with Retry-After), and a wait is all it is', async () => {
      const agent = new UserAgent(server.issuer);
      let page = await agent.follow(`${server.issuer}/device`);
      let throttled: Hop | undefined;
      for (let i = 0; i < 15 && !throttled; i++) {
        const hop = await agent.submit(`${server.issuer}/device`, { xsrf: xsrfOf(page.body), user_code: 'CCCC-CCCC' });
        if (hop.status === 429) throttled = hop;
        else page = hop;
      }
      expect(throttled).toBeDefined();
      expect(throttled!.body).toContain('Too many codes were tried from your network');
      expect(Number(throttled!.headers.get('retry-after'))).toBeGreaterThan(0);
      // The counter is per address and clears by itself; cleared here as time would, a right code goes through.
      await reset(services.db, USER_CODE_GUESSES, '127.0.0.1');
      const started = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      const login = await enterCode(agent, started);
      expect(login.url).toMatch(/\/interaction\//);
    });
  });
}
