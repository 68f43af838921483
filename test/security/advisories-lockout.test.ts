/**
 * Regression tests for lockout advisories of peer identity providers, one
 * each, named after the class, run over HTTP against the provider behind a
 * trusted proxy (each request may claim its own client address):
 *
 * - parallel OTP vs lockout (Keycloak CVE-2024-4629): parallel one-time codes
 *   cannot outrun the lockout, from unknown browsers or from a known one;
 * - lockout DoS (Keycloak CVE-2024-1722): whatever form of the login an
 *   attacker types, the account is one counter, and the owner's known browser
 *   is never locked by it;
 * - no OTP lockout (ZITADEL CVE-2024-32868): every place a one-time code is
 *   checked (the authenticator and the backup codes at sign-in, the code that
 *   confirms an authenticator's enrolment) has a lockout, each factor its own;
 * - parallel password checks (CVE-2023-47111): parallel wrong passwords are
 *   checked (argon2) at most the limit's number of times, for a real login and
 *   an unknown one alike.
 *
 * The free failures are the defaults; the waits after them are an hour, so
 * that no wait ends during a slow run.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { ProxiedAgent, addressOf, uidOf, wrongCode } from '../helpers/lockout.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { savePolicy } from '../../src/policy/store.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const BACKUP = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
const WRONG_BACKUP = 'ZZZZ-ZZZZ-ZZZZ-ZZZZ';
/** The default free failures, but waits after them longer than any test run, so that a slow machine never sees one end mid-test. */
const wait = { delaySeconds: 3600, maxDelaySeconds: 3600 };
const LONG_WAITS = {
  perAccountBurst: { points: 5, windowSeconds: 300, ...wait },
  knownBrowserBurst: { points: 5, windowSeconds: 300, ...wait },
  passwordUnknownBrowsers: { points: 20, windowSeconds: 900, ...wait },
  passwordKnownBrowser: { points: 20, windowSeconds: 900, ...wait },
};
let users = 0;

