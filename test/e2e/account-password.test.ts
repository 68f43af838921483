/**
 * Changing one's own password at /account/password over HTTP, on every
 * database: the fresh second factor asked for before the form (the
 * provider's max_age and essential acr), the current password, the rules on
 * the new one (each refusal a 4xx page, nothing changed), the choice to sign
 * out every other session or keep them, the throttle on the current
 * password, the audit trail and the notice by email through a real SMTP
 * peer.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { mailText, waitForMail } from '../helpers/mail-text.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { authenticatePassword, createAccount } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';
import { PASSWORD_UNKNOWN_BROWSERS } from '../../src/security/password-throttle.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'violet kettle on the moor';

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c)))
    .replace(/\s+/g, ' ');
const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;

let sink: MailSink;
beforeAll(async () => {
  sink = await startMailSink();
});
afterAll(async () => {
  await sink?.close();
});

for (const kind of DIALECTS) {
  describe(`changing one's password in the account center, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', SMTP_URL: sink.url, BRAND_NAME: 'Example ID' });
      services = server.opened.services;
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<Account> {
      const n = ++users;
      return createAccount(services.db, services.hasher, { username: `${kind}-pw-${n}`, email: `${kind}-pw-${n}@example.test`, password: PASSWORD });
    }

    async function signIn(account: Account, totp?: () => string, agent = new UserAgent(server.issuer)): Promise<{ agent: UserAgent; page: Hop }> {
      const login = await agent.follow('/account');
      let page = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      if (totp) page = await agent.submit(formAction(page.body), { code: totp() });
      if (page.body.includes('You have no backup codes left.')) page = await agent.submit(/action="([^"]*\/skip)"/.exec(page.body)![1]!, {});
      expect(page.status).toBe(200);
      return { agent, page };
    }

    const sessionsOf = async (accountId: string) =>
      (await services.db.selectFrom('oidc_payloads').select('payload').where('kind', '=', 'Session').execute()).filter(
        (r) => (r.payload as { accountId?: string }).accountId === accountId,
      ).length;

    function change(agent: UserAgent, page: Hop, fields: Record<string, string>) {
      return agent.request('/account/password', {
        form: { _csrf: csrfOf(page.body), current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD, signOutOthers: 'yes', ...fields },
      });
    }

    test('with a second factor, fresh from proving it: current + new twice; other sessions end, this one stays; audited and emailed', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      let step = 0;
      const code = () => totpCode(secret, step++);
      const elsewhere = await signIn(account, code);
      const { agent } = await signIn(account, code);

      const page = await agent.request('/account/password');
      expect(page.status).toBe(200);
      expect(page.body).toContain('aria-current="page"');
      // Fresh from the sign-in: the form is shown at once, with the rules' hint for an account with a second factor.
      expect(page.body).toContain('autocomplete="current-password"');
      expect(textOf(page.body)).toContain('At least 8 characters.');
      expect(page.body).toMatch(/name="signOutOthers" value="yes"[^>]* checked/);

      // Refusals: each a page, nothing changed.
      const wrong = await change(agent, page, { current: 'not my password' });
      expect(wrong.status).toBe(401);
      expect(textOf(wrong.body)).toContain('Your current password is not correct.');
      const mismatch = await change(agent, page, { confirm: 'something else' });
      expect(mismatch.status).toBe(400);
      expect(textOf(mismatch.body)).toContain('The two new passwords are not the same.');
      const common = await change(agent, page, { password: 'iloveyou1', confirm: 'iloveyou1' });
      expect(common.status).toBe(400);
      expect(textOf(common.body)).toContain('This password is too common');
      const product = await change(agent, page, { password: 'example id forever', confirm: 'example id forever' });
      expect(textOf(product.body)).toContain('must not contain the name Example ID');
      const forged = await agent.request('/account/password', { form: { _csrf: 'forged', current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
      expect(forged.status).toBe(403);
      expect((await authenticatePassword(services.db, services.hasher, account.username, PASSWORD)).ok).toBe(true);
      expect(await sessionsOf(account.id)).toBe(2);

      const done = await change(agent, page, {});
      expect(done.status).toBe(303);
      const after = await agent.follow(done.location!);
      expect(textOf(after.body)).toContain('Your password was changed. Use it from now on. One other session was signed out.');
      expect((await authenticatePassword(services.db, services.hasher, account.username, NEW_PASSWORD)).ok).toBe(true);
      expect((await authenticatePassword(services.db, services.hasher, account.username, PASSWORD)).ok).toBe(false);
      // This browser stays signed in; the other session ended.
      expect(await sessionsOf(account.id)).toBe(1);
      expect((await elsewhere.agent.request('/account')).status).toBe(303);
      expect((await agent.request('/account')).status).toBe(200);

      const [set] = await listAudit(services.db, { accountId: account.id, type: 'account.password_set' });
      expect(set).toMatchObject({ actor: 'user', client_id: 'twofold-account', details: { via: 'self', sessionsEnded: 1 } });
      const refused = (await listAudit(services.db, { accountId: account.id, type: 'account.password_change_refused' })).map(
        (e) => (e.details as { why: string }).why,
      );
      expect(refused.sort()).toEqual(['common', 'contains_product', 'wrong_current']);
      const mail = await waitForMail(sink, account.email!, 1);
      expect(mail.subject).toBe('Your Example ID password was changed');
      expect(mailText(mail)).toContain(`The password of your account ${account.username} was changed.`);
    });

    test('a session whose proof is not fresh is sent for one before the form (max_age, essential acr), and comes back to it', async () => {
      const account = await newUser();
      const { agent } = await signIn(account);
      // A second factor added behind the session's back: the session never proved it.
      const secret = await enrolTotp(services, account.id);
      const page = await agent.request('/account/password');
      expect(page.body).not.toContain('autocomplete="current-password"');
      expect(textOf(page.body)).toContain('Before you change your password, confirm it is you.');
      // A form posted without the proof changes nothing: it is sent for the proof.
      const early = await change(agent, page, {});
      expect(early.status).toBe(303);
      expect(new URL(early.location!).searchParams.has('max_age')).toBe(true);
      expect((await authenticatePassword(services.db, services.hasher, account.username, PASSWORD)).ok).toBe(true);
      // "Continue" is the way a person goes (the last round trip started is the one that counts).
      const hop = await agent.request('/account/password/proof', { form: { _csrf: csrfOf(page.body) } });
      expect(hop.status).toBe(303);
      const auth = new URL(hop.location!);
      expect(auth.searchParams.has('max_age')).toBe(true);
      expect(JSON.parse(auth.searchParams.get('claims')!).id_token.acr).toEqual({ essential: true, values: ['urn:twofold:acr:2'] });

      const challenge = await agent.follow(hop.location!);
      expect(challenge.body).toContain('name="code"');
      let back = await agent.submit(formAction(challenge.body), { code: totpCode(secret) });
      if (back.body.includes('You have no backup codes left.')) back = await agent.submit(/action="([^"]*\/skip)"/.exec(back.body)![1]!, {});
      expect(back.url).toBe(`${server.issuer}/account/password`);
      expect(back.body).toContain('autocomplete="current-password"');
      // Keeping the other sessions is a choice.
      const done = await agent.request('/account/password', {
        form: { _csrf: csrfOf(back.body), current: PASSWORD, password: 'mauve ox', confirm: 'mauve ox' },
      });
      expect(done.status).toBe(303);
      expect(textOf((await agent.follow(done.location!)).body)).toContain('Your other sessions stay signed in.');
      expect((await authenticatePassword(services.db, services.hasher, account.username, 'mauve ox')).ok).toBe(true);
    });

    test('a password-only account needs 15 characters; the current password is throttled like a sign-in', async () => {
      const account = await newUser();
      const { agent } = await signIn(account);
      const form = await agent.request('/account/password');
      expect(textOf(form.body)).toContain('At least 15 characters.');
      const short = await change(agent, form, { password: 'twelve chars', confirm: 'twelve chars' });
      expect(short.status).toBe(400);
      expect(textOf(short.body)).toContain('Use at least 15 characters: this password is the only way to sign in');
      for (let i = 0; i < PASSWORD_UNKNOWN_BROWSERS.points; i++) expect((await change(agent, form, { current: `wrong guess ${i}` })).status).toBe(401);
      const throttled = await change(agent, form, {});
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(textOf(throttled.body)).toMatch(/Too many attempts. Try again in \d+ minutes?\./);
      expect((await authenticatePassword(services.db, services.hasher, account.username, PASSWORD)).ok).toBe(true);
    });
  });
}
