/**
 * Policy end to end, with openid-client as the app: per-app and per-group
 * requirements (deadlines by date and by days), a client minimum a request
 * cannot lower, requirements that cannot be met, max_age, an app's maximum
 * authentication age, prompt=login and level ages forcing fresh proofs,
 * trusted devices (allowed, denied, revoked, expired, voided, bound to the
 * factor that created them), accounts holding only backup codes, a configured
 * ACR table, and RFC 9470 claims in JWT access tokens and introspection.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { changePassword } from '../../src/accounts/password-change.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { createClient, findClientRow } from '../../src/oidc/clients.ts';
import { savePolicy, GLOBAL, groupScope } from '../../src/policy/store.ts';
import { applyClientPolicy } from '../../src/cli/commands/client-policy.ts';
import { listDevices, revokeAllDevices } from '../../src/mfa/trusted-devices.ts';
import { removeCredential } from '../../src/mfa/removal.ts';
import { policyFromOptions } from '../../src/cli/commands/client-policy.ts';
import { CliError } from '../../src/cli/io.ts';
import type { Services } from '../../src/services.ts';
import type { ClientPolicy } from '../../src/policy/documents.ts';

const REDIRECT = 'http://app.example.test/callback';
const API = 'https://api.example.test';
const PAPE_MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const REFEDS_SFA = 'https://refeds.org/profile/sfa';
const PAPE_PR = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant';

/** The error an app receives on its redirect URI, if the hop went back to it with one. */
const appError = (hop: { location?: string }) => (hop.location?.startsWith(REDIRECT) ? new URL(hop.location).searchParams.get('error') : null);
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

    test('client default_max_age is honoured; a client whose require_auth_time is not a boolean is refused, not served', async () => {
      const { username } = await user(services);
      const c = await createClient(services.db, services.sealer, { name: `aged${n}`, redirectUris: [REDIRECT], firstParty: true });
      const row = (await findClientRow(services.db, c.clientId))!;
      await services.db
        .updateTable('clients')
        .set({ metadata: JSON.stringify({ ...row.metadata, default_max_age: 1, require_auth_time: true }) })
        .where('client_id', '=', c.clientId)
        .execute();
      const rp = await relyingParty(server.issuer, c.clientId, c.clientSecret, REDIRECT);
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, rp, username);
      expect(typeof (await rp.redeem(first.next.location!, first.auth)).claims()!.auth_time).toBe('number');
      await new Promise((r) => setTimeout(r, 2100));
      const again = await rp.authorizationUrl();
      expect((await agent.follow(again.url)).body).toContain('name="password"');

      // The metadata is validated, not trusted: a malformed value keeps the app from signing anyone in.
      const bad = await createClient(services.db, services.sealer, { name: `badmeta${n}`, redirectUris: [REDIRECT], firstParty: true });
      const badRow = (await findClientRow(services.db, bad.clientId))!;
      await services.db
        .updateTable('clients')
        .set({ metadata: JSON.stringify({ ...badRow.metadata, require_auth_time: 'yes' }) })
        .where('client_id', '=', bad.clientId)
        .execute();
      const badRp = await relyingParty(server.issuer, bad.clientId, bad.clientSecret, REDIRECT);
      const refused = await new UserAgent(server.issuer).follow((await badRp.authorizationUrl()).url);
      expect(refused.body).not.toContain('name="password"');
      expect(refused.location ?? '').not.toMatch(/code=/);
      expect(refused.status).toBeGreaterThanOrEqual(400);
      expect(refused.status).toBeLessThan(500);
    });

    test("an app's maximum authentication age sends an old session back to sign in, whatever max_age the request sends", async () => {
      const aged = await app(services, server, `max-auth-age${n}`, { maxAuthAge: 1 });
      const { username } = await user(services);
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, aged, username);
      expect(first.next.location).toMatch(/code=/);
      // A fresh session passes without a page.
      const sso = await aged.authorizationUrl({ max_age: '3600' });
      expect((await agent.follow(sso.url)).location).toMatch(/code=/);
      await new Promise((r) => setTimeout(r, 2100));
      const later = await aged.authorizationUrl({ max_age: '3600' });
      expect((await agent.follow(later.url)).body).toContain('name="password"');
      // Another app without the limit still takes the session.
      const other = await relaxed.authorizationUrl();
      expect((await agent.follow(other.url)).location).toMatch(/code=/);
    });

    test('a group deadline of N days after the policy applies: nudged while it runs, enforced once it has run out', async () => {
      const group = await createGroup(services.db, `days${n}`);
      await savePolicy(services.db, groupScope(group.id), { level: 2, enrollmentDeadline: { days: 7 } }, 'test');
      const fresh = await user(services);
      await addMember(services.db, group.id, fresh.account.id);
      const nudged = await password(new UserAgent(server.issuer), relaxed, fresh.username);
      expect(nudged.next.body).toContain('requires two-step verification from');
      expect(nudged.next.body).toContain('Skip for now');

      // Eight days on: the member joined, and the deadline was introduced, eight days ago.
      const old = await user(services);
      await addMember(services.db, group.id, old.account.id);
      const eightDaysAgo = new Date(Date.now() - 8 * 86400 * 1000);
      await services.db.updateTable('account_groups').set({ added_at: eightDaysAgo }).where('account_id', '=', old.account.id).execute();
      await services.db.updateTable('policy_documents').set({ created_at: eightDaysAgo }).where('scope', '=', groupScope(group.id)).execute();
      const enforced = await password(new UserAgent(server.issuer), relaxed, old.username);
      expect(enforced.next.body).toContain('Set up two-step verification');
      expect(enforced.next.body).not.toContain('Skip for now');
      // The first member joined eight days after the policy began: their own seven days still run.
      await services.db.updateTable('account_groups').set({ added_at: new Date() }).where('account_id', '=', fresh.account.id).execute();
      expect((await password(new UserAgent(server.issuer), relaxed, fresh.username)).next.body).toContain('Skip for now');
    });

    test("an app's or a group's minimum that cannot be met returns unmet_authentication_requirements", async () => {
      // The app wants phishing-resistant (level 3); the account has TOTP, and may not enrol while it has a factor.
      const keysOnly = await app(services, server, `pr-minimum${n}`, { minAcr: PAPE_PR });
      const { username } = await user(services, true);
      expect(appError((await password(new UserAgent(server.issuer), keysOnly, username)).next)).toBe('unmet_authentication_requirements');
      // A request cannot lower it.
      expect(appError((await password(new UserAgent(server.issuer), keysOnly, username, { acr_values: REFEDS_SFA })).next)).toBe(
        'unmet_authentication_requirements',
      );

      // A group that requires level 3, signing in to an app that asks for nothing.
      const admins = await createGroup(services.db, `level3-${n}`);
      await savePolicy(services.db, groupScope(admins.id), { level: 3 }, 'test');
      const member = await user(services, true);
      await addMember(services.db, admins.id, member.account.id);
      expect(appError((await password(new UserAgent(server.issuer), relaxed, member.username)).next)).toBe('unmet_authentication_requirements');
      // The same for a group that allows only factors the account lacks.
      const keyGroup = await createGroup(services.db, `keys-${n}`);
      await savePolicy(services.db, groupScope(keyGroup.id), { level: 2, factors: ['webauthn'] }, 'test');
      const other = await user(services, true);
      await addMember(services.db, keyGroup.id, other.account.id);
      expect(appError((await password(new UserAgent(server.issuer), relaxed, other.username)).next)).toBe('unmet_authentication_requirements');
    });

    test('prompt=login asks for the second factor again as well as the password', async () => {
      const { username, secret } = await user(services, true);
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, relaxed, username);
      const done = await agent.submit(formAction(first.next.body), { code: totpCode(secret!) });
      const t1 = (await relaxed.redeem(done.location!, first.auth)).claims()!.auth_time!;
      const again = await relaxed.authorizationUrl({ prompt: 'login' });
      const page = await agent.follow(again.url);
      expect(page.body).toContain('name="password"');
      const second = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      // Not a code: the session's earlier TOTP does not carry over into a forced sign-in.
      expect(second.location ?? '').not.toMatch(/code=/);
      expect(second.body).toContain('Two-step verification');
      await new Promise((r) => setTimeout(r, 1100));
      const fin = await agent.submit(formAction(second.body), { code: totpCode(secret!, 1) });
      const claims = (await relaxed.redeem(fin.location!, again)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.auth_time!).toBeGreaterThan(t1);
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
      expect(r.next.body).toContain('Don&#39;t ask again on this device for 30 days');
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

    /** Signs in to `strict` with password and TOTP, ticking "don't ask again"; returns the device cookies. */
    async function trustedSignIn(username: string, secret: string, step = 0) {
      const agent = new UserAgent(server.issuer);
      const r = await password(agent, strict, username);
      // `step`: another time step's code, for a second trusted sign-in (a code is accepted once).
      const done = await agent.submit(formAction(r.next.body), { code: totpCode(secret, step), trust: 'yes' });
      expect(done.location).toMatch(/code=/);
      const cookie = agent.cookies.get('twofold.device')!;
      const sig = agent.cookies.get('twofold.device.sig')!;
      expect(cookie).toBeTruthy();
      return () => {
        const next = new UserAgent(server.issuer);
        next.cookies.set('twofold.device', cookie);
        next.cookies.set('twofold.device.sig', sig);
        return next;
      };
    }
    const skips = async (agent: UserAgent, rp: RelyingParty, username: string) => /code=/.test((await password(agent, rp, username)).next.location ?? '');

    test('an app that denies trusted devices shows no "don\'t ask again" box, and trust=yes posted there stores nothing', async () => {
      const { account, username, secret } = await user(services, true);
      const agent = new UserAgent(server.issuer);
      const r = await password(agent, noDevices, username);
      expect(r.next.body).toContain('Two-step verification');
      expect(r.next.body).not.toContain('name="trust"');
      expect(r.next.body).not.toContain('Don&#39;t ask again');
      const done = await agent.submit(formAction(r.next.body), { code: totpCode(secret!), trust: 'yes' });
      expect(done.location).toMatch(/code=/);
      expect(agent.cookies.get('twofold.device')).toBeUndefined();
      expect(await listDevices(services.db, account.id)).toEqual([]);
    });

    test('a backup code never trusts a device: no "don\'t ask again" box on its page, and trust=yes posted with one stores nothing', async () => {
      const { account, username } = await user(services, true);
      // Enough codes that using one brings no "few codes left" notice first.
      const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
      await enrolBackupCodes(
        services,
        account.id,
        Array.from({ length: 10 }, (_, i) => alphabet.slice(i, i + 16)),
      );
      const agent = new UserAgent(server.issuer);
      const r = await password(agent, strict, username);
      expect(r.next.body).toContain('Don&#39;t ask again'); // the authenticator app's page offers it
      const uid = formAction(r.next.body).match(/\/interaction\/([^/?]+)/)![1];
      const page = await agent.follow(`${server.issuer}/interaction/${uid}?factor=backup-codes`);
      expect(page.body).toContain('Enter one of your backup codes');
      expect(page.body).not.toContain('name="trust"');
      const done = await agent.submit(formAction(page.body), { code: alphabet.slice(3, 19), trust: 'yes' });
      expect(done.location).toMatch(/code=/);
      expect(agent.cookies.get('twofold.device')).toBeUndefined();
      expect(await listDevices(services.db, account.id)).toEqual([]);
    });

    test('a device stops counting once it expires, a factor is removed or the password is reset; a silent rehash of the password does not void it', async () => {
      const { account, username, secret } = await user(services, true);
      await enrolTotp(services, account.id); // a second authenticator, to be removed below
      // Three trusted sign-ins with one authenticator: codes of three time steps, in order (a code is accepted once, never an older one).
      const device = await trustedSignIn(username, secret!, -1);
      expect(await skips(device(), strict, username)).toBe(true);

      // The argon2 parameters changed and the hash was upgraded at sign-in: nothing the user did, the device stands.
      await services.db
        .updateTable('accounts')
        .set({ password_hash: await services.hasher.hash('a long password') })
        .where('id', '=', account.id)
        .execute();
      expect(await skips(device(), strict, username)).toBe(true);

      // Expired.
      const [row] = await listDevices(services.db, account.id);
      await services.db
        .updateTable('trusted_devices')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('id', '=', row!.id)
        .execute();
      expect(await skips(device(), strict, username)).toBe(false);
      expect((await listDevices(services.db, account.id))[0]!.state).toBe('expired');

      // A factor removed.
      const again = await trustedSignIn(username, secret!, 0);
      expect(await skips(again(), strict, username)).toBe(true);
      const authenticators = await services.factors.store.list(account.id, 'totp');
      await removeCredential(services, account.id, authenticators[authenticators.length - 1]!.id, { actor: 'test' });
      expect(await skips(again(), strict, username)).toBe(false);

      // The password reset.
      const third = await trustedSignIn(username, secret!, 1);
      expect(await skips(third(), strict, username)).toBe(true);
      expect(await changePassword(services, { accountId: account.id, password: 'a long password', via: 'admin', actor: 'admin:test' })).toMatchObject({
        ok: true,
      });
      expect(await skips(third(), strict, username)).toBe(false);
      expect((await listDevices(services.db, account.id)).map((d) => d.state)).toEqual([
        'void (factors or password changed)',
        'void (factors or password changed)',
        'expired',
      ]);
    });

    test('last used moves only when the device stood in, not on a sign-in to an app that denies it; an app with no setting allows it', async () => {
      const { account, username, secret } = await user(services, true);
      const device = await trustedSignIn(username, secret!);
      const lastUsed = async () => (await listDevices(services.db, account.id))[0]!.last_used_at;
      // The sign-in that created it proved TOTP: the device stood in for nothing.
      expect(await lastUsed()).toBeNull();
      const denied = await password(device(), noDevices, username);
      expect(denied.next.body).toContain('Two-step verification');
      expect(await lastUsed()).toBeNull();
      // `relaxed` has no trustedDevices setting: it counts as allowing (README, Trusted devices).
      expect(await skips(device(), relaxed, username)).toBe(true);
      expect(await lastUsed()).toBeInstanceOf(Date);
    });

    test('a device trusted after a TOTP code does not satisfy an app that accepts only security keys', async () => {
      const keysOnly = await app(services, server, `keys-only${n}`, { mfa: 'required', factors: ['webauthn'], trustedDevices: 'allow' });
      const { username, secret } = await user(services, true);
      const device = await trustedSignIn(username, secret!);
      expect(await skips(device(), strict, username)).toBe(true);
      // Without a key to prove, and no enrolment for an account that has a factor: unmet, with or without the device.
      expect(appError((await password(new UserAgent(server.issuer), keysOnly, username)).next)).toBe('unmet_authentication_requirements');
      expect(appError((await password(device(), keysOnly, username)).next)).toBe('unmet_authentication_requirements');
    });

    test('an account holding only backup codes proves one, then must set up a real second factor', async () => {
      const { account, username } = await user(services);
      await enrolBackupCodes(services, account.id, ['ABCDEFGHJKMNPQRS', 'BCDEFGHJKMNPQRST', 'CDEFGHJKMNPQRSTV', 'DEFGHJKMNPQRSTVW', 'EFGHJKMNPQRSTVWX']);
      const agent = new UserAgent(server.issuer);
      const r = await password(agent, strict, username);
      // Not an enrolment page on the password alone: a backup code first.
      expect(r.next.body).not.toContain('Set up two-step verification');
      expect(r.next.body).toContain('Enter one of your backup codes');
      let next = await agent.submit(formAction(r.next.body), { code: 'ABCD-EFGH-JKMN-PQRS' });
      if (next.body.includes('Before you continue')) next = await agent.submit(formAction(next.body), {});
      // The code proved who the user is; it is not the second factor: enrol one, no skipping.
      expect(next.location ?? '').not.toMatch(/code=/);
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).not.toContain('Skip for now');
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

describe('a configured ACR table (ACR_VALUES)', () => {
  let database: TestDatabase;
  let server: TestServer;
  let services: Services;
  let rp: RelyingParty;
  const GOLD = 'urn:example:acr:gold';

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database, { MFA: 'off', ACR_VALUES: JSON.stringify({ [GOLD]: 2, 'urn:example:acr:bronze': 1 }) });
    services = server.opened.services;
    rp = await app(services, server, 'custom-acr');
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  test("discovery lists the configured values and Twofold's own; the defaults it replaced are gone", async () => {
    const supported = rp.config.serverMetadata().acr_values_supported;
    expect(supported).toEqual(expect.arrayContaining([GOLD, 'urn:example:acr:bronze', 'urn:twofold:acr:1', 'urn:twofold:acr:2', 'urn:twofold:acr:3']));
    expect(supported).not.toContain(PAPE_MFA);
  });

  test('a configured value asks for its level and comes back as acr when met', async () => {
    const { username, secret } = await user(services, true);
    const agent = new UserAgent(server.issuer);
    const { auth, next } = await password(agent, rp, username, { acr_values: GOLD });
    expect(next.body).toContain('Two-step verification');
    const done = await agent.submit(formAction(next.body), { code: totpCode(secret!) });
    expect((await rp.redeem(done.location!, auth)).claims()).toMatchObject({ acr: GOLD, amr: expect.arrayContaining(['pwd', 'otp', 'mfa']) });
  });

  test('an app whose stored minimum the table no longer holds is not let through on less: unmet_authentication_requirements', async () => {
    // Set before ACR_VALUES dropped the REFEDS value (stored directly: the CLI would refuse it now).
    const stale = await app(services, server, 'stale-minimum', { minAcr: 'https://refeds.org/profile/mfa' });
    const { username } = await user(services, true);
    expect(appError((await password(new UserAgent(server.issuer), stale, username)).next)).toBe('unmet_authentication_requirements');
  });

  test('--min-acr accepts a configured value and refuses one the table does not hold', () => {
    expect(policyFromOptions(services, {}, { minAcr: GOLD }).policy).toEqual({ minAcr: GOLD });
    expect(() => policyFromOptions(services, {}, { minAcr: PAPE_MFA })).toThrow(CliError);
  });
});