for (const kind of DIALECTS) {
  describe(`lockout advisories over HTTP on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', TRUST_PROXY: 'true' });
      services = server.opened.services;
      await savePolicy(services.db, 'global', { throttle: LONG_WAITS }, 'test');
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(factors: { totp?: boolean; backup?: boolean } = {}) {
      const n = ++users;
      const account = await createAccount(services.db, services.hasher, { username: `advisory${n}`, email: `advisory${n}@example.test`, password: PASSWORD });
      const secret = factors.totp ? await enrolTotp(services, account.id) : undefined;
      if (factors.backup) await enrolBackupCodes(services, account.id, BACKUP);
      return { account, username: account.username, email: account.email!, secret: secret! };
    }

    const newBrowser = () => new ProxiedAgent(server.issuer);
    const signedIn = (hop: Hop) => hop.location?.startsWith(`${REDIRECT}?code=`) === true;
    const loginPage = async (agent: ProxiedAgent, extra: Record<string, string> = {}) => agent.follow((await rp.authorizationUrl(extra)).url);
    const password = async (agent: ProxiedAgent, login: string, pass = PASSWORD, extra: Record<string, string> = {}) =>
      agent.submit(formAction((await loginPage(agent, extra)).body), { login, password: pass });
    const flood = (agent: ProxiedAgent, action: string, n: number, form: (i: number) => Record<string, string>) =>
      Promise.all(Array.from({ length: n }, (_, i) => agent.request(action, { form: form(i), headers: { 'x-forwarded-for': addressOf(1000 + i) } })));
    const statuses = (hops: Hop[]) => hops.reduce<Record<number, number>>((all, h) => ({ ...all, [h.status]: (all[h.status] ?? 0) + 1 }), {});
    const failedChecks = async (accountId: string, factor: string) =>
      (await listAudit(services.db, { accountId, type: 'factor.failed', limit: 1000 })).filter((e) => (e.details as { factor?: string }).factor === factor)
        .length;

    test('parallel OTP vs lockout (Keycloak CVE-2024-4629): 200 parallel codes are checked 5 times, from unknown browsers and from a known one alike', async () => {
      const { account, username, secret } = await newUser({ totp: true });
      // The owner's browser completes a sign-in.
      const owner = newBrowser();
      const mine = await password(owner, username);
      expect(signedIn(await owner.submit(`/interaction/${uidOf(mine.body)}/factor/totp`, { code: totpCode(secret) }))).toBe(true);
      owner.forgetSession();

      const attacker = newBrowser();
      const theirs = await password(attacker, username);
      const code = wrongCode(secret);
      const flooded = await flood(attacker, `/interaction/${uidOf(theirs.body)}/factor/totp`, 200, () => ({ code }));
      expect(statuses(flooded)).toEqual({ 401: 5, 429: 195 });
      expect(await failedChecks(account.id, 'totp')).toBe(5);
      // The lock holds for the right code too: it is refused unchecked.
      expect((await attacker.submit(`/interaction/${uidOf(theirs.body)}/factor/totp`, { code: totpCode(secret, 1) })).status).toBe(429);
      expect(await failedChecks(account.id, 'totp')).toBe(5);

      // The known browser's own counter holds under the same flood.
      const again = await password(owner, username);
      const typos = await flood(owner, `/interaction/${uidOf(again.body)}/factor/totp`, 200, () => ({ code }));
      expect(statuses(typos)).toEqual({ 401: 5, 429: 195 });
      expect(await failedChecks(account.id, 'totp')).toBe(10);
    }, 120_000);

    test('lockout DoS (Keycloak CVE-2024-1722): username, email and their other cases are one account’s 20 failures, and the owner’s known browser is not locked', async () => {
      const { username, email } = await newUser();
      const owner = newBrowser();
      expect(signedIn(await password(owner, email))).toBe(true);
      owner.forgetSession();

      const forms = [username, email, username.toUpperCase(), email.toUpperCase()];
      const attacker = newBrowser();
      const action = formAction((await loginPage(attacker)).body);
      const seen: number[] = [];
      for (let i = 0; i < 30; i++)
        seen.push(
          (
            await attacker.request(action, {
              form: { login: forms[i % forms.length]!, password: `guess ${i}` },
              headers: { 'x-forwarded-for': addressOf(2000 + i) },
            })
          ).status,
        );
      expect(seen).toEqual([...Array(20).fill(401), ...Array(10).fill(429)]);
      // Locked for every unknown browser, by any form of the login…
      for (const login of forms) expect((await password(newBrowser(), login)).status).toBe(429);
      // …but not for the browser the owner signed in with, by either login.
      expect(signedIn(await password(owner, username))).toBe(true);
      owner.forgetSession();
      expect(signedIn(await password(owner, email))).toBe(true);
    }, 120_000);

    test('no OTP lockout (ZITADEL CVE-2024-32868): the authenticator, the backup codes and an authenticator’s enrolment code each lock after 5 wrong codes, each on its own', async () => {
      const { username, secret } = await newUser({ totp: true, backup: true });
      const agent = newBrowser();
      const step = await password(agent, username);
      const uid = uidOf(step.body);
      for (let i = 0; i < 5; i++) expect((await agent.submit(`/interaction/${uid}/factor/totp`, { code: wrongCode(secret) })).status).toBe(401);
      expect((await agent.submit(`/interaction/${uid}/factor/totp`, { code: totpCode(secret) })).status).toBe(429);
      for (let i = 0; i < 5; i++) expect((await agent.submit(`/interaction/${uid}/factor/backup-codes`, { code: WRONG_BACKUP })).status).toBe(401);
      const backupLocked = await agent.submit(`/interaction/${uid}/factor/backup-codes`, { code: BACKUP[0]! });
      expect(backupLocked.status).toBe(429);
      expect(Number(backupLocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

      // Confirming a new authenticator is a code check too.
      const fresh = await newUser();
      const enrolling = newBrowser();
      const enrolPage = await password(enrolling, fresh.username, PASSWORD, { twofold_enroll: 'totp' });
      const enrolAction = formAction(enrolPage.body);
      expect(enrolAction).toMatch(/\/enroll\/totp$/);
      for (let i = 0; i < 5; i++) expect((await enrolling.submit(enrolAction, { code: '000000' })).status).toBe(400);
      expect((await enrolling.submit(enrolAction, { code: '000000' })).status).toBe(429);
    }, 120_000);

    test('parallel password checks (CVE-2023-47111): 200 parallel wrong passwords are 20 argon2 checks, for a real login and an unknown one alike, and 20 more from a known browser', async () => {
      const { username } = await newUser();
      const checks = () => services.hasher.work.verifications;
      const owner = newBrowser();
      expect(signedIn(await password(owner, username))).toBe(true);
      owner.forgetSession();

      const answers: Array<{ statuses: Record<number, number>; checked: number }> = [];
      for (const login of [username, `nobody-${users}`]) {
        const attacker = newBrowser();
        const before = checks();
        const hops = await flood(attacker, formAction((await loginPage(attacker)).body), 200, (i) => ({ login, password: `guess ${i}` }));
        answers.push({ statuses: statuses(hops), checked: checks() - before });
      }
      expect(answers[0]).toEqual({ statuses: { 401: 20, 429: 180 }, checked: 20 });
      expect(answers[1]).toEqual(answers[0]);

      // The right password from an unknown browser is refused unchecked now.
      const before = checks();
      expect((await password(newBrowser(), username)).status).toBe(429);
      expect(checks()).toBe(before);
      // The owner's known browser has 20 of its own, under the same flood.
      const typos = await flood(owner, formAction((await loginPage(owner)).body), 200, (i) => ({ login: username, password: `typo ${i}` }));
      expect(statuses(typos)).toEqual({ 401: 20, 429: 180 });
      expect(checks() - before).toBe(20);
    }, 120_000);
  });
}
