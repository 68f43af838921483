/**
 * Policy end to end, with openid-client as the app: per-app and per-group
 * requirements, a client minimum a request cannot lower, max_age and level
 * ages forcing fresh proofs, trusted devices (allowed, denied, revoked), and
 * RFC 9470 claims in JWT access tokens and introspection.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { createClient, findClientRow } from '../../src/oidc/clients.ts';
import { savePolicy, GLOBAL, groupScope } from '../../src/policy/store.ts';
import { applyClientPolicy } from '../../src/cli/commands/client-policy.ts';
import { revokeAllDevices } from '../../src/mfa/trusted-devices.ts';
import type { Services } from '../../src/services.ts';
import type { ClientPolicy } from '../../src/policy/documents.ts';

const REDIRECT = 'http://app.example.test/callback';
const API = 'https://api.example.test';
const PAPE_MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const REFEDS_SFA = 'https://refeds.org/profile/sfa';
let n = 0;

async function app(services: Services, server: TestServer, name: string, policy: ClientPolicy = {}, defaultAcr?: string[]): Promise<RelyingParty> {
  const c = await createClient(services.db, services.sealer, { name, redirectUris: [REDIRECT], firstParty: true });
  const row = (await findClientRow(services.db, c.clientId))!;
  await applyClientPolicy(services.db, row, policy, defaultAcr, 'test');
  return relyingParty(server.issuer, c.clientId, c.clientSecret, REDIRECT);
}

async function user(services: Services, totp = false) {
  const username = `p${++n}`;
  const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
  const secret = totp ? await enrolTotp(services, account.id) : undefined;
  return { account, username, secret };
}

async function password(agent: UserAgent, rp: RelyingParty, username: string, extra: Record<string, string> = {}) {
  const auth = await rp.authorizationUrl(extra);
  const page = await agent.follow(auth.url);
  if (!page.body.includes('name="password"')) return { auth, next: page };
  const next = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
  return { auth, next };
}

for (const kind of DIALECTS) {
  describe(`policy on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let strict: RelyingParty; // client policy: MFA required, trusted devices allowed
    let relaxed: RelyingParty; // no client policy
    let noDevices: RelyingParty; // MFA required, trusted devices denied
    let minimum: RelyingParty; // minimum acr level 2
    let defaults: RelyingParty; // default_acr_values PAPE multi-factor

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', RESOURCE_SERVERS: JSON.stringify({ [API]: { scope: 'orders:read' } }) });
      services = server.opened.services;
      await savePolicy(services.db, GLOBAL, { mfa: 'optional', trustedDevices: { enabled: true, days: 30 } }, 'test');
      strict = await app(services, server, 'strict', { mfa: 'required', trustedDevices: 'allow' });
      relaxed = await app(services, server, 'relaxed');
      noDevices = await app(services, server, 'no-devices', { mfa: 'required', trustedDevices: 'deny' });
      minimum = await app(services, server, 'minimum', { minAcr: PAPE_MFA });
      defaults = await app(services, server, 'defaults', {}, [PAPE_MFA]);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('one user, two apps: the app that requires MFA asks for it, the optional one does not', async () => {
      const { username } = await user(services);
      const b = new UserAgent(server.issuer);
      const rb = await password(b, relaxed, username);
      expect(rb.next.location).toMatch(/code=/);
      const a = new UserAgent(server.issuer);
      const ra = await password(a, strict, username);
      expect(ra.next.body).toContain('Set up two-step verification');
      expect(ra.next.body).not.toContain('Skip for now');
    });

    test('a group enrolment deadline nudges before it and enforces after it', async () => {
      const before = await createGroup(services.db, `soon${n}`);
      const after = await createGroup(services.db, `late${n}`);
      await savePolicy(services.db, groupScope(before.id), { level: 2, enrollmentDeadline: { days: 30 } }, 'test');
      await savePolicy(services.db, groupScope(after.id), { level: 2, enrollmentDeadline: { date: '2020-01-01' } }, 'test');
      const nudged = await user(services);
      await addMember(services.db, before.id, nudged.account.id);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, relaxed, nudged.username);
      expect(next.body).toContain('requires two-step verification from');
      expect(next.body).toContain('Skip for now');
      const skipped = await agent.submit(`/interaction/${/\/interaction\/([^/]+)\/skip/.exec(next.body)![1]}/skip`, {});
      expect(skipped.location).toMatch(/code=/);
      expect((await relaxed.redeem(skipped.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:1');

      const enforced = await user(services);
      await addMember(services.db, after.id, enforced.account.id);
      const late = new UserAgent(server.issuer);
      const r = await password(late, relaxed, enforced.username);
      expect(r.next.body).toContain('Set up two-step verification');
      expect(r.next.body).not.toContain('Skip for now');
    });

    test('a client minimum cannot be lowered by editing the request', async () => {
      // No second factor: the relaxed app signs in on the password alone…
      const { username } = await user(services);
      const plain = new UserAgent(server.issuer);
      expect((await password(plain, relaxed, username, { acr_values: REFEDS_SFA })).next.location).toMatch(/code=/);
      // …while the app with a level-2 minimum insists, whatever acr_values says: enrolment, not skippable.
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, minimum, username, { acr_values: REFEDS_SFA });
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).not.toContain('Skip for now');
    });

    test('default_acr_values apply when the request sends none', async () => {
      const { username, secret } = await user(services);
      void secret;
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, defaults, username);
      // No factor yet: the app's default asks for level 2, so the user is offered enrolment.
      expect(next.body).toContain('Set up two-step verification');
    });

    test('client default_max_age and require_auth_time are honoured', async () => {
      const { username } = await user(services);
      const c = await createClient(services.db, services.sealer, { name: `aged${n}`, redirectUris: [REDIRECT], firstParty: true });
      const row = (await findClientRow(services.db, c.clientId))!;
      await services.db.updateTable('clients').set({ metadata: JSON.stringify({ ...row.metadata, default_max_age: 1, require_auth_time: true }) }).where('client_id', '=', c.clientId).execute();
      const rp = await relyingParty(server.issuer, c.clientId, c.clientSecret, REDIRECT);
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, rp, username);
      expect(typeof (await rp.redeem(first.next.location!, first.auth)).claims()!.auth_time).toBe('number');
      await new Promise((r) => setTimeout(r, 2100));
      const again = await rp.authorizationUrl();
      expect((await agent.follow(again.url)).body).toContain('name="password"');
    });

    test('max_age forces a fresh sign-in', async () => {
      const { username, secret } = await user(services, true);
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, relaxed, username);
      const done = await agent.submit(formAction(first.next.body), { code: totpCode(secret!) });
      const t1 = (await relaxed.redeem(done.location!, first.auth)).claims()!.auth_time!;
      await new Promise((r) => setTimeout(r, 2100));
      const again = await relaxed.authorizationUrl({ max_age: '1' });
      const page = await agent.follow(again.url);
      expect(page.body).toContain('name="password"');
      const second = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      const fin = await agent.submit(formAction(second.body), { code: totpCode(secret!, 1) });
      const t2 = (await relaxed.redeem(fin.location!, again)).claims()!.auth_time!;
      expect(t2).toBeGreaterThan(t1);
    });

    test('a trusted device skips the second factor for an app that allows it, not for one that denies it, and stops once revoked', async () => {
      const { account, username, secret } = await user(services, true);
      const first = new UserAgent(server.issuer);
      const r = await password(first, strict, username);
      expect(r.next.body).toContain("Don't ask again on this device for 30 days");
      const done = await first.submit(formAction(r.next.body), { code: totpCode(secret!), trust: 'yes' });
      expect(done.location).toMatch(/code=/);
      const device = first.cookies.get('twofold.device');
      expect(device).toBeTruthy();
      const withDevice = () => {
        const agent = new UserAgent(server.issuer);
        agent.cookies.set('twofold.device', first.cookies.get('twofold.device')!);
        agent.cookies.set('twofold.device.sig', first.cookies.get('twofold.device.sig')!);
        return agent;
      };
      const skip = withDevice();
      const s = await password(skip, strict, username, { acr_values: PAPE_MFA });
      expect(s.next.location).toMatch(/code=/);
      const claims = (await strict.redeem(s.next.location!, s.auth)).claims()!;
      expect(claims.acr).toBe(PAPE_MFA);
      expect(claims.amr).toEqual(['pwd']); // truthful: only the password was performed now

      const denied = withDevice();
      const d = await password(denied, noDevices, username);
      expect(d.next.body).toContain('Two-step verification');

      await revokeAllDevices(services.db, account.id);
      const revoked = withDevice();
      const v = await password(revoked, strict, username);
      expect(v.next.body).toContain('Two-step verification');

      // A forged cookie (signature mismatch) is ignored.
      const forged = new UserAgent(server.issuer);
      forged.cookies.set('twofold.device', device!);
      forged.cookies.set('twofold.device.sig', 'AAAA');
      expect((await password(forged, strict, username)).next.body).toContain('Two-step verification');
    });

    test('a new factor voids trusted devices', async () => {
      const { account, username, secret } = await user(services, true);
      const first = new UserAgent(server.issuer);
      const r = await password(first, strict, username);
      await first.submit(formAction(r.next.body), { code: totpCode(secret!), trust: 'yes' });
      await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      agent.cookies.set('twofold.device', first.cookies.get('twofold.device')!);
      agent.cookies.set('twofold.device.sig', first.cookies.get('twofold.device.sig')!);
      expect((await password(agent, strict, username)).next.body).toContain('Two-step verification');
    });

    test('RFC 9470: acr, amr and auth_time in JWT access tokens and introspection', async () => {
      const { username, secret } = await user(services, true);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, relaxed, username, { resource: API, scope: 'openid orders:read' });
      const done = await agent.submit(formAction(next.body), { code: totpCode(secret!) });
      const tokens = await relaxed.redeem(done.location!, auth);
      const jwks = createRemoteJWKSet(new URL(relaxed.config.serverMetadata().jwks_uri!));
      const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: API });
      expect(payload).toMatchObject({ acr: 'urn:twofold:acr:2', amr: expect.arrayContaining(['pwd', 'otp', 'mfa']), scope: 'orders:read' });
      expect(typeof payload.auth_time).toBe('number');
      // Opaque access tokens (for userinfo, without a resource) carry the same claims in introspection.
      const plain = await relaxed.authorizationUrl();
      const sso = await agent.follow(plain.url);
      const opaque = await relaxed.redeem(sso.location!, plain);
      expect(opaque.access_token.split('.')).toHaveLength(1);
      const intro = await oidc.tokenIntrospection(relaxed.config, opaque.access_token);
      expect(intro).toMatchObject({ active: true, acr: 'urn:twofold:acr:2', auth_time: payload.auth_time });
      expect(intro.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });
  });
}

describe('a level proved long ago falls back (levelMaxAge)', () => {
  let database: TestDatabase;
  let server: TestServer;
  let services: Services;
  let rp: RelyingParty;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database, { MFA: 'optional' });
    services = server.opened.services;
    await savePolicy(services.db, GLOBAL, { mfa: 'off', levelMaxAge: { '2': 2 } }, 'test');
    rp = await app(services, server, 'aging');
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  test('after the level-2 age, a request for level 2 asks for the second factor again, and a plain request says level 1', async () => {
    const { username, secret } = await user(services, true);
    const agent = new UserAgent(server.issuer);
    const { auth, next } = await password(agent, rp, username, { acr_values: PAPE_MFA });
    const done = await agent.submit(formAction(next.body), { code: totpCode(secret!) });
    expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe(PAPE_MFA);
    await new Promise((r) => setTimeout(r, 3100));
    const plain = await rp.authorizationUrl();
    const hop = await agent.follow(plain.url);
    const claims = (await rp.redeem(hop.location!, plain)).claims()!;
    expect(claims.acr).toBe('urn:twofold:acr:1');
    expect(claims.amr).toEqual(['pwd']);
    const up = await rp.authorizationUrl({ acr_values: PAPE_MFA });
    const page = await agent.follow(up.url);
    expect(page.body).toContain('Confirm it is you');
    expect(page.body).not.toContain('name="password"');
  });
});
