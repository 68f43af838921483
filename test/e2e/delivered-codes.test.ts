/**
 * Emailed and texted codes end to end, with openid-client as the app: a real
 * SMTP server in the test process receives the mail, a local HTTP gateway
 * checks the webhook's signature and body, and the user types the delivered
 * code. Expiry, the try limit (carried over to a new code), replay, the resend
 * cooldown, and a mail server or gateway that fails or hangs (a clear page,
 * nothing left half-done). Also: the configured lifetime (stored and shown),
 * the factor used last preselected, an essential level 3 that an email code
 * cannot reach, and an app whose policy leaves these factors out.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { startSmsGateway, type SmsGateway } from '../helpers/sms-gateway.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
let userCount = 0;

let sink: MailSink;
let gateway: SmsGateway;
beforeAll(async () => {
  sink = await startMailSink();
  gateway = await startSmsGateway();
});
afterAll(async () => {
  await sink?.close();
  await gateway?.close();
});

const uidOf = (page: Hop) => /\/interaction\/([^/?"]+)/.exec(page.body)![1]!;
const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#x27;/g, "'")
    .replace(/\s+/g, ' ');

for (const kind of DIALECTS) {
  describe(`emailed and texted codes on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer; // cooldown 60 s, 5 tries; voice calls on
    let strict: TestServer; // same database: 3 tries, no cooldown, email codes valid 5 minutes
    let services: Services;
    let rp: RelyingParty;
    let rpStrict: RelyingParty;
    let rpTotpOrKey: RelyingParty; // an app whose policy counts only totp and webauthn

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      const channels = {
        SMTP_URL: sink.url,
        MAIL_FROM: 'Example ID <id@example.test>',
        BRAND_NAME: 'Example ID',
        SMS_WEBHOOK_URL: gateway.url,
        SMS_WEBHOOK_SECRET: gateway.secret,
        SMS_WEBHOOK_TIMEOUT: '1',
      };
      server = await startTestServer(database, { ...channels, FACTOR_SETTINGS: JSON.stringify({ 'sms-code': { voice: true } }) });
      strict = await startTestServer(database, { ...channels, FACTOR_SETTINGS: JSON.stringify({ 'email-code': { attempts: 3, cooldown: 0, ttl: 300 } }) });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      rpStrict = await relyingParty(strict.issuer, app.clientId, app.clientSecret, REDIRECT);
      const narrow = await createClient(services.db, services.sealer, { name: 'Ledger', redirectUris: [REDIRECT], firstParty: true });
      await services.db
        .updateTable('clients')
        .set({ policy: JSON.stringify({ factors: ['totp', 'webauthn'] }) })
        .where('client_id', '=', narrow.clientId)
        .execute();
      rpTotpOrKey = await relyingParty(server.issuer, narrow.clientId, narrow.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      gateway.mode = 'ok';
      sink.refuseWith = undefined;
      await server?.close();
      await strict?.close();
      await database?.close();
    });

    async function newUser(options: { email?: boolean; phone?: boolean } = {}) {
      const n = ++userCount;
      const username = `${kind}-codes-${n}`;
      const email = `${username}@example.test`;
      const phone = `+4477009${String(n).padStart(5, '0')}`;
      const account = await createAccount(services.db, services.hasher, { username, email, password: 'a long password' });
      if (options.email) await services.factors.store.insert(account.id, 'email-code', { label: 'Email', secret: email, data: { channel: 'email' } });
      if (options.phone) await services.factors.store.insert(account.id, 'sms-code', { label: 'Phone', secret: phone, data: { channel: 'sms' } });
      return { account, username, email, phone };
    }

    async function password(agent: UserAgent, relying: RelyingParty, username: string, extra: Record<string, string> = {}) {
      const auth = await relying.authorizationUrl(extra);
      const page = await agent.follow(auth.url);
      const next = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      return { auth, next };
    }

    /** Presses a button of the page's form that posts `action` (send a code, send a new one, call instead). */
    function press(agent: UserAgent, page: Hop, action: string, fields: Record<string, string> = {}) {
      return agent.submit(formAction(page.body), { ...fields, action });
    }

    async function codeRows(accountId: string) {
      return services.db.selectFrom('challenge_codes').selectAll().where('account_id', '=', accountId).orderBy('created_at').execute();
    }

    test('email: the address is proved inside the sign-in, then every sign-in asks for an emailed code (amr otp, level 2)', async () => {
      const { account, username, email } = await newUser();
      expect(account.email_verified).toBe(false);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, rp, username, { acr_values: MFA_ACR });
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).toContain('Use Email code instead');
      const choose = await agent.follow(`/interaction/${uidOf(next)}?factor=email-code`);
      // The account's address is offered; nothing is sent until the user asks.
      expect(choose.body).toContain(`value="${email}"`);
      expect(sink.to(email)).toHaveLength(0);

      const sent = await press(agent, choose, 'send', { email });
      expect(textOf(sent.body)).toContain(`We emailed a code to ${email}`);
      const [mail] = sink.to(email);
      expect(mail!.from).toBe('id@example.test');
      expect(mail!.raw).toMatch(/^From: Example ID <id@example\.test>/m);
      expect(mail!.subject).toBe('Confirm your email address for Example ID');
      expect(mail!.raw).toMatch(/Content-Type: text\/plain/);
      expect(mail!.raw).toMatch(/Content-Type: text\/html/);

      const wrong = await agent.submit(formAction(sent.body), { code: '000000' === sink.latestCode(email) ? '111111' : '000000' });
      expect(wrong.status).toBe(400);
      expect(wrong.body).toContain('4 tries left');
      const codes = await agent.submit(formAction(wrong.body), { code: sink.latestCode(email) });
      expect(codes.body).toContain('Save your backup codes');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      const first = (await rp.redeem(done.location!, auth)).claims()!;
      expect(first.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(first.acr).toBe(MFA_ACR);
      // The code proved the account's own address: email_verified is now true, and audited.
      await expect(services.db.selectFrom('accounts').select('email_verified').where('id', '=', account.id).executeTakeFirst()).resolves.toEqual({
        email_verified: true,
      });
      expect((await listAudit(services.db, { accountId: account.id })).map((e) => e.type)).toContain('account.email_verified');

      // The next sign-in asks for a code by email (the factor used last), sent when the user presses the button.
      const again = new UserAgent(server.issuer);
      const second = await password(again, rp, username);
      expect(second.next.body).toContain('Two-step verification');
      expect(textOf(second.next.body)).toContain(`We will email a code to ${email[0]}•••@example.test`);
      expect(second.next.body).toContain('Email me a code');
      // Between the two codes, the account's address heard of the two methods added (security notices).
      expect(
        sink
          .to(email)
          .slice(1)
          .map((m) => m.subject),
      ).toEqual(['A sign-in method was added to your Example ID account', 'A sign-in method was added to your Example ID account']);
      const challenge = await press(again, second.next, 'send');
      expect(sink.to(email)).toHaveLength(4);
      expect(sink.to(email)[3]!.subject).toBe('Your sign-in code for Example ID');
      const signedIn = await again.submit(formAction(challenge.body), { code: sink.latestCode(email) });
      const claims = (await rp.redeem(signedIn.location!, second.auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.acr).toBe('urn:twofold:acr:2');
      const stored = await codeRows(claims.sub);
      // Only keyed hashes are stored, never the code.
      expect(stored.map((r) => r.code_hash)).not.toContain(sink.latestCode(email));
      expect(stored.every((r) => /^[A-Za-z0-9_-]{43}$/.test(r.code_hash))).toBe(true);
    });

    test("a German sign-in (ui_locales=de) gets its emailed and texted codes in German, and the factor's words and failures; an English one English", async () => {
      const { username, email, phone } = await newUser({ email: true, phone: true });
      const german = new UserAgent(server.issuer);
      const de = await password(german, rp, username, { ui_locales: 'de' });
      expect(textOf(de.next.body)).toContain(`Wir senden einen Code an ${email[0]}•••@example.test`);
      expect(de.next.body).toContain('Code per E-Mail senden');
      const sent = await press(german, de.next, 'send');
      expect(textOf(sent.body)).toContain(`Wir haben einen Code an ${email[0]}•••@example.test gesendet. Er ist 10 Minuten lang gültig.`);
      expect(sent.body).toContain('Neuen Code senden');
      const [mail] = sink.to(email);
      expect(mail!.subject).toBe('Ihr Anmeldecode für Example ID');
      expect(mail!.decoded).toContain('Mit diesem Code schließen Sie die Anmeldung bei Example ID ab:');
      expect(mail!.decoded).toContain('Er ist 10 Minuten lang gültig und funktioniert nur einmal.');
      expect(mail!.decoded).not.toMatch(/It expires|finish signing in/);
      const code = sink.latestCode(email);
      const wrong = await german.submit(formAction(sent.body), { code: code === '000000' ? '111111' : '000000' });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('Dieser Code ist nicht richtig. Noch 4 Versuche.');

      // The text message too: another factor of the same sign-in, the same language.
      const bySms = await german.follow(`/interaction/${uidOf(de.next)}?factor=sms-code`);
      expect(bySms.body).toContain('Code per SMS senden');
      await press(german, bySms, 'send');
      const texted = gateway.requests.filter((r) => r.body.to === phone).at(-1)!.body;
      expect(texted).toMatchObject({
        language: 'de',
        message: expect.stringMatching(/^\d{6} ist Ihr Anmeldecode für Example ID\. Er ist 10 Minuten lang gültig\. Geben Sie ihn nicht weiter\.\n\n@/),
      });

      const { username: other, email: otherEmail, phone: otherPhone } = await newUser({ email: true, phone: true });
      const english = new UserAgent(server.issuer);
      const en = await password(english, rp, other);
      await press(english, en.next, 'send');
      const [englishMail] = sink.to(otherEmail);
      expect(englishMail!.subject).toBe('Your sign-in code for Example ID');
      expect(englishMail!.decoded).toContain('Use this code to finish signing in to Example ID:');
      expect(englishMail!.decoded).not.toMatch(/gültig|Anmeld/);
      await press(english, await english.follow(`/interaction/${uidOf(en.next)}?factor=sms-code`), 'send');
      expect(gateway.requests.filter((r) => r.body.to === otherPhone).at(-1)!.body).toMatchObject({
        language: 'en',
        message: expect.stringMatching(/^\d{6} is your Example ID sign-in code\./),
      });
    });

    test('a code lives for the configured ttl: the stored expiry and the page agree (10 minutes by default, 5 when set)', async () => {
      for (const [provider, relying, minutes] of [
        [server, rp, 10],
        [strict, rpStrict, 5],
      ] as const) {
        const { account, username } = await newUser({ email: true });
        const agent = new UserAgent(provider.issuer);
        const { next } = await password(agent, relying, username);
        const before = Date.now();
        const page = await press(agent, next, 'send');
        const after = Date.now();
        expect(textOf(page.body)).toContain(`It expires in ${minutes} minutes.`);
        // The stored expiry is the ttl after the moment the code was made (between the click and its answer).
        const [row] = await codeRows(account.id);
        expect(row!.expires_at.getTime()).toBeGreaterThanOrEqual(before + minutes * 60_000);
        expect(row!.expires_at.getTime()).toBeLessThanOrEqual(after + minutes * 60_000);
        // The code is accepted while it lives.
        expect((await agent.submit(formAction(page.body), { code: sink.latestCode(`${username}@example.test`) })).location).toMatch(/callback\?code=/);
      }
    });

    test('the factor used last is preselected at the next sign-in (email code, then the authenticator app)', async () => {
      const { account, username, email } = await newUser({ email: true });
      const secret = await enrolTotp(services, account.id);
      const formFactor = (page: Hop) => /action="\/interaction\/[^/]+\/factor\/([^"]+)"/.exec(page.body)![1];
      // Nothing used yet: the first in page order.
      const first = await password(new UserAgent(server.issuer), rp, username);
      expect(formFactor(first.next)).toBe('totp');

      const byEmail = new UserAgent(server.issuer);
      const one = await password(byEmail, rp, username);
      const chosen = await byEmail.follow(`/interaction/${uidOf(one.next)}?factor=email-code`);
      const sent = await press(byEmail, chosen, 'send');
      await rp.redeem((await byEmail.submit(formAction(sent.body), { code: sink.latestCode(email) })).location!, one.auth);

      const next = new UserAgent(server.issuer);
      const two = await password(next, rp, username);
      expect(formFactor(two.next)).toBe('email-code');
      expect(two.next.body).toContain('Use Authenticator app instead');
      const byApp = await next.follow(`/interaction/${uidOf(two.next)}?factor=totp`);
      await rp.redeem((await next.submit(formAction(byApp.body), { code: totpCode(secret) })).location!, two.auth);

      const third = await password(new UserAgent(server.issuer), rp, username);
      expect(formFactor(third.next)).toBe('totp');
      expect(third.next.body).toContain('Use Email code instead');
    });

    test('an essential phishing-resistant acr with only an email code enrolled returns unmet_authentication_requirements; nothing is sent', async () => {
      const { username, email } = await newUser({ email: true });
      const agent = new UserAgent(server.issuer);
      const claims = JSON.stringify({ id_token: { acr: { essential: true, values: ['http://schemas.openid.net/pape/policies/2007/06/phishing-resistant'] } } });
      const { next } = await password(agent, rp, username, { claims });
      const url = new URL(next.location!);
      expect(`${url.origin}${url.pathname}`).toBe(REDIRECT);
      expect(url.searchParams.get('error')).toBe('unmet_authentication_requirements');
      expect(sink.to(email)).toHaveLength(0);
    });

    test('an app whose policy counts only totp and webauthn offers neither email nor SMS codes, and posting to them is refused', async () => {
      const { account, username, email, phone } = await newUser({ email: true, phone: true });
      const secret = await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, rpTotpOrKey, username);
      expect(formAction(next.body)).toMatch(/\/factor\/totp$/);
      expect(next.body).not.toContain('Email code');
      expect(next.body).not.toContain('Text message');
      const uid = uidOf(next);
      // Asking for the page by hand shows the allowed factor instead.
      expect(formAction((await agent.follow(`/interaction/${uid}?factor=email-code`)).body)).toMatch(/\/factor\/totp$/);
      const sentBefore = gateway.requests.length;
      for (const factor of ['email-code', 'sms-code']) {
        for (const form of [{ action: 'send' }, { code: '123456' }] as Array<Record<string, string>>) {
          const refused = await agent.request(`/interaction/${uid}/factor/${factor}`, { form });
          expect(refused.status).toBe(302);
          expect(refused.location).toBe(`${server.issuer}/interaction/${uid}`);
        }
      }
      expect(sink.to(email)).toHaveLength(0);
      expect(gateway.requests.length).toBe(sentBefore);
      expect(gateway.requests.filter((r) => r.body.to === phone)).toHaveLength(0);
      expect(await codeRows(account.id)).toEqual([]);
      // The allowed factor still completes the sign-in.
      const done = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      expect((await rpTotpOrKey.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('an expired code is refused; a new one works', async () => {
      const { account, username, email } = await newUser({ email: true });
      const agent = new UserAgent(strict.issuer);
      const { auth, next } = await password(agent, rpStrict, username);
      const page = await press(agent, next, 'send');
      const code = sink.latestCode(email);
      await services.db
        .updateTable('challenge_codes')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('account_id', '=', account.id)
        .execute();
      const expired = await agent.submit(formAction(page.body), { code });
      expect(expired.status).toBe(401);
      expect(expired.body).toContain('That code has expired. Ask for a new one.');
      const resent = await press(agent, expired, 'send');
      const fresh = sink.latestCode(email);
      expect(fresh).not.toBe(code);
      const done = await agent.submit(formAction(resent.body), { code: fresh });
      expect((await rpStrict.redeem(done.location!, auth)).claims()!.amr).toContain('otp');
    });

    test('the try limit holds per code and a new code never resets it; the right code is then refused until the old one would have expired', async () => {
      const { account, username, email } = await newUser({ email: true });
      const agent = new UserAgent(strict.issuer);
      const { auth, next } = await password(agent, rpStrict, username);
      let page = await press(agent, next, 'send');
      const wrongFor = (code: string) => (code === '123456' ? '654321' : '123456');
      page = await agent.submit(formAction(page.body), { code: wrongFor(sink.latestCode(email)) });
      expect(page.body).toContain('2 tries left');
      page = await agent.submit(formAction(page.body), { code: wrongFor(sink.latestCode(email)) });
      expect(page.body).toContain('1 try left');
      // A new code inherits the tries spent: one left, not three.
      page = await press(agent, page, 'resend');
      page = await agent.submit(formAction(page.body), { code: wrongFor(sink.latestCode(email)) });
      expect(page.body).toContain('that was the last try');
      const right = await agent.submit(formAction(page.body), { code: sink.latestCode(email) });
      expect(right.status).toBe(429);
      expect(right.body).toContain('Too many wrong tries for this code');
      const refused = await press(agent, right, 'resend');
      expect(refused.status).toBe(429);
      expect(refused.body).toMatch(/Too many wrong codes\. You can ask for a new code in \d+ minutes/);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(60);

      // Once the spent code's lifetime is over, a new code starts afresh.
      await services.db
        .updateTable('challenge_codes')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('account_id', '=', account.id)
        .execute();
      page = await press(agent, refused, 'resend');
      const done = await agent.submit(formAction(page.body), { code: sink.latestCode(email) });
      expect(done.location).toMatch(/callback\?code=/);
      await rpStrict.redeem(done.location!, auth);
      const failures = await listAudit(services.db, { accountId: account.id, type: 'factor.failed' });
      expect(failures.length).toBe(4);
    });

    test('a code accepted once is refused in the next sign-in', async () => {
      const { username, email } = await newUser({ email: true });
      const first = new UserAgent(server.issuer);
      const one = await password(first, rp, username);
      const page = await press(first, one.next, 'send');
      const code = sink.latestCode(email);
      const done = await first.submit(formAction(page.body), { code });
      await rp.redeem(done.location!, one.auth);

      const second = new UserAgent(server.issuer);
      const two = await password(second, rp, username);
      const uid = uidOf(two.next);
      const replay = await second.submit(`/interaction/${uid}/factor/email-code`, { code });
      expect(replay.status).toBe(401);
      expect(replay.body).toContain('That code was already used');
    });

    test('a new code is refused during the cooldown, with Retry-After', async () => {
      const { username, email } = await newUser({ email: true });
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, rp, username);
      const page = await press(agent, next, 'send');
      const soon = await press(agent, page, 'resend');
      expect(soon.status).toBe(429);
      expect(soon.body).toMatch(/A code was just sent\. You can ask for another one in \d+ seconds\./);
      expect(Number(soon.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(sink.to(email)).toHaveLength(1);
      // The code already sent still works.
      const done = await agent.submit(formAction(soon.body), { code: sink.latestCode(email) });
      expect(done.location).toMatch(/callback\?code=/);
    });

    test('one emailed code submitted 30 times at once is accepted exactly once', async () => {
      const { account, email } = await newUser({ email: true });
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const state = (i: number) => new InteractionState(services.db, services.sealer, `oob-parallel-${kind}-${i}`);
      const [credential] = await services.factors.store.list(account.id, 'email-code');
      const sent = await services.factors.act('email-code', 'challenge', account, state(0), 'send', {}, { ip: '203.0.113.9' });
      expect(sent.ok).toBe(true);
      const code = sink.latestCode(email);
      const codes = services.factors.outOfBand.for('email-code', account.id);
      const outcomes = await Promise.all(Array.from({ length: 30 }, () => codes.check(credential!.id, code)));
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    });

    test('proving another address than the account’s own leaves email_verified alone', async () => {
      const { account, username } = await newUser();
      const other = `${username}-elsewhere@example.test`;
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, rp, username, { acr_values: MFA_ACR });
      const choose = await agent.follow(`/interaction/${uidOf(next)}?factor=email-code`);
      const sent = await press(agent, choose, 'send', { email: other });
      const codes = await agent.submit(formAction(sent.body), { code: sink.latestCode(other) });
      expect(codes.body).toContain('Save your backup codes');
      expect((await services.factors.store.list(account.id, 'email-code')).map((c) => c.secret)).toEqual([other]);
      await expect(services.db.selectFrom('accounts').select('email_verified').where('id', '=', account.id).executeTakeFirst()).resolves.toEqual({
        email_verified: false,
      });
    });

    test('enrolling an address that belongs to another account looks exactly like any other address', async () => {
      const owner = await newUser();
      const a = await newUser();
      const b = await newUser();
      const show = async (user: { username: string }, address: string) => {
        const agent = new UserAgent(server.issuer);
        const { next } = await password(agent, rp, user.username, { acr_values: MFA_ACR });
        const choose = await agent.follow(`/interaction/${uidOf(next)}?factor=email-code`);
        const sent = await press(agent, choose, 'send', { email: address });
        return {
          status: sent.status,
          text: textOf(sent.body)
            .replace(address, 'ADDRESS')
            .replace(/\/interaction\/[^/"?]+/g, ''),
        };
      };
      const taken = await show(a, owner.email);
      const fresh = await show(b, 'nobody-has-this@example.test');
      expect(taken).toEqual(fresh);
      expect(sink.to(owner.email)).toHaveLength(1);
    });

    test('sms: the number is proved at enrolment through the signed webhook, then a text message or a call signs in (amr sms, tel)', async () => {
      const { username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { auth, next } = await password(agent, rp, username, { acr_values: MFA_ACR });
      const choose = await agent.follow(`/interaction/${uidOf(next)}?factor=sms-code`);
      expect(choose.body).toContain('Mobile number');
      const bad = await press(agent, choose, 'send', { phone: '07700 900' });
      expect(bad.status).toBe(400);
      expect(bad.body).toContain('with + and the country code');
      const before = gateway.requests.length;
      const sent = await press(agent, bad, 'send', { phone: '+44 (0)7700-900 123'.replace('(0)', '') });
      expect(gateway.requests.length).toBe(before + 1);
      const request = gateway.requests.at(-1)!;
      expect(request.signatureValid).toBe(true);
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.body).toMatchObject({
        channel: 'sms',
        to: '+447700900123',
        purpose: 'enroll',
        issuer: server.issuer,
        code: expect.stringMatching(/^\d{6}$/),
      });
      expect(request.body.id).toEqual(expect.any(String));
      expect(Date.parse(String(request.body.expiresAt))).toBeGreaterThan(Date.now());
      const code = String(request.body.code);
      // The text carries the code, and the origin-bound line browsers use to fill it in on this site only.
      expect(request.body.message).toContain(`${code} is your Example ID confirmation code`);
      expect(request.body.message).toContain(`@localhost #${code}`);
      // A tampered body does not verify: the signature covers it.
      const { verify } = await import('../helpers/sms-gateway.ts');
      expect(verify(gateway.secret, request.headers['twofold-signature'] as string, request.raw.replace(code, '000000'))).toBe(false);

      expect(textOf(sent.body)).toContain('We texted a code to +447700900123');
      const codes = await agent.submit(formAction(sent.body), { code });
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'sms', 'mfa']));

      // Next time, a call instead of a text: the gateway gets channel voice and words to read out.
      const again = new UserAgent(server.issuer);
      const second = await password(again, rp, username);
      expect(textOf(second.next.body)).toContain('We will text a code to your phone number •••• 0123');
      const called = await press(again, second.next, 'call');
      const call = gateway.requests.at(-1)!;
      expect(call.body).toMatchObject({ channel: 'voice', to: '+447700900123', purpose: 'sign-in' });
      expect(call.body.message).toContain(String(call.body.code).split('').join(' '));
      expect(called.body).toContain('We are calling');
      const signedIn = await again.submit(formAction(called.body), { code: String(call.body.code) });
      const claims = (await rp.redeem(signedIn.location!, second.auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'tel', 'mfa']));
      expect(claims.amr).not.toContain('sms');
    });

    for (const failure of ['fail', 'hang'] as const) {
      test(`a gateway that ${failure === 'fail' ? 'answers 500' : 'does not answer'} gets the user a clear page and leaves nothing half-done`, async () => {
        const { account, username, phone } = await newUser({ phone: true });
        const agent = new UserAgent(server.issuer);
        const { auth, next } = await password(agent, rp, username);
        gateway.mode = failure;
        const started = Date.now();
        const failed = await press(agent, next, 'send');
        gateway.mode = 'ok';
        expect(failed.status).toBe(503);
        // A gateway that answered 500 did not take it; one that did not answer may have (finding 11): the page says so.
        if (failure === 'fail') expect(failed.body).toContain('We could not send the text message just now. Nothing was sent');
        else {
          expect(failed.body).toContain(
            'The text message service did not answer in time, so the text may or may not arrive. If it does, its code will not work',
          );
          expect(failed.body).not.toContain('Nothing was sent');
        }
        if (failure === 'hang') expect(Date.now() - started).toBeLessThan(5000);
        // Nothing stored, no code waiting, the page still offers to send one, and the cooldown was not spent.
        expect(await codeRows(account.id)).toEqual([]);
        expect(failed.body).toContain('Text me a code');
        expect((await listAudit(services.db, { accountId: account.id, type: 'factor.delivery_failed' })).length).toBe(1);
        const sent = await press(agent, failed, 'send');
        expect(sent.status).toBe(200);
        const done = await agent.submit(formAction(sent.body), { code: gateway.latestCode(phone) });
        expect((await rp.redeem(done.location!, auth)).claims()!.amr).toContain('sms');
      });
    }

    test('a gateway failure during enrolment stores nothing: the number is asked again', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, rp, username, { acr_values: MFA_ACR });
      const choose = await agent.follow(`/interaction/${uidOf(next)}?factor=sms-code`);
      gateway.mode = 'fail';
      const failed = await press(agent, choose, 'send', { phone: '+15555550123' });
      gateway.mode = 'ok';
      expect(failed.status).toBe(503);
      expect(failed.body).toContain('Mobile number');
      expect(await codeRows(account.id)).toEqual([]);
      expect(await services.factors.store.list(account.id)).toEqual([]);
      const refreshed = await agent.follow(`/interaction/${uidOf(next)}?factor=sms-code`);
      expect(refreshed.body).toContain('Mobile number');
    });

    test('a mail server that refuses the message gets the user a clear page; nothing is stored', async () => {
      const { account, username } = await newUser({ email: true });
      const agent = new UserAgent(server.issuer);
      const { next } = await password(agent, rp, username);
      sink.refuseWith = 451;
      const failed = await press(agent, next, 'send');
      sink.refuseWith = undefined;
      expect(failed.status).toBe(503);
      expect(failed.body).toContain('We could not send the email just now');
      expect(await codeRows(account.id)).toEqual([]);
    });
  });
}
