/**
 * A lockout the attacker cannot turn on the owner, over HTTP, as an attacker
 * would run it: from many client addresses at once (the provider behind a
 * trusted proxy, X-Forwarded-For), against an owner whose browser has signed
 * in before (it carries the known-browser cookie, nothing else):
 *
 * - finding 6: 200 parallel wrong passwords by username and by email are one
 *   account's 20 free failures; the owner's known browser still signs in at
 *   once, an unknown browser is throttled; with the brakes loosened, unknown
 *   browsers stop at their share of the daily cap and everything at 100;
 * - finding 8: forged passkey assertions naming the owner's credential lock
 *   nothing of the account (password + code, password + backup code, and the
 *   passkey itself from the known browser all still sign in);
 * - finding 9: with the password, wrong authenticator codes up to the daily
 *   cap lock only that factor for unknown browsers: the backup codes and a
 *   passkey still work, and the known browser's authenticator too;
 * - an admin clears a lock (`twofold user unlock`), audited with the actor.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { ProxiedAgent, addressOf, enrolPasskey, uidOf, webauthnAction, wrongCode } from '../helpers/lockout.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { savePolicy } from '../../src/policy/store.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const BACKUP = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
/** Second-factor brakes loosened so that the daily caps are what stops a flood at once (with the defaults it takes a day of waits). */
const LOOSE_SECOND_FACTOR = { perAccountBurst: { points: 1000, windowSeconds: 300 }, perAddress: { points: 1000, windowSeconds: 900 } };
/** The same for passwords, known browsers' brakes included. */
const LOOSE_PASSWORD = { passwordUnknownBrowsers: { points: 1000, windowSeconds: 900 }, passwordKnownBrowser: { points: 1000, windowSeconds: 900 } };
/** The default free failures, but waits after them longer than any test run, so that a slow machine never sees one end mid-test. */
const LONG_WAITS = {
  perAccountBurst: { points: 5, windowSeconds: 300, delaySeconds: 3600, maxDelaySeconds: 3600 },
  passwordUnknownBrowsers: { points: 20, windowSeconds: 900, delaySeconds: 3600, maxDelaySeconds: 3600 },
};
let users = 0;

