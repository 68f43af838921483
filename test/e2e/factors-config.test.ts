/**
 * FACTORS end to end: a provider that runs one built-in factor, or a passkey
 * alone, still boots and signs people in, and its pages list only what runs.
 * A credential of a factor left out stays stored but counts for nothing; a
 * policy that allows only factors that are not on gets the app an
 * `unmet_authentication_requirements` answer, never a page nobody can pass.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { SoftwareAuthenticator, formInput, optionsInPage } from '../helpers/webauthn.ts';
import { totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { groupScope, savePolicy } from '../../src/policy/store.ts';
import { BUILT_IN_FACTORS } from '../../factors/registry.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const sorted = (v: unknown) => [...(v as string[])].sort();

for (const kind of DIALECTS) {
  describe(`FACTORS on ${kind}`, () => {
    let database: TestDatabase;
    let totpOnly: TestServer;
    let passkeyOnly: TestServer;
    let services: Services;
    let rpTotp: RelyingParty;
    let rpPasskey: RelyingParty;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      totpOnly = await startTestServer(database, { MFA: 'required', FACTORS: 'totp' });
      passkeyOnly = await startTestServer(database, { MFA: 'required', FACTORS: 'passkey' });
      services = totpOnly.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rpTotp = await relyingParty(totpOnly.issuer, app.clientId, app.clientSecret, REDIRECT);
      rpPasskey = await relyingParty(passkeyOnly.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await totpOnly?.close();
      await passkeyOnly?.close();
      await database?.close();
    });

    const newUser = () => createAccount(services.db, services.hasher, { username: `fc${kind}${++users}`, password: PASSWORD });
    /** The names of the built-in factors other than these, as pages would show them. */
    const otherLabels = (...ids: string[]) => BUILT_IN_FACTORS.filter((f) => !ids.includes(f.id)).map((f) => services.catalogue.text('en', `${f.id}.label`));

    test('FACTORS=totp: the pages offer only TOTP, enrolment and sign-in reach level 2 with it', async () => {
      expect(totpOnly.opened.services.factors.registry.ids()).toEqual(['totp']);
      const account = await newUser();
      const agent = new UserAgent(totpOnly.issuer);
      const auth = await rpTotp.authorizationUrl();
      const login = await agent.follow(auth.url);
      // No passkey on the login page: the factor does not run.
      expect(login.body).not.toContain('Sign in with a passkey');
      expect(login.body).toContain('autocomplete="username"');
      const setup = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      expect(setup.body).toContain('Set up two-step verification');
      for (const label of otherLabels('totp')) expect({ label, shown: setup.body.includes(label) }).toEqual({ label, shown: false });
      const key = /<code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!.replace(/\s/g, '');
      // No backup codes to save afterwards: that factor does not run either.
      const done = await agent.submit(formAction(setup.body), { code: totpCode(key), label: 'Phone' });
      expect(done.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      const first = (await rpTotp.redeem(done.location!, auth)).claims()!;
      expect(first.acr).toBe('urn:twofold:acr:2');
      expect(sorted(first.amr)).toEqual(['mfa', 'otp', 'pwd']);

      // Signing in again: the challenge, with no other factor (nor backup codes) to fall back on.
      await new Promise((r) => setTimeout(r, 1100));
      const later = new UserAgent(totpOnly.issuer);
      const again = await rpTotp.authorizationUrl();
      const challenge = await later.submit(formAction((await later.follow(again.url)).body), { login: account.username, password: PASSWORD });
      expect(challenge.body).toContain('Two-step verification');
      for (const label of otherLabels('totp')) expect({ label, shown: challenge.body.includes(label) }).toEqual({ label, shown: false });
      const signedIn = await later.submit(formAction(challenge.body), { code: totpCode(key, 1) });
      const claims = (await rpTotp.redeem(signedIn.location!, again)).claims()!;
      expect(claims.sub).toBe(account.id);
      expect(sorted(claims.amr)).toEqual(['mfa', 'otp', 'pwd']);
    });

    test('a credential of a factor left out stays stored and counts for nothing: the account enrols one that runs', async () => {
      const account = await newUser();
      const key = new SoftwareAuthenticator({ origin: passkeyOnly.issuer });
      // A passkey registered where passkeys run …
      const agent = new UserAgent(passkeyOnly.issuer);
      const auth = await rpPasskey.authorizationUrl();
      const setup = await agent.submit(formAction((await agent.follow(auth.url)).body), { login: account.username, password: PASSWORD });
      const done = await agent.submit(formAction(setup.body), formInput(key.register(optionsInPage(setup.body, 'register')), 'My key'));
      expect(sorted((await rpPasskey.redeem(done.location!, auth)).claims()!.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
      // … is no second factor where only TOTP runs.
      const elsewhere = new UserAgent(totpOnly.issuer);
      const next = await elsewhere.submit(formAction((await elsewhere.follow((await rpTotp.authorizationUrl()).url)).body), {
        login: account.username,
        password: PASSWORD,
      });
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).toContain('<code class="key">');
      expect((await services.factors.store.list(account.id)).map((c) => c.factorId)).toEqual(['passkey']);
    });

    test('FACTORS=passkey: the passkey alone signs in from the login page, level 3', async () => {
      expect(passkeyOnly.opened.services.factors.registry.ids()).toEqual(['passkey']);
      const account = await newUser();
      const phone = new SoftwareAuthenticator({ origin: passkeyOnly.issuer, be: true, attachment: 'platform' });
      const agent = new UserAgent(passkeyOnly.issuer);
      const auth = await rpPasskey.authorizationUrl();
      const setup = await agent.submit(formAction((await agent.follow(auth.url)).body), { login: account.username, password: PASSWORD });
      for (const label of otherLabels('passkey')) expect({ label, shown: setup.body.includes(label) }).toEqual({ label, shown: false });
      const done = await agent.submit(formAction(setup.body), formInput(phone.register(optionsInPage(setup.body, 'register')), 'Phone'));
      await rpPasskey.redeem(done.location!, auth);

      const fresh = new UserAgent(passkeyOnly.issuer);
      const again = await rpPasskey.authorizationUrl();
      const login = await fresh.follow(again.url);
      expect(login.body).toContain('Sign in with a passkey');
      const form = /<form[^>]*action="([^"]+)"[^>]*>\s*(?:(?!<\/form>)[\s\S])*data-webauthn=/.exec(login.body)![1]!;
      const signedIn = await fresh.submit(form, formInput(phone.assert(optionsInPage(login.body))));
      const claims = (await rpPasskey.redeem(signedIn.location!, again)).claims()!;
      expect(claims.sub).toBe(account.id);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['mfa', 'swk', 'user']);
    });

    test('a policy that allows only factors not on: the app is told the requirement cannot be met', async () => {
      const account = await newUser();
      const group = await createGroup(services.db, `keys-only-${kind}`);
      await savePolicy(services.db, groupScope(group.id), { level: 2, factors: ['webauthn'] }, 'admin:test');
      await addMember(services.db, group.id, account.id);
      const agent = new UserAgent(totpOnly.issuer);
      const auth = await rpTotp.authorizationUrl();
      const hop = await agent.submit(formAction((await agent.follow(auth.url)).body), { login: account.username, password: PASSWORD });
      const back = new URL(hop.location!);
      expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
      expect(back.searchParams.get('error')).toBe('unmet_authentication_requirements');
      expect(back.searchParams.get('state')).toBe(auth.state);
    });
  });
}
