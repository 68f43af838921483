/**
 * Throttling and lockout end to end, over HTTP, with openid-client as the app
 * and the provider behind a trusted proxy (TRUST_PROXY=true), so each browser
 * has a client address of its own (X-Forwarded-For):
 *
 * - wrong passwords leave the second factor usable, and wrong second-factor
 *   codes leave the password (and the backup-code fallback) usable;
 * - wrong backup codes leave the authenticator usable;
 * - the per-client-address second-factor throttle across many accounts;
 * - 200 parallel wrong TOTP codes: at most 5 checked, the rest 429 with
 *   Retry-After, and a `factor.locked` audit event with account, client,
 *   address and user agent;
 * - the password and second-factor limits come from the global policy, and a
 *   locked answer reads the same whether or not the account exists.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { savePolicy } from '../../src/policy/store.ts';
import { MFA_PER_ACCOUNT_DAY } from '../../src/mfa/throttle.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const USER_AGENT = 'throttle-test/1 (end to end)';
const BACKUP = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
const WRONG_BACKUP = 'ZZZZ-ZZZZ-ZZZZ-ZZZZ';
let users = 0;
let addresses = 0;

/** A browser at a client address of its own (through the trusted proxy), with a recognisable user agent. */
class Browser extends UserAgent {
  constructor(
    origin: string,
    readonly ip = `198.51.100.${(++addresses % 250) + 1}`,
  ) {
    super(origin);
  }

  override request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
    return super.request(url, { ...init, headers: { 'x-forwarded-for': this.ip, 'user-agent': USER_AGENT, ...init.headers } });
  }
}

/** A 6-digit code that is not valid in any step the window accepts. */
function wrongCode(secret: string): string {
  const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, o)));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