for (const kind of DIALECTS) {
  describe(`lockouts an attacker cannot turn on the owner, over HTTP on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    const twofold = cliRunner(() => services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', TRUST_PROXY: 'true' });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    let policyChanged = false;
    afterEach(async () => {
      if (policyChanged) await savePolicy(services.db, 'global', {}, 'test');
      policyChanged = false;
    });
    async function setPolicy(throttle: Record<string, unknown>) {
      policyChanged = true;
      await savePolicy(services.db, 'global', { throttle }, 'test');
    }

    async function newUser(factors: { totp?: boolean; backup?: boolean; passkey?: boolean } = {}) {
      const n = ++users;
      const username = `owner${n}`;
      const email = `owner${n}@example.test`;
      const account = await createAccount(services.db, services.hasher, { username, email, password: PASSWORD });
      const secret = factors.totp ? await enrolTotp(services, account.id) : undefined;
      if (factors.backup) await enrolBackupCodes(services, account.id, BACKUP);
      const passkey = factors.passkey ? await enrolPasskey(services, account.id) : undefined;
      return { account, username, email, secret: secret!, passkey: passkey! };
    }

    const newBrowser = () => new ProxiedAgent(server.issuer);
    const signedIn = (hop: Hop) => hop.location?.startsWith(`${REDIRECT}?code=`) === true;
    /** The login page of a fresh sign-in. */
    const loginPage = async (agent: ProxiedAgent) => agent.follow((await rp.authorizationUrl()).url);
    const password = async (agent: ProxiedAgent, login: string, pass = PASSWORD) => {
      const page = await loginPage(agent);
      return agent.submit(formAction(page.body), { login, password: pass });
    };
    /** Password, then the second step with this factor (`code`), as far as it goes. */
    const twoSteps = async (agent: ProxiedAgent, login: string, factor: string, code: string) => {
      const next = await password(agent, login);
      if (next.status !== 200 || !next.body.includes('/factor/')) return next;
      return agent.submit(`/interaction/${uidOf(next.body)}/factor/${factor}`, { code });
    };
    /** `n` answers at once, each from its own client address. */
    const flood = (agent: ProxiedAgent, action: string, n: number, form: (i: number) => Record<string, string>) =>
      Promise.all(Array.from({ length: n }, (_, i) => agent.request(action, { form: form(i), headers: { 'x-forwarded-for': addressOf(i) } })));
    const statuses = (hops: Hop[]) => hops.reduce<Record<number, number>>((all, h) => ({ ...all, [h.status]: (all[h.status] ?? 0) + 1 }), {});

    test('finding 6: 200 parallel wrong passwords from 200 addresses, by username and by email: 20 checked, the owner’s known browser signs in at once, an unknown one waits', async () => {
      await setPolicy(LONG_WAITS);
      const { username, email } = await newUser();
      const owner = newBrowser();
      expect(signedIn(await password(owner, username))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const page = await loginPage(attacker);
      const before = services.hasher.work.verifications;
      const hops = await flood(attacker, formAction(page.body), 200, (i) => ({ login: i % 2 ? username : email.toUpperCase(), password: `guess ${i}` }));
      // One account, one counter, whichever login is typed: 20 free failures, the rest refused unchecked.
      expect(statuses(hops)).toEqual({ 401: 20, 429: 180 });
      expect(services.hasher.work.verifications - before).toBe(20);

      const done = await password(owner, username);
      expect(signedIn(done)).toBe(true);
      expect(owner.known).toBe(true);
      const stranger = await password(newBrowser(), email);
      expect(stranger.status).toBe(429);
      expect(Number(stranger.headers.get('retry-after'))).toBeGreaterThan(3000);
      expect(stranger.body).toContain('Too many attempts');
    }, 120_000);

    test('finding 6: the cap over every browser: unknown ones stop at their 50, the rest is the known browsers’, 100 in all, then an admin unlocks', async () => {
      await setPolicy(LOOSE_PASSWORD);
      const { account, username } = await newUser();
      const owner = newBrowser();
      expect(signedIn(await password(owner, username))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const before = services.hasher.work.verifications;
      const flooded = await flood(attacker, formAction((await loginPage(attacker)).body), 200, (i) => ({ login: username, password: `guess ${i}` }));
      expect(statuses(flooded)).toEqual({ 401: 50, 429: 150 });
      expect(Number(flooded.find((h) => h.status === 429)!.headers.get('retry-after'))).toBeGreaterThan(86000);
      expect(signedIn(await password(owner, username))).toBe(true);
      owner.forgetSession();

      // The known browser's own failures fill the rest of the cap; then it too waits a day.
      const typos = await flood(owner, formAction((await loginPage(owner)).body), 200, (i) => ({ login: username, password: `typo ${i}` }));
      expect(statuses(typos)).toEqual({ 401: 50, 429: 150 });
      expect(services.hasher.work.verifications - before).toBe(100 + 1);
      const locked = await password(owner, username);
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(86000);

      const unlock = await twofold('user', 'unlock', username);
      expect(unlock).toMatchObject({ code: 0, err: '' });
      expect(unlock.out).toMatch(new RegExp(`^unlocked ${username} \\(\\d+ counter\\(s\\) cleared\\)\\n$`));
      expect(await listAudit(services.db, { accountId: account.id, type: 'account.unlocked' })).toEqual([expect.objectContaining({ actor: 'admin:test' })]);
      expect(signedIn(await password(owner, username))).toBe(true);
      expect(signedIn(await password(newBrowser(), username))).toBe(true);
      expect((await twofold('user', 'unlock', username)).out).toBe(`nothing to unlock for ${username}\n`);
    }, 120_000);

    test('finding 8: forged passkey assertions naming the owner’s credential, from 150 addresses, lock nothing of the account', async () => {
      // The brakes loosened as in the finding: 100 forgeries reach the daily cap at once.
      await setPolicy(LOOSE_SECOND_FACTOR);
      const { username, secret, passkey } = await newUser({ totp: true, backup: true, passkey: true });
      const owner = newBrowser();
      const ownerPage = await loginPage(owner);
      expect(signedIn(await owner.submit(webauthnAction(ownerPage.body), passkey.answer(ownerPage.body)))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const page = await loginPage(attacker);
      const forged = await flood(attacker, webauthnAction(page.body), 150, () => passkey.forge(page.body));
      expect(forged.filter(signedIn)).toEqual([]);
      expect(forged.every((h) => h.status === 401 || h.status === 429)).toBe(true);

      // Nothing of the account is locked: password + code, password + backup code, and the owner's passkey.
      const withCode = await twoSteps(newBrowser(), username, 'totp', totpCode(secret));
      expect(withCode.headers.get('retry-after')).toBeNull();
      expect(signedIn(withCode)).toBe(true);
      const withBackup = await twoSteps(newBrowser(), username, 'backup-codes', BACKUP[0]!);
      expect(withBackup.status).not.toBe(429);
      expect(signedIn(withBackup) || /backup codes? left/.test(withBackup.body)).toBe(true);
      const again = await loginPage(owner);
      expect(signedIn(await owner.submit(webauthnAction(again.body), passkey.answer(again.body)))).toBe(true);
    }, 120_000);

    test('finding 8: with the default brakes, forgeries slow only the credential for unknown browsers; the owner’s known browser signs in with it at once', async () => {
      await setPolicy(LONG_WAITS);
      const { passkey } = await newUser({ totp: true, passkey: true });
      const owner = newBrowser();
      const first = await loginPage(owner);
      expect(signedIn(await owner.submit(webauthnAction(first.body), passkey.answer(first.body)))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const page = await loginPage(attacker);
      const forged = await flood(attacker, webauthnAction(page.body), 100, () => passkey.forge(page.body));
      expect(statuses(forged)).toEqual({ 401: 5, 429: 95 });
      const stranger = newBrowser();
      const elsewhere = await loginPage(stranger);
      expect((await stranger.submit(webauthnAction(elsewhere.body), passkey.answer(elsewhere.body))).status).toBe(429);
      const again = await loginPage(owner);
      expect(signedIn(await owner.submit(webauthnAction(again.body), passkey.answer(again.body)))).toBe(true);
    }, 120_000);

    test('finding 9: with the password, 150 wrong authenticator codes lock only the authenticator, only for unknown browsers; the admin unlocks it', async () => {
      await setPolicy(LOOSE_SECOND_FACTOR);
      const { account, username, secret, passkey } = await newUser({ totp: true, backup: true, passkey: true });
      // A code is accepted once: the owner's two sign-ins use the current step, then the next (the window accepts ±1).
      const owner = newBrowser();
      expect(signedIn(await twoSteps(owner, username, 'totp', totpCode(secret)))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const second = await password(attacker, username);
      const code = wrongCode(secret);
      const flooded = await flood(attacker, `/interaction/${uidOf(second.body)}/factor/totp`, 150, () => ({ code }));
      expect(flooded.every((h) => h.status === 401 || h.status === 429)).toBe(true);
      expect(Number(flooded.find((h) => h.status === 429)!.headers.get('retry-after'))).toBeGreaterThan(86000);

      // The backup codes and the passkey are other factors…
      const withBackup = await twoSteps(newBrowser(), username, 'backup-codes', BACKUP[0]!);
      expect(withBackup.status).not.toBe(429);
      expect(signedIn(withBackup) || /backup codes? left/.test(withBackup.body)).toBe(true);
      const stranger = newBrowser();
      const page = await loginPage(stranger);
      expect(signedIn(await stranger.submit(webauthnAction(page.body), passkey.answer(page.body)))).toBe(true);
      // …and the owner's known browser has the authenticator's other 50.
      expect(signedIn(await twoSteps(owner, username, 'totp', totpCode(secret, 1)))).toBe(true);
      // The attacker got unknown browsers' share of the authenticator's daily cap, no more.
      expect(statuses(flooded)).toEqual({ 401: 50, 429: 100 });

      // An unknown browser still waits for the authenticator, until an admin clears the lock: then its codes are checked again.
      const waiting = await twoSteps(newBrowser(), username, 'totp', code);
      expect(waiting.status).toBe(429);
      expect((await twofold('user', 'unlock', username)).code).toBe(0);
      expect(await listAudit(services.db, { accountId: account.id, type: 'account.unlocked' })).toEqual([expect.objectContaining({ actor: 'admin:test' })]);
      const checked = await twoSteps(newBrowser(), username, 'totp', code);
      expect(checked.status).toBe(401);
      expect(checked.body).toContain('That code is not right');
    }, 120_000);
  });
}
