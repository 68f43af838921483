/**
 * Sign-up over HTTP, through a real SMTP peer, on every database: off by
 * default (no link, 404); on, the link on the sign-in page of an app that
 * allows it, the account unable to sign in until the emailed link confirms
 * its address, then signing in; an app that denies it; the same answer for a
 * taken address (its owner told by email); broken links refused cleanly;
 * the password rules; the throttles.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { mailText, waitForMail } from '../helpers/mail-text.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { ManualClock } from '../helpers/clock.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { cliRunner } from '../helpers/cli.ts';
import { listAudit } from '../../src/security/audit.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import { SIGN_UP_PER_CLIENT, SIGN_UP_PER_EMAIL } from '../../src/accounts/sign-up.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long enough passphrase';
let people = 0;

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c)))
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
const verifyLink = (text: string) => {
  const link = /https?:\/\/\S+\/signup\/verify\?token=[A-Za-z0-9_-]+(?:&ui_locales=[\w-]+)?/.exec(text)?.[0];
  if (!link) throw new Error(`no confirmation link in:\n${text}`);
  return link;
};

let sink: MailSink;
beforeAll(async () => {
  sink = await startMailSink();
});
afterAll(async () => {
  await sink?.close();
});

for (const kind of DIALECTS) {
  describe(`sign-up off by default, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { SMTP_URL: sink.url, MAIL_FROM: 'id@example.test' });
      const app = await createClient(server.opened.services.db, server.opened.services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });
    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('no link on the sign-in page; every sign-up route answers 404', async () => {
      expect(server.opened.services.config.SIGN_UP).toBe(false);
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow((await rp.authorizationUrl()).url);
      expect(login.status).toBe(200);
      expect(login.body).not.toContain('/signup');
      const uid = /\/interaction\/([\w-]+)\/login/.exec(login.body)![1]!;
      expect((await agent.request(`/signup?uid=${uid}`)).status).toBe(404);
      expect((await agent.request('/signup', { form: { uid, email: 'x@example.test', password: PASSWORD, confirm: PASSWORD } })).status).toBe(404);
      expect((await agent.request(`/signup/verify?token=${'A'.repeat(43)}`)).status).toBe(404);
      expect((await agent.request('/signup/resend', { form: { login: 'x@example.test' } })).status).toBe(404);
    });
  });

  describe(`sign-up on, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let denying: RelyingParty;
    const clock = new ManualClock();
    const run = cliRunner(() => services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(
        database,
        { SMTP_URL: sink.url, MAIL_FROM: 'Example ID <id@example.test>', BRAND_NAME: 'Example ID', SIGN_UP: 'true' },
        { clock },
      );
      services = server.opened.services;
      await savePolicy(services.db, GLOBAL, { mfa: 'optional' }, 'test');
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      const other = await createClient(services.db, services.sealer, { name: 'closed', redirectUris: [REDIRECT], firstParty: true });
      expect(await run('client', 'update', 'closed', '--sign-up', 'deny')).toMatchObject({ code: 0, out: 'updated closed: sign_up deny\n' });
      denying = await relyingParty(server.issuer, other.clientId, other.clientSecret, REDIRECT);
    });
    afterAll(async () => {
      await server?.close();
      await database?.close();
    });
    beforeEach(async () => {
      await services.db
        .deleteFrom('rate_limits')
        .where((eb) => eb.or([eb('key', 'like', `${SIGN_UP_PER_CLIENT.name}:%`), eb('key', 'like', `${SIGN_UP_PER_EMAIL.name}:%`)]))
        .execute();
    });

    const newEmail = () => `${kind}-signup-${++people}@example.test`;

    /** Opens the sign-up form from the app's sign-in page. */
    async function openForm(agent: UserAgent, party = rp) {
      const login = await agent.follow((await party.authorizationUrl()).url);
      const href = /<a href="(\/signup\?[^"]*)"/.exec(login.body)?.[1]?.replace(/&amp;/g, '&');
      expect(href).toBeDefined();
      const form = await agent.follow(href!);
      expect(form.status).toBe(200);
      return form;
    }

    async function signUp(agent: UserAgent, email: string, password = PASSWORD) {
      const form = await openForm(agent);
      return agent.submit(formAction(form.body), { uid: /name="uid" value="([^"]+)"/.exec(form.body)![1]!, email, password, confirm: password });
    }

    async function signIn(agent: UserAgent, login: string, password = PASSWORD) {
      const page = await agent.follow((await rp.authorizationUrl()).url);
      const next = await agent.submit(formAction(page.body), { login, password });
      return { done: !!next.location?.startsWith(REDIRECT) && new URL(next.location).searchParams.has('code'), page: next };
    }

    test('sign up, refused sign-in until the emailed link is used, then sign in', async () => {
      const email = newEmail();
      const agent = new UserAgent(server.issuer);
      const sent = await signUp(agent, email.toUpperCase());
      expect(sent.status).toBe(200);
      expect(textOf(sent.body)).toContain('If this address can be used for a new account, we have sent a link to it');

      const account = await services.db.selectFrom('accounts').selectAll().where('email', '=', email).executeTakeFirstOrThrow();
      expect(account).toMatchObject({ username: email, sign_up_pending: true, email_verified: false });
      expect(JSON.parse((await run('user', 'show', email, '--json')).out)).toMatchObject({ email, sign_up_pending: true, email_verified: false });

      const blocked = await signIn(new UserAgent(server.issuer), email);
      expect(blocked.done).toBe(false);
      expect(blocked.page.status).toBe(403);
      expect(textOf(blocked.page.body)).toContain('Confirm your email first');
      expect(blocked.page.body).toContain('action="/signup/resend');

      const mail = await waitForMail(sink, email, 1);
      expect(mail.subject).toBe('Confirm your email address for Example ID');
      const link = verifyLink(mailText(mail));
      const token = new URL(link).searchParams.get('token')!;
      const rows = await services.db.selectFrom('email_verifications').selectAll().where('account_id', '=', account.id).execute();
      expect(JSON.stringify(rows)).not.toContain(token);

      // Opening the link spends nothing (a mail scanner may fetch it); the button does.
      const confirm = await agent.follow(link);
      expect(confirm.status).toBe(200);
      expect(textOf(confirm.body)).toContain(`Confirm ${email} as the email address`);
      expect((await services.db.selectFrom('accounts').select('sign_up_pending').where('id', '=', account.id).executeTakeFirstOrThrow()).sign_up_pending).toBe(
        true,
      );
      // The password chosen at sign-up confirms; a wrong one spends nothing.
      const wrong = await agent.submit(formAction(confirm.body), { token, password: 'not the password I chose' });
      expect(wrong.status).toBe(400);
      expect(textOf(wrong.body)).toContain('That is not the password chosen when this account was created.');
      expect(
        (await services.db.selectFrom('email_verifications').select('used_at').where('account_id', '=', account.id).executeTakeFirstOrThrow()).used_at,
      ).toBeNull();
      const done = await agent.submit(formAction(confirm.body), { token, password: PASSWORD });
      expect(done.status).toBe(200);
      expect(textOf(done.body)).toContain('Your email address is confirmed.');

      expect((await signIn(new UserAgent(server.issuer), email)).done).toBe(true);
      const reused = await agent.request('/signup/verify', { form: { token, password: PASSWORD } });
      expect(reused.status).toBe(410);
      expect(textOf(reused.body)).toContain('This link was already used');
      const types = (await listAudit(services.db, { accountId: account.id })).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['signup.created', 'signup.link_sent', 'login.sign_up_pending', 'signup.verified', 'notice.sent']));
    });

    test('"send the link again" voids the older link; the same answer for an address with no pending account', async () => {
      const email = newEmail();
      await signUp(new UserAgent(server.issuer), email);
      const first = verifyLink(mailText(await waitForMail(sink, email, 1)));
      const blocked = await signIn(new UserAgent(server.issuer), email);
      const agent = new UserAgent(server.issuer);
      const resent = await agent.request(formAction(blocked.page.body), { form: { login: email, uid: '' } });
      expect(resent.status).toBe(200);
      expect(textOf(resent.body)).toContain('a new link is on its way');
      const second = verifyLink(mailText(await waitForMail(sink, email, 2)));
      expect(second).not.toBe(first);
      expect((await agent.follow(first)).status).toBe(410);
      const nobody = await agent.request(formAction(blocked.page.body), { form: { login: 'nobody-here@example.test', uid: '' } });
      expect(nobody.status).toBe(200);
      expect(textOf(nobody.body)).toContain('a new link is on its way');
    });

    test('a squatter cannot have the owner confirm an account whose password the squatter chose', async () => {
      const email = newEmail();
      const SQUAT = 'the squatters own passphrase';
      await signUp(new UserAgent(server.issuer), email, SQUAT);
      const squatLink = verifyLink(mailText(await waitForMail(sink, email, 1)));
      // The owner, not knowing, confirms the squatter's link with their own password: refused.
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow(squatLink);
      expect((await agent.submit(formAction(page.body), { token: new URL(squatLink).searchParams.get('token')!, password: PASSWORD })).status).toBe(400);
      // The owner signs up: the password is theirs now, the squatter's link void.
      expect((await signUp(new UserAgent(server.issuer), email)).status).toBe(200);
      const ownLink = verifyLink(mailText(await waitForMail(sink, email, 2)));
      expect((await agent.follow(squatLink)).status).toBe(410);
      const own = await agent.follow(ownLink);
      expect((await agent.submit(formAction(own.body), { token: new URL(ownLink).searchParams.get('token')!, password: PASSWORD })).status).toBe(200);
      expect((await signIn(new UserAgent(server.issuer), email, SQUAT)).done).toBe(false);
      expect((await signIn(new UserAgent(server.issuer), email)).done).toBe(true);
    });

    test('an app that denies sign-up: no link, and its sign-up form answers 404', async () => {
      expect(JSON.parse((await run('client', 'show', 'closed', '--json')).out)).toMatchObject({ sign_up: 'deny' });
      expect(JSON.parse((await run('client', 'show', 'web', '--json')).out)).toMatchObject({ sign_up: 'allow' });
      const [event] = await listAudit(services.db, { type: 'client.updated' });
      expect(event).toMatchObject({ details: { sign_up: 'deny' } });
      const bad = await run('client', 'update', 'closed', '--sign-up', 'maybe');
      expect(bad.code).not.toBe(0);
      expect(bad.err).toMatch(/--sign-up/);
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow((await denying.authorizationUrl()).url);
      expect(login.status).toBe(200);
      expect(login.body).not.toContain('/signup');
      const uid = /\/interaction\/([\w-]+)\/login/.exec(login.body)![1]!;
      expect((await agent.request(`/signup?uid=${uid}`)).status).toBe(404);
      const before = await services.db.selectFrom('accounts').select('id').execute();
      expect((await agent.request('/signup', { form: { uid, email: newEmail(), password: PASSWORD, confirm: PASSWORD } })).status).toBe(404);
      expect(await services.db.selectFrom('accounts').select('id').execute()).toHaveLength(before.length);
      // No sign-in in progress: no app to allow it.
      expect((await agent.request('/signup')).status).toBe(404);
      expect((await agent.request('/signup?uid=no-such-interaction')).status).toBe(404);
    });

    test('a taken address gets the same page, and its owner an email; nothing is created', async () => {
      const email = newEmail();
      const owner = await createAccount(services.db, services.hasher, { username: `owner-${people}`, email, password: 'the owner password' });
      const taken = await signUp(new UserAgent(server.issuer), email);
      const free = await signUp(new UserAgent(server.issuer), newEmail());
      expect(taken.status).toBe(200);
      expect(taken.body.replace(/\/interaction\/[\w-]+/g, '')).toBe(free.body.replace(/\/interaction\/[\w-]+/g, ''));
      const notice = await waitForMail(sink, email, 1);
      expect(notice.subject).toBe('Someone tried to sign up to Example ID with your email address');
      expect(mailText(notice)).not.toContain('/signup/verify');
      expect(await services.db.selectFrom('accounts').select('id').where('email', '=', email).execute()).toEqual([{ id: owner.id }]);
      expect((await listAudit(services.db, { accountId: owner.id, type: 'signup.existing' })).length).toBe(1);
    });

    test('the password rules: blocklisted, too short for the only factor, not the same twice; nothing is created', async () => {
      const email = newEmail();
      const agent = new UserAgent(server.issuer);
      const common = await signUp(agent, email, 'passwordpassword');
      expect(common.status).toBe(400);
      expect(textOf(common.body)).toContain('This password is too common');
      const short = await signUp(agent, email, 'only 12 char');
      expect(textOf(short.body)).toContain('Use at least 15 characters');
      const form = await openForm(agent);
      const mismatch = await agent.submit(formAction(form.body), {
        uid: /name="uid" value="([^"]+)"/.exec(form.body)![1]!,
        email,
        password: PASSWORD,
        confirm: `${PASSWORD}!`,
      });
      expect(mismatch.status).toBe(400);
      const invalid = await signUp(agent, 'not an address');
      expect(invalid.status).toBe(400);
      expect(textOf(invalid.body)).toContain('Type a valid email address.');
      expect(await services.db.selectFrom('accounts').select('id').where('email', '=', email).execute()).toHaveLength(0);
    });

    test('a forged, malformed, expired or superseded link gets a clear page and confirms nothing', async () => {
      const agent = new UserAgent(server.issuer);
      for (const token of ['', 'x', 'A'.repeat(43), '%00', 'a'.repeat(300)]) {
        const page = await agent.request(`/signup/verify?token=${encodeURIComponent(token)}`);
        expect(page.status).toBe(400);
        expect(textOf(page.body)).toContain('This link is not valid.');
        expect((await agent.request('/signup/verify', { form: { token, password: PASSWORD } })).status).toBe(400);
      }
      expect((await agent.request('/signup/verify', { form: {} })).status).toBe(400);

      const email = newEmail();
      await signUp(agent, email);
      const link = verifyLink(mailText(await waitForMail(sink, email, 1)));
      clock.advance(24 * 3600 + 1);
      const expired = await agent.follow(link);
      expect(expired.status).toBe(410);
      expect(textOf(expired.body)).toContain('This link has expired: it works for 24 hours.');
      expect((await agent.request('/signup/verify', { form: { token: new URL(link).searchParams.get('token')!, password: PASSWORD } })).status).toBe(410);
      expect((await services.db.selectFrom('accounts').select('sign_up_pending').where('email', '=', email).executeTakeFirstOrThrow()).sign_up_pending).toBe(
        true,
      );
    });

    test('German: the form and the email in the language of the page', async () => {
      const agent = new UserAgent(server.issuer);
      const login = await agent.follow(`${(await rp.authorizationUrl()).url}&ui_locales=de`);
      const href = /<a href="(\/signup\?[^"]*)"/.exec(login.body)![1]!.replace(/&amp;/g, '&');
      const form = await agent.follow(href);
      expect(textOf(form.body)).toContain('Ihre E-Mail-Adresse wird Ihr Benutzername.');
      const email = newEmail();
      const sent = await agent.submit(formAction(form.body), {
        uid: /name="uid" value="([^"]+)"/.exec(form.body)![1]!,
        email,
        password: PASSWORD,
        confirm: PASSWORD,
      });
      expect(textOf(sent.body)).toContain('Sehen Sie in Ihr Postfach');
      expect((await waitForMail(sink, email, 1)).subject).toBe('Bestätigen Sie Ihre E-Mail-Adresse für Example ID');
    });

    test('throttled per client address (told, 429) and per email address (silently: no more emails)', async () => {
      const email = newEmail();
      for (let i = 0; i < SIGN_UP_PER_EMAIL.points; i++) expect((await signUp(new UserAgent(server.issuer), email)).status).toBe(200);
      const silent = await signUp(new UserAgent(server.issuer), email);
      expect(silent.status).toBe(200);
      await waitForMail(sink, email, SIGN_UP_PER_EMAIL.points);
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.to(email)).toHaveLength(SIGN_UP_PER_EMAIL.points);
      expect((await listAudit(services.db, { type: 'signup.throttled' })).some((e) => (e.details as { scope?: string }).scope === 'email')).toBe(true);

      for (let i = SIGN_UP_PER_EMAIL.points + 1; i < SIGN_UP_PER_CLIENT.points; i++)
        expect((await signUp(new UserAgent(server.issuer), newEmail())).status).toBe(200);
      const refused = await signUp(new UserAgent(server.issuer), newEmail());
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(textOf(refused.body)).toContain('Too many requests from your network.');
    });
  });
}
