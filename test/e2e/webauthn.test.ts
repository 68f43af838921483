/**
 * Security keys and passkeys over HTTP on both databases, with openid-client
 * as the app, a scripted user agent as the browser and a software
 * authenticator answering the options the pages carry (the Chromium test,
 * browser-webauthn.test.ts, runs the same pages with a real browser):
 * enrolment inside the sign-in and password + key, a key registered as a
 * second factor signing in as a passkey, a passkey as the second step, an
 * app whose policy does not allow passkeys, an unknown credential, and an
 * answer sent to the wrong interaction.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { SoftwareAuthenticator, formInput, optionsInPage } from '../helpers/webauthn.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { groupScope, savePolicy } from '../../src/policy/store.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';

/** The action of the form that holds a WebAuthn field (the login page also has the password form). */
function webauthnAction(html: string): string {
  const m = /<form[^>]*action="([^"]+)"[^>]*>\s*(?:(?!<\/form>)[\s\S])*data-webauthn=/.exec(html);
  if (!m) throw new Error('no WebAuthn form on page');
  return m[1]!;
}

for (const kind of DIALECTS) {
  describe(`security keys and passkeys over HTTP on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let rpNoPasskeys: RelyingParty;
    let noPasskeysClientId: string;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'required' });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      // An app whose policy counts only authenticator apps: a passkey may not sign anyone in to it.
      const strict = await createClient(services.db, services.sealer, { name: 'totp only', redirectUris: [REDIRECT], firstParty: true });
      noPasskeysClientId = strict.clientId;
      await services.db
        .updateTable('clients')
        .set({ policy: JSON.stringify({ factors: ['totp'] }) })
        .where('client_id', '=', strict.clientId)
        .execute();
      rpNoPasskeys = await relyingParty(server.issuer, strict.clientId, strict.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<Account> {
      return createAccount(services.db, services.hasher, { username: `wa${kind}${++users}`, password: PASSWORD });
    }

    async function password(agent: UserAgent, account: Account, app = rp, extra: Record<string, string> = {}) {
      const auth = await app.authorizationUrl(extra);
      const login = await agent.follow(auth.url);
      const next = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      return { auth, next };
    }

    async function tokens(hop: Hop, auth: Awaited<ReturnType<RelyingParty['authorizationUrl']>>, app = rp) {
      expect(hop.location).toMatch(/^http:\/\/app\.example\.test\/callback\?/);
      return (await app.redeem(hop.location!, auth)).claims()!;
    }

    const sorted = (v: unknown) => [...(v as string[])].sort();

    /** Password, then enrol a key at the enrolment step (MFA=required), then confirm the backup codes. */
    async function enrolKey(agent: UserAgent, account: Account, authenticator: SoftwareAuthenticator, factor: 'webauthn' | 'passkey' = 'webauthn') {
      const { auth, next } = await password(agent, account);
      expect(next.body).toContain('Set up two-step verification');
      const page = await agent.follow(`${server.issuer}/interaction/${/\/interaction\/([^/"?]+)/.exec(next.body)![1]}?factor=${factor}`);
      const answer = authenticator.register(optionsInPage(page.body, 'register'));
      const codes = await agent.submit(formAction(page.body), formInput(answer, 'My key'));
      expect(codes.body).toContain('Save your backup codes');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      return { auth, done };
    }

    test('a key enrolled at sign-in; later, password + key: level 3, amr pwd hwk user mfa', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      const agent = new UserAgent(server.issuer);
      const first = await enrolKey(agent, account, key);
      expect(sorted((await tokens(first.done, first.auth)).amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);

      const later = new UserAgent(server.issuer);
      const { auth, next } = await password(later, account);
      expect(next.body).toContain('Use your security key (My key)');
      const done = await later.submit(webauthnAction(next.body), formInput(key.assert(optionsInPage(next.body))));
      const claims = await tokens(done, auth);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
    });

    test('step-up from level 2 to 3: a TOTP session asked for phishing resistance proves only the key', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      const agent = new UserAgent(server.issuer);
      await enrolKey(agent, account, key);
      const secret = await enrolTotp(services, account.id);
      // A fresh browser: password + TOTP (chosen explicitly) is level 2.
      const browser = new UserAgent(server.issuer);
      const { auth, next } = await password(browser, account);
      const uid = /\/interaction\/([^/"?]+)/.exec(next.body)![1]!;
      const totpPage = await browser.follow(`${server.issuer}/interaction/${uid}?factor=totp`);
      const two = await tokens(await browser.submit(formAction(totpPage.body), { code: totpCode(secret) }), auth);
      expect(two.acr).toBe('urn:twofold:acr:2');
      await new Promise((r) => setTimeout(r, 1100));
      // The app needs phishing resistance: no password, only the key.
      const up = await rp.authorizationUrl({ acr_values: 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant' });
      const page = await browser.follow(up.url);
      expect(page.body).not.toContain('name="password"');
      expect(page.body).not.toContain('name="code"');
      const done = await browser.submit(webauthnAction(page.body), formInput(key.assert(optionsInPage(page.body))));
      const three = await tokens(done, up);
      expect(three.acr).toBe('http://schemas.openid.net/pape/policies/2007/06/phishing-resistant');
      expect(sorted(three.amr)).toEqual(expect.arrayContaining(['hwk', 'mfa', 'otp', 'pwd']));
      expect(three.auth_time!).toBeGreaterThan(two.auth_time!);
    });

    test('a key registered as a second factor also signs in as a passkey, alone', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      await enrolKey(new UserAgent(server.issuer), account, key, 'webauthn');

      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const login = await agent.follow(auth.url);
      expect(login.body).toContain('Sign in with a passkey');
      expect(login.body).toContain('autocomplete="username webauthn"');
      const options = optionsInPage(login.body);
      expect(options).toMatchObject({ allowCredentials: [], userVerification: 'required', rpId: 'localhost' });
      const done = await agent.submit(webauthnAction(login.body), formInput(key.assert(options)));
      const claims = await tokens(done, auth);
      expect(claims.sub).toBe(account.id);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'user']);
    });

    test('a passkey serves as the second step after a password', async () => {
      const account = await newUser();
      const phone = new SoftwareAuthenticator({ origin: server.issuer, be: true, attachment: 'platform' });
      await enrolKey(new UserAgent(server.issuer), account, phone, 'passkey');
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, account);
      expect(next.body).toContain('Use your passkey (My key)');
      const done = await agent.submit(webauthnAction(next.body), formInput(phone.assert(optionsInPage(next.body))));
      expect(sorted((await tokens(done, auth)).amr)).toEqual(['mfa', 'pwd', 'swk', 'user']);
    });

    test('an app whose policy does not count passkeys: no passkey button, and a passkey answer signs no one in', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      await enrolKey(new UserAgent(server.issuer), account, key);
      const agent = new UserAgent(server.issuer);
      const auth = await rpNoPasskeys.authorizationUrl();
      const login = await agent.follow(auth.url);
      expect(login.body).not.toContain('Sign in with a passkey');
      expect(login.body).toContain('autocomplete="username"');
      // An answer made for the general login page, posted to this interaction anyway.
      const elsewhere = await new UserAgent(server.issuer).follow((await rp.authorizationUrl()).url);
      const uid = /\/interaction\/([^/"?]+)/.exec(login.body)![1];
      const refused = await agent.request(`${server.issuer}/interaction/${uid}/first-factor/passkey`, {
        form: formInput(key.assert(optionsInPage(elsewhere.body))),
      });
      expect([401, 403]).toContain(refused.status);
      expect(refused.body).toContain('role="alert"');
      expect(refused.location).toBeUndefined();
      expect((await listAudit(services.db, { accountId: account.id, type: 'factor.used' })).filter((e) => e.client_id === noPasskeysClientId)).toEqual([]);
    });

    test('a group whose policy does not count passkeys: its member’s passkey is refused after it names the account', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      await enrolKey(new UserAgent(server.issuer), account, key);
      const group = await createGroup(services.db, `nopasskeys${users}`);
      await addMember(services.db, group.id, account.id);
      await savePolicy(services.db, groupScope(group.id), { factors: ['totp', 'webauthn'] }, 'admin:test');
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow((await rp.authorizationUrl()).url);
      const refused = await agent.submit(webauthnAction(login.body), formInput(key.assert(optionsInPage(login.body))));
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('Signing in with Passkey is not allowed here. Use your password.');
      expect(refused.location).toBeUndefined();
      expect((await listAudit(services.db, { accountId: account.id })).map((e) => e.type)).toContain('login.factor_not_allowed');
      // The password and the key still work for this member.
      const { auth, next } = await password(agent, account);
      const done = await agent.submit(webauthnAction(next.body), formInput(key.assert(optionsInPage(next.body))));
      expect(sorted((await tokens(done, auth)).amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
    });

    test('an unknown credential, or an answer for another interaction, is refused on the login page', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      await enrolKey(new UserAgent(server.issuer), account, key);
      const stranger = new SoftwareAuthenticator({ origin: server.issuer });
      stranger.register({ ...optionsInPage((await enrolPage()).body, 'register') });

      const agent = new UserAgent(server.issuer);
      const login = await agent.follow((await rp.authorizationUrl()).url);
      const unknown = await agent.submit(webauthnAction(login.body), formInput(stranger.assert(optionsInPage(login.body))));
      expect(unknown.status).toBe(401);
      expect(unknown.body).toContain('did not work');

      // Signed for another interaction's challenge (this page's challenge was replaced by the refusal's new page).
      const other = await new UserAgent(server.issuer).follow((await rp.authorizationUrl()).url);
      const crossed = await agent.submit(webauthnAction(unknown.body), formInput(key.assert(optionsInPage(other.body))));
      expect(crossed.status).toBe(401);
      const failures = (await listAudit(services.db, { type: 'factor.failed', limit: 100 })).map((e) => e.details);
      expect(failures).toEqual(expect.arrayContaining([expect.objectContaining({ factor: 'passkey', reason: 'unknown_credential' })]));
      expect(await listAudit(services.db, { accountId: account.id, type: 'factor.failed' })).toEqual([
        expect.objectContaining({ details: expect.objectContaining({ factor: 'passkey', reason: 'wrong' }) }),
      ]);
    });

    test('a correctly signed answer whose backup-eligible flag flipped is refused and audited as factor.suspected_clone', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      await enrolKey(new UserAgent(server.issuer), account, key);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, account);
      // Registered device-bound (BE 0); this answer says it may be synced (BE 1).
      const flipped = await agent.submit(webauthnAction(next.body), formInput(key.assert(optionsInPage(next.body), { be: true, bs: true })));
      expect(flipped.status).toBe(401);
      expect(flipped.location).toBeUndefined();
      expect(flipped.body).toContain('may have been copied');
      const [clone] = await listAudit(services.db, { accountId: account.id, type: 'factor.suspected_clone' });
      expect(clone).toMatchObject({ details: { factor: 'webauthn', credential: (await services.factors.store.list(account.id, 'webauthn'))[0]!.id } });
      // The same key answering truthfully still signs in.
      const done = await agent.submit(webauthnAction(flipped.body), formInput(key.assert(optionsInPage(flipped.body))));
      expect((await tokens(done, auth)).acr).toBe('urn:twofold:acr:3');
    });

    /** An enrolment page of a throwaway account, for registration options to make a credential the provider never stored. */
    async function enrolPage(): Promise<Hop> {
      const account = await newUser();
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, account);
      return agent.follow(`${server.issuer}/interaction/${/\/interaction\/([^/"?]+)/.exec(next.body)![1]}?factor=webauthn`);
    }
  });
}
