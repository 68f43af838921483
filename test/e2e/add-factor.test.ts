/**
 * Adding a sign-in method later, at the app's request (`twofold_enroll`), over
 * HTTP on both databases, with openid-client as the app, a scripted user agent
 * and a software authenticator:
 *
 * - a TOTP user adds a security key: password, TOTP, the key, back to the app;
 *   the next sign-in offers either;
 * - signed in moments ago (SSO): straight to the new method; cancelling
 *   returns access_denied and stores nothing;
 * - a remembered device is not enough: an existing factor is proved first;
 * - a user who lost their phone proves a backup code and enrols a new authenticator;
 * - a session older than ADD_FACTOR_MAX_AUTH_AGE signs in again first;
 * - an unknown factor is refused at the authorization endpoint, a factor the
 *   app's policy forbids with access_denied.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { SoftwareAuthenticator, formInput, optionsInPage } from '../helpers/webauthn.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { createAdapter } from '../../src/oidc/adapter.ts';
import { listAudit } from '../../src/security/audit.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';

const title = (html: string) => /<title>([^<]*)<\/title>/.exec(html)?.[1];
const uidOf = (hop: Hop) => /\/interaction\/([^/"?]+)/.exec(hop.body)![1]!;

for (const kind of DIALECTS) {
  describe(`adding a sign-in method at the app's request on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let totpOnly: RelyingParty;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' });
      services = server.opened.services;
      await savePolicy(services.db, GLOBAL, { mfa: 'optional', trustedDevices: { enabled: true, days: 30 } }, 'test');
      const app = await createClient(services.db, services.sealer, { name: 'Notes', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      const strict = await createClient(services.db, services.sealer, { name: 'Ledger', redirectUris: [REDIRECT], firstParty: true });
      await services.db
        .updateTable('clients')
        .set({ policy: JSON.stringify({ factors: ['totp'] }) })
        .where('client_id', '=', strict.clientId)
        .execute();
      totpOnly = await relyingParty(server.issuer, strict.clientId, strict.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<{ account: Account; secret: string }> {
      const account = await createAccount(services.db, services.hasher, { username: `add${kind}${++users}`, password: PASSWORD });
      return { account, secret: await enrolTotp(services, account.id) };
    }

    async function password(agent: UserAgent, account: Account, extra: Record<string, string>, app = rp) {
      const auth = await app.authorizationUrl(extra);
      const login = await agent.follow(auth.url);
      expect(title(login.body)).toMatch(/^Sign in/);
      const next = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      return { auth, next };
    }

    async function claimsOf(hop: Hop, auth: Awaited<ReturnType<RelyingParty['authorizationUrl']>>, app = rp) {
      expect(hop.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      return (await app.redeem(hop.location!, auth)).claims()!;
    }

    /** Registers a key on the "Add security key" page; returns the page after it (backup codes, or the app). */
    async function registerKey(agent: UserAgent, page: Hop, key: SoftwareAuthenticator, label: string) {
      expect(title(page.body)).toBe('Add Security key · Twofold');
      expect(page.body).toContain('Notes asked you to add a sign-in method');
      expect(page.body).not.toContain('Skip for now');
      return agent.submit(formAction(page.body), formInput(key.register(optionsInPage(page.body, 'register')), label));
    }

    test('a TOTP user adds a security key: password, TOTP, the key, back to the app; next time either works', async () => {
      const { account, secret } = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, account, { twofold_enroll: 'webauthn' });
      // The policy's own step comes first: this account proves TOTP at every sign-in.
      expect(title(next.body)).toBe('Two-step verification · Twofold');
      const adding = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      const codes = await registerKey(agent, adding, key, 'Desk key');
      // No backup codes yet: offered once, as after any first enrolment.
      expect(title(codes.body)).toBe('Save your backup codes · Twofold');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      const claims = await claimsOf(done, auth);
      expect(claims.sub).toBe(account.id);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));

      const keys = await services.factors.store.list(account.id, 'webauthn');
      expect(keys.map((k) => k.label)).toEqual(['Desk key']);
      const audit = (await listAudit(services.db, { accountId: account.id })).map((e) => e.type);
      expect(audit).toEqual(expect.arrayContaining(['factor.enrolled']));

      // A fresh browser: the key just added is offered first, the authenticator app one click away.
      const later = new UserAgent(server.issuer);
      const again = await password(later, account, {});
      expect(again.next.body).toContain('Use your security key (Desk key)');
      expect(again.next.body).toContain('data-webauthn="authenticate"');
      expect(again.next.body).toContain('Use Authenticator app instead');
      expect(again.next.body).not.toContain('asked you to add');
    });

    test('signed in moments ago: straight to the new method; cancelling returns access_denied and stores nothing', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, account, {});
      await claimsOf(await agent.submit(formAction(first.next.body), { code: totpCode(secret) }), first.auth);

      // The app's "Add a passkey" button: no password, no TOTP again, the page to add one.
      const auth = await rp.authorizationUrl({ twofold_enroll: 'passkey' });
      const page = await agent.follow(auth.url);
      expect(title(page.body)).toBe('Add Passkey · Twofold');
      expect(page.body).not.toContain('name="password"');
      const cancelled = await agent.follow(`${server.issuer}/interaction/${uidOf(page)}/abort`);
      const url = new URL(cancelled.location!);
      expect(url.searchParams.get('error')).toBe('access_denied');
      expect(await services.factors.store.list(account.id, 'passkey')).toEqual([]);
      // The user is still signed in: the app's next plain request needs nothing.
      const plain = await rp.authorizationUrl();
      const hop = await agent.follow(plain.url);
      expect(hop.location).toMatch(/\?code=/);
    });

    test('a remembered device is not enough: the user proves TOTP before adding, and the key is added', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, account, {});
      await claimsOf(await agent.submit(formAction(first.next.body), { code: totpCode(secret), trust: 'yes' }), first.auth);

      // Signed in again on the trusted device: the password alone would do for the app, not for adding a key.
      const { auth, next } = await password(agent, account, { twofold_enroll: 'webauthn', prompt: 'login' });
      expect(title(next.body)).toBe('Confirm it is you · Twofold');
      expect(next.body).toContain('Before you add a sign-in method');
      expect(next.body).not.toContain('name="trust"');
      // The key's page cannot be reached by hand before the proof.
      const early = await agent.request(`${server.issuer}/interaction/${uidOf(next)}/enroll/webauthn`, { form: { response: '{}', label: 'x' } });
      expect(early.status).toBe(302);
      const adding = await agent.submit(formAction(next.body), { code: totpCode(secret, 1) });
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      const codes = await registerKey(agent, adding, key, 'Travel key');
      const claims = await claimsOf(await agent.submit(formAction(codes.body), { saved: 'yes' }), auth);
      expect(claims.amr).toEqual(expect.arrayContaining(['otp']));
      expect((await services.factors.store.list(account.id, 'webauthn')).map((k) => k.label)).toEqual(['Travel key']);
    });

    test('a user who lost their phone proves a backup code and enrols a new authenticator app', async () => {
      const { account } = await newUser();
      await enrolBackupCodes(services, account.id, ['ABCD-EFGH-JKLM-NPQR', 'STUV-WXYZ-ABCD-EFGH']);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, account, { twofold_enroll: 'totp' });
      expect(next.body).toContain('Lost your device? Use your');
      const backup = await agent.follow(`${server.issuer}/interaction/${uidOf(next)}?factor=backup-codes`);
      const notice = await agent.submit(formAction(backup.body), { code: 'ABCD-EFGH-JKLM-NPQR' });
      // One backup code left: said before anything else.
      expect(title(notice.body)).toBe('Before you continue · Twofold');
      const enrol = await agent.submit(formAction(notice.body), {});
      expect(title(enrol.body)).toBe('Add Authenticator app · Twofold');
      const newSecret = /<code class="key">([^<]+)<\/code>/.exec(enrol.body)![1]!.replace(/\s+/g, '');
      const done = await agent.submit(formAction(enrol.body), { label: 'New phone', code: totpCode(newSecret) });
      const claims = await claimsOf(done, auth);
      expect(claims.sub).toBe(account.id);
      expect((await services.factors.store.list(account.id, 'totp')).map((c) => c.label).sort()).toEqual(['New phone', 'Test phone']);
    });

    test('a new set of backup codes (twofold_enroll=backup-codes) after a fresh proof: the old set stops working at once, the new one works', async () => {
      const { account, secret } = await newUser();
      const old = ['ABCD-EFGH-JKMN-PQRS', 'STVW-XYZ0-1234-5678', '9ABC-DEFG-HJKM-NPQR'];
      const oldSet = await enrolBackupCodes(services, account.id, old);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, account, { twofold_enroll: 'backup-codes' });
      // The password alone makes no new set: a factor is proved first.
      expect(title(next.body)).toBe('Two-step verification · Twofold');
      const page = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      expect(title(page.body)).toBe('Save your backup codes · Twofold');
      const fresh = [...page.body.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]!);
      expect(fresh).toHaveLength(10);
      for (const code of old) expect(fresh).not.toContain(code);
      expect(page.body).toMatch(/<button type="submit" class="primary">Continue<\/button>/);
      expect(page.body).toContain('Notes asked you to add a sign-in method. This replaces your current Backup codes; your other methods keep working.');
      const done = await agent.submit(formAction(page.body), { saved: 'yes' });
      await claimsOf(done, auth);
      // One set: the old credential and its codes are gone, the new one has all ten.
      const sets = await services.factors.store.list(account.id, 'backup-codes');
      expect(sets).toHaveLength(1);
      expect(sets[0]!.id).not.toBe(oldSet);
      expect(await services.factors.store.remainingOneTimeCodes(sets[0]!.id)).toBe(10);
      expect(await services.db.selectFrom('one_time_codes').select('code_hash').where('credential_id', '=', oldSet).execute()).toEqual([]);

      // Signing in later: an old code is refused, a new one works.
      const later = new UserAgent(server.issuer);
      const again = await password(later, account, {});
      const backup = await later.follow(`${server.issuer}/interaction/${uidOf(again.next)}?factor=backup-codes`);
      expect(backup.body).toContain('10 codes left');
      const refused = await later.submit(formAction(backup.body), { code: old[0]! });
      expect(refused.status).toBe(401);
      const signedIn = await later.submit(formAction(refused.body), { code: fresh[3]! });
      const claims = await claimsOf(signedIn, again.auth);
      expect(claims.sub).toBe(account.id);
      expect(await services.factors.store.remainingOneTimeCodes(sets[0]!.id)).toBe(9);
    });

    test('a session older than ADD_FACTOR_MAX_AUTH_AGE signs in again before anything is added', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const first = await password(agent, account, {});
      await claimsOf(await agent.submit(formAction(first.next.body), { code: totpCode(secret) }), first.auth);
      // Age the stored session (as if the user signed in ten minutes ago).
      const Session = createAdapter(services.db, services.sealer, services.codeHasher);
      const sessions = new Session('Session');
      const id = agent.cookies.get('twofold.session')!;
      const stored = (await sessions.find(id))!;
      await sessions.upsert(id, { ...stored, loginTs: (stored.loginTs as number) - 600 }, 3600);

      const auth = await rp.authorizationUrl({ twofold_enroll: 'webauthn' });
      const login = await agent.follow(auth.url);
      expect(title(login.body)).toMatch(/^Sign in/);
      const next = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      expect(title(next.body)).toBe('Two-step verification · Twofold');
      const adding = await agent.submit(formAction(next.body), { code: totpCode(secret, 1) });
      expect(title(adding.body)).toBe('Add Security key · Twofold');
      void auth;
    });

    test('an unknown factor is refused at the authorization endpoint', async () => {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl({ twofold_enroll: 'carrier-pigeon' });
      const hop = await agent.follow(auth.url);
      const url = new URL(hop.location!);
      expect(url.searchParams.get('error')).toBe('invalid_request');
      expect(url.searchParams.get('error_description')).toMatch(/^twofold_enroll must be "any" or one of: totp, webauthn/);
    });

    test('a factor the app’s policy forbids ends the request with access_denied, after the sign-in', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, account, { twofold_enroll: 'webauthn' }, totpOnly);
      const hop = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      const url = new URL(hop.location!);
      expect(url.searchParams.get('error')).toBe('access_denied');
      expect(url.searchParams.get('error_description')).toBe('the policy does not allow webauthn for this application');
      expect(await services.factors.store.list(account.id, 'webauthn')).toEqual([]);
    });
  });
}
