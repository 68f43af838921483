/**
 * Session lifetimes per NIST SP 800-63B rev 4 (policy levelMaxAge and
 * levelIdle, defaults: level 2 at most 24 h and 1 h idle, level 3 at most 12 h
 * and 15 min idle), end to end through the real provider with a clock the test
 * moves (test/helpers/clock.ts): single sign-on keeps working while the
 * session is used within the idle limit, and after the idle limit, or after
 * the absolute one however busy the session was, the same request asks for
 * the second factor again (never the password) and then issues a code.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp } from '../helpers/factors.ts';
import { ManualClock, totpCodeAt } from '../helpers/clock.ts';
import { SoftwareAuthenticator, formInput, newSeedKey, optionsInPage, seedWebAuthnCredential } from '../helpers/webauthn.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const MINUTE = 60;
const LEVEL2 = { acr_values: 'urn:twofold:acr:2' };
const LEVEL3 = { acr_values: 'urn:twofold:acr:3' };

/** The action of the form that holds a WebAuthn field. */
function webauthnAction(html: string): string {
  const m = /<form[^>]*action="([^"]+)"[^>]*>\s*(?:(?!<\/form>)[\s\S])*data-webauthn=/.exec(html);
  if (!m) throw new Error('no WebAuthn form on page');
  return m[1]!;
}

for (const kind of DIALECTS) {
  describe(`session lifetimes on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let users = 0;
    // One clock for the provider; each test only moves it forward, so tests do not disturb each other.
    const clock = new ManualClock();

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' }, { clock });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    const gotCode = (hop: Hop) => hop.location !== undefined && hop.location.startsWith(REDIRECT) && new URL(hop.location).searchParams.has('code');

    /** Password and TOTP: a level-2 session. */
    async function level2Session() {
      const account = await createAccount(services.db, services.hasher, { username: `life${kind}${++users}`, password: PASSWORD });
      const secret = await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl(LEVEL2);
      const login = await agent.follow(auth.url);
      const second = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      expect(second.body).toContain('Two-step verification');
      const done = await agent.submit(formAction(second.body), { code: totpCodeAt(secret, clock) });
      expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:2');
      return { agent, secret };
    }

    /** Password and a security key: a level-3 session. */
    async function level3Session() {
      const account = await createAccount(services.db, services.hasher, { username: `life${kind}${++users}`, password: PASSWORD });
      const seed = newSeedKey();
      await seedWebAuthnCredential(services, account.id, seed);
      const key = new SoftwareAuthenticator({ origin: server.issuer });
      key.keys.push({
        credentialId: seed.credentialId,
        privateKey: seed.privateKey,
        publicKey: seed.publicKey,
        userHandle: seed.userHandle.toString('base64url'),
        rpId: 'localhost',
        counter: 0,
        be: false,
      });
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl(LEVEL3);
      const login = await agent.follow(auth.url);
      const second = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      expect(second.body).toContain('Use your security key');
      const done = await agent.submit(webauthnAction(second.body), formInput(key.assert(optionsInPage(second.body))));
      expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:3');
      return { agent, key };
    }

    /** An authorization request with the browser's session: a code, or the page the provider asks the user to fill. */
    async function sso(agent: UserAgent, extra: Record<string, string>) {
      const auth = await rp.authorizationUrl(extra);
      return { auth, hop: await agent.follow(auth.url) };
    }

    test('level 2: used every 59 minutes the session keeps its level; 61 idle minutes later the second factor (not the password) is asked again', async () => {
      const { agent, secret } = await level2Session();
      for (let i = 0; i < 3; i++) {
        clock.advance(59 * MINUTE);
        expect(gotCode((await sso(agent, LEVEL2)).hop)).toBe(true);
      }
      clock.advance(61 * MINUTE);
      const { auth, hop } = await sso(agent, LEVEL2);
      expect(gotCode(hop)).toBe(false);
      expect(hop.body).toContain('Confirm it is you');
      expect(hop.body).toContain('/factor/totp"');
      expect(hop.body).not.toContain('name="password"');
      const done = await agent.submit(formAction(hop.body), { code: totpCodeAt(secret, clock) });
      const claims = (await rp.redeem(done.location!, auth)).claims()!;
      expect(claims.acr).toBe('urn:twofold:acr:2');
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      // The fresh proof counts from now: the session is level 2 again.
      clock.advance(30 * MINUTE);
      expect(gotCode((await sso(agent, LEVEL2)).hop)).toBe(true);
    });

    test('level 2: a session used every 50 minutes still asks for the second factor again once its proof is more than 24 hours old', async () => {
      const { agent, secret } = await level2Session();
      for (let elapsed = 50; elapsed < 24 * 60; elapsed += 50) {
        clock.advance(50 * MINUTE);
        expect(gotCode((await sso(agent, LEVEL2)).hop)).toBe(true);
      }
      clock.advance(50 * MINUTE);
      const { auth, hop } = await sso(agent, LEVEL2);
      expect(hop.body).toContain('Confirm it is you');
      expect(hop.body).toContain('/factor/totp"');
      expect(hop.body).not.toContain('name="password"');
      const done = await agent.submit(formAction(hop.body), { code: totpCodeAt(secret, clock) });
      expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:2');
    });

    test('level 3: 14 idle minutes keep it, 16 ask for the key again; used every 14 minutes it lasts 12 hours, then the key is asked again', async () => {
      const { agent, key } = await level3Session();
      clock.advance(14 * MINUTE);
      expect(gotCode((await sso(agent, LEVEL3)).hop)).toBe(true);
      clock.advance(16 * MINUTE);
      let { auth, hop } = await sso(agent, LEVEL3);
      expect(hop.body).toContain('Use your security key');
      expect(hop.body).not.toContain('name="password"');
      let done = await agent.submit(webauthnAction(hop.body), formInput(key.assert(optionsInPage(hop.body))));
      expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:3');

      for (let elapsed = 14; elapsed < 12 * 60; elapsed += 14) {
        clock.advance(14 * MINUTE);
        expect(gotCode((await sso(agent, LEVEL3)).hop)).toBe(true);
      }
      clock.advance(14 * MINUTE);
      ({ auth, hop } = await sso(agent, LEVEL3));
      expect(hop.body).toContain('Use your security key');
      expect(hop.body).not.toContain('name="password"');
      done = await agent.submit(webauthnAction(hop.body), formInput(key.assert(optionsInPage(hop.body))));
      expect((await rp.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:3');
    });

    test('the limits are the global policy’s: a longer idle time set there is honoured', async () => {
      const { savePolicy, GLOBAL } = await import('../../src/policy/store.ts');
      const { agent } = await level2Session();
      await savePolicy(services.db, GLOBAL, { mfa: 'optional', levelIdle: { '2': 3 * 3600 } }, 'test');
      try {
        clock.advance(2 * 3600);
        expect(gotCode((await sso(agent, LEVEL2)).hop)).toBe(true);
        clock.advance(3 * 3600 + MINUTE);
        expect((await sso(agent, LEVEL2)).hop.body).toContain('/factor/totp"');
      } finally {
        await savePolicy(services.db, GLOBAL, { mfa: 'optional' }, 'test');
      }
    });
  });
}
