/**
 * The account center over HTTP, on every database in the matrix: it signs in
 * through the provider (a real authorization code exchange), its session ends
 * with the provider session, and every form is refused (4xx, a page saying
 * so, nothing changed) when it is forged, stale, cross-site, signed out, or
 * names something of another account. Each change is audited with the
 * account as actor and the request's address. The changes themselves are
 * driven here too: rename, remove (with its refusal and its fresh proof),
 * new backup codes, trusted devices, sessions, apps, signing out. And the
 * sign-in offers backup codes again to an account that has none.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { sql } from 'kysely';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { revokeAccountAccess } from '../../src/accounts/end-sessions.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { savePolicy } from '../../src/policy/store.ts';
import { listDevices, trustDevice } from '../../src/mfa/trusted-devices.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'correct horse battery staple';
const THIRD_PARTY = 'http://third.example.test/callback';

/** The value of a form's hidden token on an account center page. */
function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no form token on page:\n${html.slice(0, 800)}`);
  return m[1]!;
}

for (const kind of DIALECTS) {
  describe(`the account center over HTTP on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let thirdParty: RelyingParty;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', FACTOR_SETTINGS: JSON.stringify({ 'backup-codes': { offerAgain: true } }) });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'Third Party', redirectUris: [THIRD_PARTY] });
      thirdParty = await relyingParty(server.issuer, app.clientId, app.clientSecret, THIRD_PARTY, { scope: 'openid profile offline_access' });
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<Account> {
      const n = ++users;
      return createAccount(services.db, services.hasher, {
        username: `person${n}`,
        email: `person${n}@example.test`,
        emailVerified: true,
        displayName: `Person ${n}`,
        password: PASSWORD,
      });
    }

    /** Signs in to /account with the password (and a TOTP code when asked); returns the agent and the overview page. */
    async function signIn(
      account: Account,
      totp?: { secret: string; step: number },
      agent = new UserAgent(server.issuer),
    ): Promise<{ agent: UserAgent; page: Hop }> {
      const login = await agent.follow('/account');
      expect(login.body).toContain('name="password"');
      let page = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      if (totp) {
        expect(page.body).toContain('Two-step verification');
        page = await agent.submit(formAction(page.body), { code: totpCode(totp.secret, totp.step) });
        page = await declineCodes(agent, page);
      }
      expect(page.status).toBe(200);
      return { agent, page };
    }

    /** An account without backup codes is offered a set after its second factor (tested on its own below): not now. */
    async function declineCodes(agent: UserAgent, page: Hop): Promise<Hop> {
      if (!page.body.includes('You have no backup codes left.')) return page;
      return agent.submit(/action="([^"]*\/skip)"/.exec(page.body)![1]!, {});
    }

    async function audits(account: Account, type: string) {
      return listAudit(services.db, { accountId: account.id, type });
    }

    test('signs in through the provider with an authorization code and PKCE, and shows the account', async () => {
      const account = await newUser();
      const agent = new UserAgent(server.issuer);
      const first = await agent.request('/account');
      expect(first.status).toBe(303);
      const auth = new URL(first.location!);
      expect(auth.origin + auth.pathname).toBe(`${server.issuer}/auth`);
      expect(Object.fromEntries(auth.searchParams)).toMatchObject({
        client_id: 'twofold-account',
        redirect_uri: `${server.issuer}/account/callback`,
        response_type: 'code',
        code_challenge_method: 'S256',
        claims: JSON.stringify({ id_token: { sid: null } }),
      });
      const { page } = await signIn(account, undefined, agent);
      expect(page.url).toBe(`${server.issuer}/account`);
      expect(page.body).toContain('<title>Your account · Twofold</title>');
      expect(page.body).toContain(account.username);
      expect(page.body).toContain(`${account.email} (verified)`);
      // The session cookie: sealed, HttpOnly, SameSite, only for /account.
      const cookie = agent.cookies.get('twofold.account')!;
      expect(cookie).toMatch(/^v1\./);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      // The provider audited a sign-in to the account center like any app's.
      expect((await audits(account, 'login.password_verified'))[0]).toMatchObject({ client_id: 'twofold-account' });
    });

    test('the session cookie is HttpOnly, SameSite=Lax and scoped to /account', async () => {
      const account = await newUser();
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow('/account');
      const answer = await agent.request(formAction(login.body), { form: { login: account.username, password: PASSWORD } });
      let hop = answer;
      let setCookie = '';
      for (let i = 0; i < 6 && hop.location; i++) {
        hop = await agent.request(hop.location);
        setCookie += hop.headers.getSetCookie().join('\n');
      }
      expect(setCookie).toMatch(/twofold\.account=v1\.[^;]+; path=\/account; expires=[^;]+; samesite=lax; httponly/i);
    });

    test('a German browser gets the account center in German', async () => {
      const account = await newUser();
      const agent = new UserAgent(server.issuer);
      const { page } = await signIn(account, undefined, agent);
      const german = await agent.request('/account', { headers: { 'accept-language': 'de-DE,de;q=0.9' } });
      expect(german.body).toContain('<html lang="de">');
      expect(german.body).toContain('Anmeldemethoden verwalten');
      expect(page.body).toContain('Manage sign-in methods');
    });

    test('signed out, a page starts a sign-in and a form is refused (401), nothing changed', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const { agent, page } = await signIn(account, { secret, step: 0 });
      const token = csrfOf(page.body);
      const [credential] = await services.factors.store.list(account.id);
      const stranger = new UserAgent(server.issuer);
      const refused = await stranger.request(`/account/methods/${credential!.id}/rename`, { form: { _csrf: token, label: 'Stolen' } });
      expect(refused.status).toBe(401);
      expect(refused.body).toContain('Nothing was changed');
      expect((await services.factors.store.list(account.id))[0]!.label).toBe('Test phone');
      expect(agent.cookies.has('twofold.account')).toBe(true);
    });

    test('a forged form: no token, a wrong token, or another origin: 403, nothing changed', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const { agent, page } = await signIn(account, { secret, step: 0 });
      const token = csrfOf(page.body);
      const [credential] = await services.factors.store.list(account.id);
      const rename = `/account/methods/${credential!.id}/rename`;
      const attempts: Array<{ form: Record<string, string>; headers?: Record<string, string> }> = [
        { form: { label: 'No token' } },
        { form: { _csrf: 'x'.repeat(43), label: 'Wrong token' } },
        { form: { _csrf: token, label: 'Cross-site' }, headers: { origin: 'https://evil.example' } },
        { form: { _csrf: token, label: 'Cross-site, no Origin' }, headers: { origin: 'null', 'sec-fetch-site': 'cross-site' } },
      ];
      for (const attempt of attempts) {
        const hop = await agent.request(rename, attempt);
        expect(hop.status).toBe(403);
        expect(hop.body).toContain('This form has expired');
        expect(hop.body).toContain('Nothing was changed');
      }
      expect((await services.factors.store.list(account.id))[0]!.label).toBe('Test phone');
      expect(await audits(account, 'factor.renamed')).toEqual([]);
    });

    test('a stale token from an earlier session is refused', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const { agent, page } = await signIn(account, { secret, step: 0 });
      const old = csrfOf(page.body);
      // A new account center session (single sign-on through the provider's), with a token of its own.
      agent.cookies.delete('twofold.account');
      const again = await agent.follow('/account');
      expect(again.url).toBe(`${server.issuer}/account`);
      expect(csrfOf(again.body)).not.toBe(old);
      const [credential] = await services.factors.store.list(account.id);
      const hop = await agent.request(`/account/methods/${credential!.id}/rename`, { form: { _csrf: old, label: 'Stale' } });
      expect(hop.status).toBe(403);
      expect((await services.factors.store.list(account.id))[0]!.label).toBe('Test phone');
    });

    test("another account's credential, device, session or app: 404, nothing changed", async () => {
      const victim = await newUser();
      const victimSecret = await enrolTotp(services, victim.id);
      const victimSignIn = await signIn(victim, { secret: victimSecret, step: 0 });
      const [victimCredential] = await services.factors.store.list(victim.id);
      const device = await trustDevice(services.db, victim.id, 'Mozilla/5.0 Firefox/120.0', 30, 'totp');
      const [victimSession] = await services.db.selectFrom('session_evidence').select('session_uid').where('account_id', '=', victim.id).execute();
      const app = await thirdPartyTokens(victim, victimSignIn.agent);

      const attacker = await newUser();
      const { agent, page } = await signIn(attacker);
      const _csrf = csrfOf(page.body);
      for (const [path, form] of [
        [`/account/methods/${victimCredential!.id}/rename`, { _csrf, label: 'Mine now' }],
        [`/account/methods/${victimCredential!.id}/remove`, { _csrf }],
        [`/account/devices/${device.id}/revoke`, { _csrf }],
        [`/account/sessions/${victimSession!.session_uid}/end`, { _csrf }],
        [`/account/apps/${encodeURIComponent(app.clientId)}/revoke`, { _csrf }],
      ] as const) {
        const hop = await agent.request(path, { form });
        expect([path, hop.status]).toEqual([path, 404]);
        expect(hop.body).toContain('Nothing was changed');
      }
      for (const path of [`/account/methods/${victimCredential!.id}/rename`, `/account/methods/${victimCredential!.id}/remove`]) {
        expect((await agent.request(path)).status).toBe(404);
      }
      expect(await services.factors.store.list(victim.id)).toHaveLength(1);
      expect((await services.factors.store.list(victim.id))[0]!.label).toBe('Test phone');
      expect((await listDevices(services.db, victim.id))[0]!.state).toBe('live');
      expect((await victimSignIn.agent.request('/account')).status).toBe(200);
      await expect(oidc.refreshTokenGrant(thirdParty.config, app.refreshToken)).resolves.toMatchObject({ access_token: expect.any(String) });
    });

    test('the account center session ends with the provider session', async () => {
      const account = await newUser();
      const { agent, page } = await signIn(account);
      const token = csrfOf(page.body);
      await revokeAccountAccess(services.db, account.id);
      const next = await agent.request('/account');
      expect(next.status).toBe(303);
      expect(next.location).toMatch(/\/auth\?/);
      const form = await agent.request('/account/sessions/end-all', { form: { _csrf: token } });
      expect(form.status).toBe(401);
    });

    test('rename: audited with the account as actor and the address; an empty name is refused (400)', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const { agent, page } = await signIn(account, { secret, step: 0 });
      const [credential] = await services.factors.store.list(account.id);
      const form = await agent.request(`/account/methods/${credential!.id}/rename`);
      expect(form.body).toContain('value="Test phone"');
      const empty = await agent.request(`/account/methods/${credential!.id}/rename`, { form: { _csrf: csrfOf(page.body), label: '   ' } });
      expect(empty.status).toBe(400);
      expect(empty.body).toContain('Enter a name of 1 to 64 characters.');
      const done = await agent.submit(`/account/methods/${credential!.id}/rename`, { _csrf: csrfOf(page.body), label: 'Work phone' });
      expect(done.url).toBe(`${server.issuer}/account/methods?notice=renamed`);
      expect(done.body).toContain('The sign-in method was renamed.');
      expect(done.body).toContain('Work phone');
      expect((await audits(account, 'factor.renamed'))[0]).toMatchObject({
        actor: 'user',
        ip: expect.stringMatching(/127\.0\.0\.1|::1/),
        client_id: 'twofold-account',
        details: { label: 'Work phone' },
      });
    });

    test('methods: a key says whether it is synced or device-bound, and its authenticator when the AAGUID is known', async () => {
      const account = await newUser();
      // Signed in with the password before the keys exist: listing them needs no proof.
      const { agent } = await signIn(account);
      const key = (aaguid: string, backupEligible: boolean) => ({
        aaguid,
        backupEligible,
        backedUp: backupEligible,
        credentialId: aaguid,
        publicKey: 'x',
        algorithm: -7,
        transports: ['usb'],
        fmt: 'none',
      });
      await services.factors.store.insert(account.id, 'webauthn', {
        label: 'Keyring key',
        lookupKey: `a-${account.id}`,
        data: key('2fc0579f-8113-47ea-b116-bb5a8db9202a', false),
        counter: 0,
      });
      await services.factors.store.insert(account.id, 'passkey', {
        label: 'Phone passkey',
        lookupKey: `b-${account.id}`,
        data: key('FBFC3007-154E-4ECC-8C0B-6E020557D7BD', true),
        counter: 0,
      });
      await services.factors.store.insert(account.id, 'webauthn', {
        label: 'Unknown key',
        lookupKey: `c-${account.id}`,
        data: key('00000000-0000-0000-0000-000000000000', false),
        counter: 0,
      });
      const page = await agent.request('/account/methods');
      const item = (label: string) => page.body.slice(page.body.indexOf(label), page.body.indexOf('</li>', page.body.indexOf(label)));
      expect(item('Keyring key')).toContain('Device-bound: stays on this one key or device');
      expect(item('Keyring key')).toContain('Authenticator: YubiKey 5 Series with NFC');
      expect(item('Phone passkey')).toContain('Synced: kept in your account with the device maker');
      expect(item('Phone passkey')).toContain('Authenticator: iCloud Keychain');
      expect(item('Unknown key')).not.toContain('Authenticator:');
    });

    test('remove: refused with the policy’s reason when the method is needed (409), nothing changed', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const group = await services.db
        .insertInto('groups')
        .values({ id: `g-${account.id}`, name: `strict-${account.id}` })
        .returning('id')
        .executeTakeFirstOrThrow();
      await services.db.insertInto('account_groups').values({ account_id: account.id, group_id: group.id }).execute();
      await savePolicy(services.db, `group:${group.id}`, { level: 2 }, 'test');
      const { agent, page } = await signIn(account, { secret, step: 0 });
      const [credential] = await services.factors.store.list(account.id);
      const confirm = await agent.request(`/account/methods/${credential!.id}/remove`);
      expect(confirm.body).toContain('cannot be removed');
      expect(confirm.body).toContain('requires sign-in at level 2');
      expect(confirm.body).not.toContain('action="/account/methods/');
      const hop = await agent.request(`/account/methods/${credential!.id}/remove`, { form: { _csrf: csrfOf(page.body) } });
      expect(hop.status).toBe(409);
      expect(hop.body).toContain('requires sign-in at level 2');
      expect(await services.factors.store.list(account.id)).toHaveLength(1);
      expect(await audits(account, 'factor.removal_refused')).toHaveLength(1);
    });

    test('remove: the last passkey of an account without a password is refused', async () => {
      const account = await createAccount(services.db, services.hasher, { username: `nopass${++users}` });
      const passkey = await services.factors.store.insert(account.id, 'passkey', { label: 'Only passkey', lookupKey: `pk-${account.id}`, data: {} });
      // Signed in some other way (a passkey, in real life): what the refusal needs is the account's state.
      await enrolTotp(services, account.id);
      const { checkMethodRemoval } = await import('../../src/self-service/index.ts');
      await expect(checkMethodRemoval(services, { accountId: account.id, credentialId: passkey })).resolves.toMatchObject({
        ok: false,
        reason: 'refused',
        refusal: { code: 'last_sign_in' },
      });
    });

    test('remove: a session without a fresh second factor is sent for one (max_age, essential acr), then confirms', async () => {
      const account = await newUser();
      // Signed in with the password only; the two authenticators are added behind the session's back.
      const { agent } = await signIn(account);
      const secret = await enrolTotp(services, account.id);
      await enrolTotp(services, account.id);
      const [first] = await services.factors.store.list(account.id);
      const confirm = await agent.request(`/account/methods/${first!.id}/remove`);
      expect(confirm.body).toContain('you will be asked to confirm it is you');
      const hop = await agent.request(`/account/methods/${first!.id}/remove`, { form: { _csrf: csrfOf(confirm.body) } });
      expect(hop.status).toBe(303);
      const auth = new URL(hop.location!);
      expect(auth.searchParams.get('max_age')).toBe('150');
      expect(JSON.parse(auth.searchParams.get('claims')!)).toEqual({ id_token: { sid: null, acr: { essential: true, values: ['urn:twofold:acr:2'] } } });
      expect(await services.factors.store.list(account.id)).toHaveLength(2);
      // The provider asks for the second factor only (the password is recent), then back to the confirmation.
      const challenge = await agent.follow(hop.location!);
      expect(challenge.body).toContain('Confirm it is you');
      const back = await declineCodes(agent, await agent.submit(formAction(challenge.body), { code: totpCode(secret) }));
      expect(back.url).toBe(`${server.issuer}/account/methods/${first!.id}/remove`);
      expect(back.body).not.toContain('you will be asked to confirm it is you');
      const done = await agent.submit(`/account/methods/${first!.id}/remove`, { _csrf: csrfOf(back.body) });
      expect(done.url).toBe(`${server.issuer}/account/methods?notice=removed`);
      expect((await services.factors.store.list(account.id)).map((c) => c.id)).not.toContain(first!.id);
      expect((await audits(account, 'factor.removed'))[0]).toMatchObject({ actor: 'user', client_id: 'twofold-account' });
    });

    test('remove: the last factor takes the backup codes with it', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      await enrolBackupCodes(services, account.id, ['AAAA-BBBB-CCCC-DDDD']);
      const { agent } = await signIn(account, { secret, step: 0 });
      const totp = (await services.factors.store.list(account.id)).find((c) => c.factorId === 'totp')!;
      const confirm = await agent.request(`/account/methods/${totp.id}/remove`);
      expect(confirm.body).toContain('Your backup codes will be removed too');
      const done = await agent.submit(`/account/methods/${totp.id}/remove`, { _csrf: csrfOf(confirm.body) });
      expect(done.body).toContain('and your backup codes with it');
      expect(await services.factors.store.list(account.id)).toEqual([]);
    });

    test('backup codes: a new set is shown once, the old set is dead at once, audited; none without a second factor (409)', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      await enrolBackupCodes(services, account.id, ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH']);
      const { agent } = await signIn(account, { secret, step: 0 });
      const overview = await agent.request('/account');
      expect(overview.body).toContain('You have 2 backup codes left.');
      const status = await agent.request('/account/backup-codes');
      expect(status.body).toContain('You have 2 unused codes.');
      const shown = await agent.submit('/account/backup-codes', { _csrf: csrfOf(status.body) });
      expect(shown.url).toBe(`${server.issuer}/account/backup-codes/new`);
      const codes = [...shown.body.matchAll(/<li><code>([0-9A-Z-]{19})<\/code><\/li>/g)].map((m) => m[1]!);
      expect(codes).toHaveLength(10);
      expect(shown.body).toContain('download="twofold-backup-codes.txt"');
      expect(shown.body).toContain('data-print');
      const [credential] = await services.factors.store.list(account.id, 'backup-codes');
      expect(await services.factors.store.consumeOneTimeCode(credential!.id, 'AAAA-BBBB-CCCC-DDDD')).toBe(false);
      expect(await services.factors.store.consumeOneTimeCode(credential!.id, codes[0]!)).toBe(true);
      // Shown once: a reload goes back to the count.
      const again = await agent.request('/account/backup-codes/new');
      expect(again.status).toBe(302);
      expect((await audits(account, 'backup_codes.regenerated'))[0]).toMatchObject({ actor: 'user', details: { count: 10 } });

      const plain = await newUser();
      const signedIn = await signIn(plain);
      const page = await signedIn.agent.request('/account/backup-codes');
      expect(page.body).toContain('Backup codes back up another sign-in method');
      const refused = await signedIn.agent.request('/account/backup-codes', { form: { _csrf: csrfOf(page.body) } });
      expect(refused.status).toBe(409);
      expect(await services.factors.store.list(plain.id)).toEqual([]);
    });

    test('trusted devices: listed with the factor that made them, and revoked', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const { agent } = await signIn(account, { secret, step: 0 });
      const device = await trustDevice(services.db, account.id, 'Mozilla/5.0 (Windows NT 10.0) Firefox/120.0', 30, 'totp');
      const list = await agent.request('/account/devices');
      expect(list.body).toContain('Firefox on Windows');
      expect(list.body).toContain('Stands in for: Authenticator app');
      const done = await agent.submit(`/account/devices/${device.id}/revoke`, { _csrf: csrfOf(list.body) });
      expect(done.body).toContain('The device is no longer trusted');
      expect((await listDevices(services.db, account.id))[0]!.state).toBe('revoked');
      expect((await audits(account, 'device.revoked'))[0]).toMatchObject({ actor: 'user', details: { device: device.id } });
    });

    async function thirdPartyTokens(account: Account, agent: UserAgent) {
      const auth = await thirdParty.authorizationUrl({ prompt: 'consent' });
      let hop = await agent.follow(auth.url);
      if (hop.body.includes('name="password"')) hop = await agent.submit(formAction(hop.body), { login: account.username, password: PASSWORD });
      if (hop.body.includes('/consent')) hop = await agent.submit(formAction(hop.body), {});
      expect(hop.location).toMatch(/^http:\/\/third\.example\.test\/callback\?code=/);
      const tokens = await thirdParty.redeem(hop.location!, auth);
      return { clientId: thirdParty.config.clientMetadata().client_id, refreshToken: tokens.refresh_token! };
    }

    test('sessions: each browser listed with its apps; signing one out ends it, signing out everywhere ends all', async () => {
      const account = await newUser();
      const here = await signIn(account);
      const there = await signIn(account);
      await thirdPartyTokens(account, there.agent);
      const list = await here.agent.request('/account/sessions');
      expect(list.body.match(/action="\/account\/sessions\/[^/"]+\/end"/g)).toHaveLength(2);
      expect(list.body).toContain('This browser');
      expect(list.body).toContain('Third Party');
      const other = (await services.db.selectFrom('session_evidence').select('session_uid').where('account_id', '=', account.id).execute()).map(
        (r) => r.session_uid,
      );
      const mine = /action="\/account\/sessions\/([^/"]+)\/end"/.exec(list.body)![1]!;
      const theirs = other.find((uid) => uid !== mine)!;
      const done = await here.agent.submit(`/account/sessions/${theirs}/end`, { _csrf: csrfOf(list.body) });
      expect(done.body).toContain('That session was signed out.');
      expect((await there.agent.request('/account')).status).toBe(303);
      expect((await audits(account, 'session.ended'))[0]).toMatchObject({ actor: 'user', details: { session: theirs } });

      // Signed in with the password alone and no second factor: the proof is fresh.
      const all = await here.agent.submit('/account/sessions/end-all', { _csrf: csrfOf(done.body) });
      expect(all.url).toBe(`${server.issuer}/account/signed-out`);
      expect(all.body).toContain('You signed out of your account.');
      expect(await services.db.selectFrom('oidc_payloads').select('uid').where('kind', '=', 'Session').where('uid', 'in', other).execute()).toEqual([]);
      expect(await audits(account, 'session.ended_all')).toHaveLength(1);
    });

    test('apps: a consent and its refresh tokens are revoked at once, audited', async () => {
      const account = await newUser();
      const { agent } = await signIn(account);
      const app = await thirdPartyTokens(account, agent);
      const list = await agent.request('/account/apps');
      expect(list.body).toContain('Third Party');
      expect(list.body).toContain('You allowed: openid, profile, offline_access');
      expect(list.body).toContain('Stays signed in (1 refresh token)');
      expect(list.body).not.toContain('Account center');
      const done = await agent.submit(`/account/apps/${encodeURIComponent(app.clientId)}/revoke`, { _csrf: csrfOf(list.body) });
      expect(done.body).toContain('access was revoked. It asks you again');
      expect(done.body).toContain('No app holds access to your account.');
      await expect(oidc.refreshTokenGrant(thirdParty.config, app.refreshToken)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(await services.db.selectFrom('consents').selectAll().where('account_id', '=', account.id).execute()).toEqual([]);
      expect((await audits(account, 'app.revoked'))[0]).toMatchObject({ actor: 'user', client_id: app.clientId, details: { consent: true } });
    });

    test('sign out is RP-initiated logout: the provider session ends, and so does the account center’s', async () => {
      const account = await newUser();
      const { agent, page } = await signIn(account);
      const out = await agent.request('/account/sign-out', { form: { _csrf: csrfOf(page.body) } });
      expect(out.status).toBe(303);
      const end = new URL(out.location!);
      expect(end.pathname).toBe('/session/end');
      expect(end.searchParams.get('client_id')).toBe('twofold-account');
      expect(end.searchParams.get('post_logout_redirect_uri')).toBe(`${server.issuer}/account/signed-out`);
      expect(agent.cookies.has('twofold.account')).toBe(false);
      const confirm = await agent.follow(out.location!);
      expect(confirm.body).toContain('Do you want to sign out');
      const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(confirm.body)!;
      const fields = Object.fromEntries([...form[2]!.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      const signedOut = await agent.submit(form[1]!, { ...fields, logout: 'yes' });
      expect(signedOut.url).toMatch(new RegExp(`^${server.issuer}/account/signed-out(\\?|$)`));
      const sessions = await services.db
        .selectFrom('oidc_payloads')
        .select('uid')
        .where('kind', '=', 'Session')
        .where(sql<string>`jsonb_extract_path_text(payload, 'accountId')`, '=', account.id)
        .execute();
      expect(sessions).toEqual([]);
      // Signing in again asks for the password: no session was left at the provider.
      const again = await agent.follow('/account');
      expect(again.body).toContain('name="password"');
    });

    test('the sign-in offers backup codes again to an account with a second factor and none, and may be skipped', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow('/account');
      const challenge = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      // No backup codes to fall back on: the challenge page says who can help.
      expect(challenge.body).toContain('Your administrator can reset your sign-in methods');
      const offer = await agent.submit(formAction(challenge.body), { code: totpCode(secret) });
      expect(offer.body).toContain('You have no backup codes left.');
      expect(offer.body).toContain('Skip for now');
      const skipped = await agent.submit(/action="([^"]*\/skip)"/.exec(offer.body)![1]!, {});
      expect(skipped.url).toBe(`${server.issuer}/account`);
      expect(await services.factors.store.list(account.id, 'backup-codes')).toEqual([]);

      // Next sign-in: offered again, and saved this time.
      const second = new UserAgent(server.issuer);
      const login2 = await second.follow('/account');
      const challenge2 = await second.submit(formAction(login2.body), { login: account.username, password: PASSWORD });
      const offer2 = await second.submit(formAction(challenge2.body), { code: totpCode(secret, 1) });
      const saved = await second.submit(formAction(offer2.body), { saved: 'yes' });
      expect(saved.url).toBe(`${server.issuer}/account`);
      expect(await services.factors.store.list(account.id, 'backup-codes')).toHaveLength(1);
      // With codes, the challenge page offers them instead of the administrator.
      const third = new UserAgent(server.issuer);
      const login3 = await third.follow('/account');
      const challenge3 = await third.submit(formAction(login3.body), { login: account.username, password: PASSWORD });
      expect(challenge3.body).toContain('Lost your device?');
      expect(challenge3.body).not.toContain('Your administrator can reset');
    });
  });
}