for (const kind of DIALECTS) {
  describe(`throttling and lockout over HTTP on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let app: { clientId: string; clientSecret: string | null };

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', TRUST_PROXY: 'true' });
      services = server.opened.services;
      app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    // Tests that change the global policy put the defaults back.
    let policyChanged = false;
    afterEach(async () => {
      if (policyChanged) await savePolicy(services.db, 'global', {}, 'test');
      policyChanged = false;
    });
    async function setPolicy(throttle: Record<string, unknown>) {
      policyChanged = true;
      await savePolicy(services.db, 'global', { throttle }, 'test');
    }

    async function newUser(options: { backup?: boolean } = {}) {
      const username = `throttled${++users}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      const secret = await enrolTotp(services, account.id);
      if (options.backup) await enrolBackupCodes(services, account.id, BACKUP);
      return { account, username, secret };
    }

    /** Starts a sign-in and posts the password; `next` is the page after it. */
    async function password(agent: UserAgent, username: string, pass = 'a long password') {
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const next = await agent.submit(formAction(page.body), { login: username, password: pass });
      return { auth, page, next };
    }

    const uidOf = (html: string) => /\/interaction\/([^/"?]+)/.exec(html)![1]!;
    const signedIn = (hop: Hop) => hop.location?.startsWith(`${REDIRECT}?code=`) === true;

    test('wrong passwords leave the second factor usable', async () => {
      const { username, secret } = await newUser();
      const user = new Browser(server.issuer);
      const { auth, next } = await password(user, username);
      expect(next.body).toContain('Two-step verification');

      // Someone elsewhere guesses the password until the account is throttled for unknown browsers (20 free failures).
      const attacker = new Browser(server.issuer);
      const statuses: number[] = [];
      for (let i = 0; i < 21; i++) statuses.push((await password(attacker, username, `guess ${i}`)).next.status);
      expect(statuses.slice(0, 20)).toEqual(Array(20).fill(401));
      expect(statuses[20]).toBe(429);
      // Even the right password is refused now: the password is locked…
      const locked = (await password(new Browser(server.issuer), username)).next;
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);

      // …but the second factor is not: the sign-in that passed the password finishes.
      const done = await user.submit(formAction(next.body), { code: totpCode(secret) });
      expect(signedIn(done)).toBe(true);
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('wrong second-factor codes leave the password and the backup-code fallback usable; the next guess waits 30 s', async () => {
      const { username, secret } = await newUser({ backup: true });
      const first = new Browser(server.issuer);
      const { next } = await password(first, username);
      const action = formAction(next.body);
      for (let i = 0; i < 5; i++) expect((await first.submit(action, { code: wrongCode(secret) })).status).toBe(401);
      const waiting = await first.submit(action, { code: wrongCode(secret) });
      expect(waiting.status).toBe(429);
      expect(waiting.headers.get('retry-after')).toBe('30');
      expect(waiting.body).toContain('Too many attempts. Try again in 30 seconds.');

      // The password still works (its own counter), and the authenticator stays locked for this account…
      const second = new Browser(server.issuer);
      const again = await password(second, username);
      expect(again.next.status).toBe(200);
      expect(again.next.body).toContain('Two-step verification');
      expect((await second.submit(formAction(again.next.body), { code: totpCode(secret) })).status).toBe(429);
      // …while "lost your device?" works: backup codes have a burst counter of their own.
      const backupPage = await second.follow(`/interaction/${uidOf(again.next.body)}?factor=backup-codes`);
      const done = await second.submit(formAction(backupPage.body), { code: BACKUP[0]! });
      expect(signedIn(done) || /backup codes? left/.test(done.body)).toBe(true);
    });

    test('wrong backup codes leave the authenticator usable', async () => {
      const { username, secret } = await newUser({ backup: true });
      const agent = new Browser(server.issuer);
      const { auth, next } = await password(agent, username);
      const backupPage = await agent.follow(`/interaction/${uidOf(next.body)}?factor=backup-codes`);
      const backupAction = formAction(backupPage.body);
      for (let i = 0; i < 5; i++) expect((await agent.submit(backupAction, { code: WRONG_BACKUP })).status).toBe(401);
      expect((await agent.submit(backupAction, { code: BACKUP[1]! })).status).toBe(429);

      const done = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      expect(signedIn(done)).toBe(true);
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['otp', 'mfa']));
    });

    test('the per-address second-factor throttle counts across accounts; another address is unaffected', async () => {
      await setPolicy({ perAddress: { points: 6, windowSeconds: 900 } });
      const ip = new Browser(server.issuer).ip;
      // Three accounts, two wrong codes each, all from one address: six failures, no account near its own limit.
      for (let i = 0; i < 3; i++) {
        const { username, secret } = await newUser();
        const agent = new Browser(server.issuer, ip);
        const { next } = await password(agent, username);
        for (let j = 0; j < 2; j++) expect((await agent.submit(formAction(next.body), { code: wrongCode(secret) })).status).toBe(401);
      }
      // A fourth account from that address is refused, even with the right code, in the same words as an account lock.
      const { username, secret } = await newUser();
      const there = new Browser(server.issuer, ip);
      const blocked = await password(there, username);
      const refused = await there.submit(formAction(blocked.next.body), { code: totpCode(secret) });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(800);
      expect(refused.body).toMatch(/Too many attempts\. Try again in \d+ minutes\./);
      // The same account from another address signs in.
      const elsewhere = new Browser(server.issuer);
      const { auth, next } = await password(elsewhere, username);
      const done = await elsewhere.submit(formAction(next.body), { code: totpCode(secret) });
      expect(signedIn(done)).toBe(true);
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toContain('otp');
    });

    test('200 parallel wrong TOTP codes: at most 5 checked, the rest 429 with Retry-After, and a factor.locked audit event', async () => {
      const { account, username, secret } = await newUser();
      const agent = new Browser(server.issuer);
      const { next } = await password(agent, username);
      const action = formAction(next.body);
      const code = wrongCode(secret);
      const hops = await Promise.all(Array.from({ length: 200 }, () => agent.request(action, { form: { code } })));
      const statuses = hops.map((h) => h.status);
      expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(195);
      for (const h of hops.filter((x) => x.status === 429)) {
        expect(Number(h.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(h.body).toContain('Too many attempts');
      }
      const failed = await listAudit(services.db, { accountId: account.id, type: 'factor.failed', limit: 1000 });
      expect(failed.length).toBeLessThanOrEqual(5);
      const locked = await listAudit(services.db, { accountId: account.id, type: 'factor.locked', limit: 1000 });
      expect(locked.length).toBeGreaterThanOrEqual(195);
      expect(locked[0]).toMatchObject({ account_id: account.id, client_id: app.clientId, ip: agent.ip, user_agent: USER_AGENT, details: { factor: 'totp' } });
      // Refused guesses were never checked, so they do not count towards the daily ceiling.
      const daily = await services.db
        .selectFrom('rate_limits')
        .select('points')
        .where('key', '=', `${MFA_PER_ACCOUNT_DAY.name}:${account.id}:totp`)
        .executeTakeFirstOrThrow();
      expect(daily.points).toBeLessThanOrEqual(5);
    }, 60_000);

    test('password limits from the global policy; the locked answer is the same whether or not the account exists', async () => {
      await setPolicy({ passwordUnknownBrowsers: { points: 3, windowSeconds: 600, delaySeconds: 600, maxDelaySeconds: 600 } });
      const { username } = await newUser();
      const answers: Array<{ statuses: number[]; body: string; retryAfter: number }> = [];
      for (const login of [username, `nobody-${users}`]) {
        const agent = new Browser(server.issuer);
        const statuses: number[] = [];
        let last: Hop | undefined;
        for (let i = 0; i < 4; i++) {
          last = (await password(agent, login, `wrong ${i}`)).next;
          statuses.push(last.status);
        }
        // What differs between any two pages anyway: the interaction id and the passkey button's fresh challenge.
        const body = last!.body
          .replaceAll(login, 'LOGIN')
          .replaceAll(uidOf(last!.body), 'UID')
          .replace(/(&quot;challenge&quot;:&quot;)[^&]+/g, '$1CHALLENGE');
        answers.push({ statuses, body, retryAfter: Number(last!.headers.get('retry-after')) });
      }
      expect(answers[0]!.statuses).toEqual([401, 401, 401, 429]);
      expect(answers[1]!.statuses).toEqual(answers[0]!.statuses);
      expect(answers[1]!.body).toBe(answers[0]!.body);
      for (const a of answers) {
        expect(a.retryAfter).toBeGreaterThan(590);
        expect(a.retryAfter).toBeLessThanOrEqual(600);
      }
    });

    test('second-factor limits from the global policy: a burst of 2 locks at the third wrong code', async () => {
      await setPolicy({ perAccountBurst: { points: 2, windowSeconds: 300, delaySeconds: 120, maxDelaySeconds: 600 } });
      const { username, secret } = await newUser();
      const agent = new Browser(server.issuer);
      const { next } = await password(agent, username);
      const action = formAction(next.body);
      expect((await agent.submit(action, { code: wrongCode(secret) })).status).toBe(401);
      expect((await agent.submit(action, { code: wrongCode(secret) })).status).toBe(401);
      const third = await agent.submit(action, { code: totpCode(secret) });
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('120');
    });
  });
}
