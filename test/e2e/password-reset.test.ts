/**
 * "Forgot your password?" over HTTP, through a real SMTP peer (smtp-server),
 * on every database: the link on the sign-in page, one answer whether or not
 * the account exists, the emailed link (single use, 15 minutes, only its
 * keyed hash stored), the rules on the new password with nothing spent on a
 * refusal, every session ended and every trusted device revoked, the second
 * factor still asked for at the next sign-in, and notices by email. Broken
 * links (forged, expired, used, superseded) get a clear page, never a 500.
 * The throttles have their own tests at the end.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { mailText, resetLink, waitForMail } from '../helpers/mail-text.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { ManualClock } from '../helpers/clock.ts';
import { createAccount, setDisabled } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import { RESET_PER_ACCOUNT, RESET_PER_ADDRESS } from '../../src/accounts/password-reset.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'the first long password';
const NEW_PASSWORD = 'a brand new passphrase';
let users = 0;

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c)))
    .replace(/\s+/g, ' ');

let sink: MailSink;
beforeAll(async () => {
  sink = await startMailSink();
});
afterAll(async () => {
  await sink?.close();
});

for (const kind of DIALECTS) {
  describe(`a forgotten password, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    const clock = new ManualClock();

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { SMTP_URL: sink.url, MAIL_FROM: 'Example ID <id@example.test>', BRAND_NAME: 'Example ID' }, { clock });
      services = server.opened.services;
      await savePolicy(services.db, GLOBAL, { mfa: 'optional', trustedDevices: { enabled: true, days: 30 } }, 'test');
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    // Every test asks from 127.0.0.1: the address's own throttle is tested last, on a clean counter.
    beforeEach(async () => {
      await services.db.deleteFrom('rate_limits').where('key', 'like', `${RESET_PER_ADDRESS.name}:%`).execute();
    });

    async function newUser(options: { email?: boolean } = { email: true }) {
      const username = `${kind}-reset-${++users}`;
      const email = options.email ? `${username}@example.test` : undefined;
      const account = await createAccount(services.db, services.hasher, { username, email, password: PASSWORD });
      return { account, username, email: email ?? '' };
    }

    /** Signs in with a password through the app; `code` when done, else the page reached. */
    async function signIn(agent: UserAgent, username: string, password: string, totp?: () => string, trust = false) {
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      let next = await agent.submit(formAction(page.body), { login: username, password });
      if (totp && next.body.includes('name="code"')) next = await agent.submit(formAction(next.body), { code: totp(), ...(trust ? { trust: 'yes' } : {}) });
      return next.location?.startsWith(REDIRECT) && new URL(next.location).searchParams.has('code')
        ? { done: true as const, page: next }
        : { done: false as const, page: next };
    }

    /** Asks for a link from the sign-in page, as a person would; the answer page. */
    async function ask(agent: UserAgent, login: string) {
      const auth = await rp.authorizationUrl();
      const loginPage = await agent.follow(auth.url);
      const href = /<a href="([^"]*\/password\/forgot[^"]*)"/.exec(loginPage.body)?.[1]?.replace(/&amp;/g, '&');
      expect(href).toBeDefined();
      const form = await agent.follow(href!);
      expect(form.status).toBe(200);
      return agent.submit(formAction(form.body), { login, uid: /name="uid" value="([^"]+)"/.exec(form.body)![1]! });
    }

    test('the whole way: the link on the sign-in page, the email, a refused password that spends nothing, the new password; sessions end, the old password stops working', async () => {
      const { account, username, email } = await newUser();
      const elsewhere = new UserAgent(server.issuer);
      expect((await signIn(elsewhere, username, PASSWORD)).done).toBe(true);

      const agent = new UserAgent(server.issuer);
      const sent = await ask(agent, username.toUpperCase());
      expect(sent.status).toBe(200);
      expect(textOf(sent.body)).toContain('a link to set a new password is on its way. It works once, within 15 minutes.');
      expect(sent.body).toMatch(/<a href="\/interaction\/[\w-]+">Back to the sign-in<\/a>/);

      const mail = await waitForMail(sink, email, 1);
      expect(mail.subject).toBe('Reset your Example ID password');
      expect(mailText(mail)).toContain(`Hello ${username},`);
      const link = resetLink(mail);
      const token = new URL(link).searchParams.get('token')!;
      // Only a keyed hash of the token is stored.
      const rows = await services.db.selectFrom('password_resets').selectAll().where('account_id', '=', account.id).execute();
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(token);

      const form = await agent.follow(link);
      expect(form.status).toBe(200);
      expect(textOf(form.body)).toContain(`Choose a new password for ${username}`);
      expect(form.body).toContain('autocomplete="new-password"');

      // Refusals: the link is not spent, the password not changed.
      const mismatch = await agent.submit(formAction(form.body), { token, password: NEW_PASSWORD, confirm: `${NEW_PASSWORD}!` });
      expect(mismatch.status).toBe(400);
      expect(textOf(mismatch.body)).toContain('The two new passwords are not the same.');
      const common = await agent.submit(formAction(form.body), { token, password: 'passwordpassword', confirm: 'passwordpassword' });
      expect(common.status).toBe(400);
      expect(textOf(common.body)).toContain('This password is too common');
      const short = await agent.submit(formAction(form.body), { token, password: 'only 12 char', confirm: 'only 12 char' });
      expect(textOf(short.body)).toContain('Use at least 15 characters: this password is the only way to sign in');
      const own = await agent.submit(formAction(form.body), { token, password: `${username} is me`, confirm: `${username} is me` });
      expect(textOf(own.body)).toContain('must not contain your username');
      expect(
        (await services.db.selectFrom('password_resets').select('used_at').where('account_id', '=', account.id).executeTakeFirstOrThrow()).used_at,
      ).toBeNull();
      expect((await signIn(new UserAgent(server.issuer), username, PASSWORD)).done).toBe(true);

      const done = await agent.submit(formAction(form.body), { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
      expect(done.status).toBe(200);
      expect(textOf(done.body)).toContain('Sign in with your new password. You were signed out everywhere.');

      // Every session ended; the old password no longer works, the new one does.
      const again = await signIn(elsewhere, username, PASSWORD);
      expect(again.done).toBe(false);
      expect(again.page.status).toBe(401);
      expect((await signIn(new UserAgent(server.issuer), username, NEW_PASSWORD)).done).toBe(true);

      // Used once: the link now says so, and changes nothing.
      const reused = await agent.follow(link);
      expect(reused.status).toBe(410);
      expect(textOf(reused.body)).toContain('This link was already used');
      const replay = await agent.request(formAction(form.body), { form: { token, password: 'yet another passphrase', confirm: 'yet another passphrase' } });
      expect(replay.status).toBe(410);
      expect((await signIn(new UserAgent(server.issuer), username, NEW_PASSWORD)).done).toBe(true);

      // The person is told, in a second email.
      const notice = await waitForMail(sink, email, 2);
      expect(notice.subject).toBe('Your Example ID password was reset');
      expect(mailText(notice)).toContain('was reset with a link sent to this address');
      const types = (await listAudit(services.db, { accountId: account.id })).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['password.reset_requested', 'account.password_set', 'notice.sent']));
      const [set] = await listAudit(services.db, { accountId: account.id, type: 'account.password_set' });
      expect(set).toMatchObject({ actor: 'user', details: { via: 'reset_link' } });
    });

    test('the same answer whether or not the account exists, is disabled or has no address; only a real one gets an email', async () => {
      const real = await newUser();
      const noAddress = await newUser({ email: false });
      const disabled = await newUser();
      await setDisabled(services.db, disabled.account.id, true);
      const answers: string[] = [];
      for (const login of [real.username, 'nobody-at-all', 'nobody@example.test', noAddress.username, disabled.username]) {
        const agent = new UserAgent(server.issuer);
        const form = await agent.follow('/password/forgot');
        const sent = await agent.submit(formAction(form.body), { login });
        expect(sent.status).toBe(200);
        answers.push(sent.body);
      }
      expect(new Set(answers).size).toBe(1);
      await waitForMail(sink, real.email, 1);
      // Give a wrongly sent email the time to arrive before saying none did.
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.to(disabled.email)).toHaveLength(0);
      const requested = await listAudit(services.db, { type: 'password.reset_requested' });
      expect(requested.find((e) => (e.details as { login?: string }).login === 'nobody-at-all')?.details).toMatchObject({ sent: false, why: 'no_account' });
      expect(requested.find((e) => e.account_id === noAddress.account.id)?.details).toMatchObject({ sent: false, why: 'no_address' });
      expect(requested.find((e) => e.account_id === disabled.account.id)?.details).toMatchObject({ sent: false, why: 'disabled' });
    });

    test('a forged, malformed, expired or superseded link gets a clear page and changes nothing', async () => {
      const agent = new UserAgent(server.issuer);
      for (const token of ['', 'x', 'A'.repeat(43), '%00', 'a'.repeat(300), '../../etc/passwd']) {
        const page = await agent.request(`/password/reset?token=${encodeURIComponent(token)}`);
        expect(page.status).toBe(400);
        expect(textOf(page.body)).toContain('This link is not valid.');
        expect(page.body).toContain('href="/password/forgot');
        const posted = await agent.request('/password/reset', { form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
        expect(posted.status).toBe(400);
      }
      // A form missing its fields, or with one twice, is a page too.
      expect((await agent.request('/password/reset', { form: {} })).status).toBe(400);

      const { account, username, email } = await newUser();
      await ask(new UserAgent(server.issuer), username);
      const first = resetLink(await waitForMail(sink, email, 1));
      await ask(new UserAgent(server.issuer), email);
      const second = resetLink(await waitForMail(sink, email, 2));
      // The newer link voids the older.
      const older = await agent.follow(first);
      expect(older.status).toBe(410);
      expect(textOf(older.body)).toContain('a newer link was sent since');
      expect((await agent.follow(second)).status).toBe(200);

      clock.advance(16 * 60);
      try {
        const expired = await agent.follow(second);
        expect(expired.status).toBe(410);
        expect(textOf(expired.body)).toContain('This link has expired: a link to reset your password works for 15 minutes.');
        const posted = await agent.request('/password/reset', {
          form: { token: new URL(second).searchParams.get('token')!, password: NEW_PASSWORD, confirm: NEW_PASSWORD },
        });
        expect(posted.status).toBe(410);
      } finally {
        clock.advance(-16 * 60);
      }
      expect((await signIn(new UserAgent(server.issuer), username, PASSWORD)).done).toBe(true);
      expect(
        (await services.db.selectFrom('password_resets').select('used_at').where('account_id', '=', account.id).execute()).every((r) => r.used_at === null),
      ).toBe(true);
    });

    test('a cross-site post is refused', async () => {
      const agent = new UserAgent(server.issuer);
      const refused = await agent.request('/password/forgot', { form: { login: 'someone' }, headers: { origin: 'https://evil.example' } });
      expect(refused.status).toBe(403);
    });

    test('a reset never bypasses the second factor: the trusted device is revoked, and the next sign-in asks for the code', async () => {
      const { account, username, email } = await newUser();
      const secret = await enrolTotp(services, account.id);
      const browser = new UserAgent(server.issuer);
      expect((await signIn(browser, username, PASSWORD, () => totpCode(secret), true)).done).toBe(true);
      // A new session in the same browser, which keeps its own cookies (the trusted device's among them).
      const newSession = () => {
        for (const name of [...browser.cookies.keys()]) if (/^twofold\.(session|interaction|resume)/.test(name)) browser.cookies.delete(name);
      };
      newSession();
      // On the trusted device, the password alone signs in.
      expect((await signIn(browser, username, PASSWORD)).done).toBe(true);
      newSession();

      const sent = await ask(browser, username);
      expect(textOf(sent.body)).toContain('A new password does not skip your second sign-in step');
      const link = resetLink(await waitForMail(sink, email, 1));
      const form = await browser.follow(link);
      expect(textOf(form.body)).toContain('Your second sign-in step stays as it is');
      // With a second factor the password may be 8 characters.
      const done = await browser.submit(formAction(form.body), { token: new URL(link).searchParams.get('token')!, password: 'mauve ox', confirm: 'mauve ox' });
      expect(done.status).toBe(200);
      expect(textOf(done.body)).toContain('Your second sign-in step has not changed: the next sign-in asks for it.');

      const devices = await services.db.selectFrom('trusted_devices').select('revoked_at').where('account_id', '=', account.id).execute();
      expect(devices.length).toBeGreaterThan(0);
      expect(devices.every((d) => d.revoked_at !== null)).toBe(true);
      expect(
        await services.db
          .selectFrom('oidc_payloads')
          .select('id')
          .where('kind', '=', 'Session')
          .where((eb) => eb.fn('jsonb_extract_path_text', [eb.ref('payload'), eb.val('accountId')]), '=', account.id)
          .execute(),
      ).toEqual([]);

      // Same browser, new password: the code is asked for.
      const next = await signIn(browser, username, 'mauve ox');
      expect(next.done).toBe(false);
      expect(next.page.body).toContain('name="code"');
      expect((await signIn(browser, username, 'mauve ox', () => totpCode(secret, 1))).done).toBe(true);
      expect(await services.db.selectFrom('credentials').select('factor_id').where('account_id', '=', account.id).execute()).toEqual([{ factor_id: 'totp' }]);
    });

    test('throttled per account: three links an hour, then the same answer and no email', async () => {
      const { account, username, email } = await newUser();
      for (let i = 1; i <= RESET_PER_ACCOUNT.points + 1; i++) {
        const agent = new UserAgent(server.issuer);
        const form = await agent.follow('/password/forgot');
        const sent = await agent.submit(formAction(form.body), { login: i % 2 ? username : email });
        expect(sent.status).toBe(200);
      }
      await waitForMail(sink, email, RESET_PER_ACCOUNT.points);
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.to(email)).toHaveLength(RESET_PER_ACCOUNT.points);
      const throttled = await listAudit(services.db, { accountId: account.id, type: 'password.reset_throttled' });
      expect(throttled).toHaveLength(1);
      expect(throttled[0]!.details).toMatchObject({ scope: 'account' });
    });

    test('throttled per client address: ten requests an hour, whatever they name, then 429 with Retry-After', async () => {
      const agent = new UserAgent(server.issuer);
      const form = await agent.follow('/password/forgot');
      for (let i = 0; i < RESET_PER_ADDRESS.points; i++) expect((await agent.submit(formAction(form.body), { login: `someone-${i}` })).status).toBe(200);
      const refused = await agent.submit(formAction(form.body), { login: 'one-more' });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(textOf(refused.body)).toMatch(/Too many requests from your network. Try again in \d+ minutes?\./);
    });
  });
}
