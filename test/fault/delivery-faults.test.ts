/**
 * Codes that must leave by email or text message, when the way out is broken:
 * the mail server down, the mail server hanging (before greeting, or after
 * taking the message), the SMS gateway slow (inside SMS_WEBHOOK_TIMEOUT, and
 * beyond it). Real peers: an SMTP server (`smtp-server`) and an HTTP gateway
 * in the test process.
 *
 * Expected: a clear page within the timeout (never a hang, never a 500);
 * nothing half-enrolled or half-sent (no credential, no stored code); and
 * the page tells the truth (finding 11): "nothing was sent" only when nothing
 * was, and after no answer in time, that the message may still arrive and
 * its code will not work, which it then does not.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { startSmsGateway, type SmsGateway } from '../helpers/sms-gateway.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';
/** nodemailer's timeouts in Twofold (connect, greeting, silence): 10 s. */
const SMTP_TIMEOUT_MS = 10_000;
const SMS_TIMEOUT_SECONDS = 5;
/**
 * What "within the timeout" can mean on a loaded CI machine without timing the machine: the answer came before
 * a peer that hangs for this long would have let it (a hang has no end at all).
 */
const HANG_MS = 25_000;

const textOf = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#x27;/g, "'")
    .replace(/\s+/g, ' ');
const uidOf = (page: Hop) => /\/interaction\/([^/?"]+)/.exec(page.body)![1]!;

describe('delivery faults', () => {
  let database: TestDatabase;
  let downSmtp: string;
  let takesAndHangs: MailSink;
  let neverGreets: MailSink;
  let gateway: SmsGateway;
  const servers: Record<'down' | 'data' | 'greeting' | 'sms', { server: TestServer; rp: RelyingParty }> = {} as never;
  let users = 0;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    // A mail server that is down: its port answers nothing.
    const gone = await startMailSink();
    downSmtp = gone.url;
    await gone.close();
    takesAndHangs = await startMailSink();
    takesAndHangs.hang = 'data';
    neverGreets = await startMailSink();
    neverGreets.hang = 'greeting';
    gateway = await startSmsGateway();
    const base = { MFA: 'required', ISSUER_NAME: 'Example ID' };
    const configs = {
      down: { ...base, SMTP_URL: downSmtp },
      data: { ...base, SMTP_URL: takesAndHangs.url },
      greeting: { ...base, SMTP_URL: neverGreets.url },
      sms: { ...base, SMS_WEBHOOK_URL: gateway.url, SMS_WEBHOOK_SECRET: gateway.secret, SMS_WEBHOOK_TIMEOUT: String(SMS_TIMEOUT_SECONDS) },
    };
    let app: { clientId: string; clientSecret: string | null } | undefined;
    for (const [name, env] of Object.entries(configs) as Array<[keyof typeof configs, Record<string, string>]>) {
      const server = await startTestServer(database, env);
      app ??= await createClient(server.opened.services.db, server.opened.services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      servers[name] = { server, rp: await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT) };
    }
  }, 60_000);

  afterAll(async () => {
    for (const { server } of Object.values(servers)) await server.close();
    await takesAndHangs?.close();
    await neverGreets?.close();
    await gateway?.close();
    await database?.close();
  });

  const services = () => servers.down.server.opened.services;
  const codeRows = (accountId: string) => services().db.selectFrom('challenge_codes').select('id').where('account_id', '=', accountId).execute();

  /** A new account without factors (MFA=required: it enrols inside the sign-in), signed in with its password. */
  async function signInNew(name: keyof typeof servers, phone?: string) {
    const n = ++users;
    const username = `delivery-${n}`;
    const email = `${username}@example.test`;
    const account = await createAccount(services().db, services().hasher, { username, email, password: 'a long password' });
    if (phone) await services().factors.store.insert(account.id, 'sms-code', { label: 'Phone', secret: phone, data: { channel: 'sms' } });
    const { server, rp } = servers[name];
    const agent = new UserAgent(server.issuer);
    const auth = await rp.authorizationUrl();
    const login = await agent.follow(auth.url);
    const next = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
    return { account, email, agent, auth, next, rp };
  }

  /** Starts the email-code enrolment and asks for the code to be sent; how long the answer took. */
  async function enrolEmail(name: 'down' | 'data' | 'greeting') {
    const user = await signInNew(name);
    const choose = await user.agent.follow(`/interaction/${uidOf(user.next)}?factor=email-code`);
    expect(choose.body).toContain('Email address');
    const started = Date.now();
    const sent = await user.agent.submit(formAction(choose.body), { email: user.email, action: 'send' });
    return { ...user, choose, sent, ms: Date.now() - started };
  }

  /** Nothing half-enrolled: no credential, no stored code, and the address is asked for again. */
  async function expectNothingStored(accountId: string, page: Hop) {
    expect(await services().factors.store.list(accountId)).toEqual([]);
    expect(await codeRows(accountId)).toEqual([]);
    expect(page.body).toContain('name="email"');
  }

  test('the mail server down: at once, a page saying nothing was sent; nothing enrolled', async () => {
    const { account, sent, ms } = await enrolEmail('down');
    expect(sent.status).toBe(503);
    expect(textOf(sent.body)).toContain('We could not send the email just now. Nothing was sent');
    expect(ms).toBeLessThan(SMTP_TIMEOUT_MS);
    await expectNothingStored(account.id, sent);
  });

  test('the mail server hanging: within the timeout, a page that tells the truth either way; nothing enrolled; a new code works once it answers', async () => {
    // Both at once (each waits out the 10 s timeout): one never greets, one takes the message and goes quiet.
    const [quiet, silent] = await Promise.all([enrolEmail('data'), enrolEmail('greeting')]);
    for (const { sent, ms } of [quiet, silent]) {
      expect(sent.status).toBe(503);
      expect(ms).toBeGreaterThanOrEqual(SMTP_TIMEOUT_MS - 100);
      expect(ms).toBeLessThan(HANG_MS);
    }
    // Never greeted: nothing left, and the page says so.
    expect(neverGreets.to(silent.email)).toHaveLength(0);
    expect(textOf(silent.sent.body)).toContain('We could not send the email just now. Nothing was sent');
    await expectNothingStored(silent.account.id, silent.sent);
    // Took the message, then silence: it may arrive, and the page does not claim otherwise.
    expect(takesAndHangs.to(quiet.email)).toHaveLength(1);
    expect(textOf(quiet.sent.body)).toContain('The mail server did not answer in time, so the email may or may not arrive. If it does, its code will not work');
    expect(textOf(quiet.sent.body)).not.toContain('Nothing was sent');
    await expectNothingStored(quiet.account.id, quiet.sent);

    // As the page says, the code in that email does not work; once the server answers again, a new one does.
    const late = takesAndHangs.latestCode(quiet.email);
    takesAndHangs.hang = undefined;
    const again = await quiet.agent.submit(formAction(quiet.sent.body), { email: quiet.email, action: 'send' });
    expect(again.status).toBe(200);
    const fresh = takesAndHangs.latestCode(quiet.email);
    expect(fresh).not.toBe(late);
    const refused = await quiet.agent.submit(formAction(again.body), { code: late });
    expect(refused.status).toBe(400);
    expect(await services().factors.store.list(quiet.account.id)).toEqual([]);
    const enrolled = await quiet.agent.submit(formAction(refused.body), { code: fresh });
    expect(enrolled.body).toContain('Save your backup codes');
    expect((await services().factors.store.list(quiet.account.id)).map((c) => c.factorId)).toEqual(['email-code']);
  }, 60_000);

  test('a slow SMS gateway, inside SMS_WEBHOOK_TIMEOUT: the code is sent and signs in', async () => {
    const phone = '+447700900201';
    const { account, agent, auth, next, rp } = await signInNew('sms', phone);
    gateway.mode = 'slow';
    gateway.delayMs = 1000;
    try {
      const started = Date.now();
      const sent = await agent.submit(formAction(next.body), { action: 'send' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(gateway.delayMs - 50);
      expect(sent.status).toBe(200);
      expect(textOf(sent.body)).toContain('We texted a code to');
      const done = await agent.submit(formAction(sent.body), { code: gateway.latestCode(phone) });
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toContain('sms');
      expect(await codeRows(account.id)).toHaveLength(1);
    } finally {
      gateway.mode = 'ok';
    }
  });

  test('an SMS gateway slower than SMS_WEBHOOK_TIMEOUT: the page does not claim "Nothing was sent"; the late text\'s code does not work, a new one does', async () => {
    const phone = '+447700900202';
    const { account, agent, auth, next, rp } = await signInNew('sms', phone);
    gateway.mode = 'slow';
    gateway.delayMs = HANG_MS;
    let failed: Hop;
    const started = Date.now();
    try {
      failed = await agent.submit(formAction(next.body), { action: 'send' });
    } finally {
      gateway.mode = 'ok';
    }
    // Cut off by SMS_WEBHOOK_TIMEOUT, not by the gateway's answer.
    expect(Date.now() - started).toBeGreaterThanOrEqual(SMS_TIMEOUT_SECONDS * 1000 - 100);
    expect(Date.now() - started).toBeLessThan(HANG_MS);
    expect(failed.status).toBe(503);
    const said = textOf(failed.body);
    expect(said).toContain('The text message service did not answer in time, so the text may or may not arrive. If it does, its code will not work');
    expect(said).not.toContain('Nothing was sent');
    expect(await codeRows(account.id)).toEqual([]);
    // The gateway did get it (and would deliver it): its code is refused, as the page said.
    const late = gateway.latestCode(phone);
    const refused = await agent.request(`/interaction/${uidOf(failed)}/factor/sms-code`, { form: { code: late } });
    expect(refused.status).toBe(401);
    // Asking again works, and only the new code signs in.
    const sent = await agent.submit(formAction(failed.body), { action: 'send' });
    expect(sent.status).toBe(200);
    const fresh = gateway.latestCode(phone);
    const done = await agent.submit(formAction(sent.body), { code: fresh });
    expect((await rp.redeem(done.location!, auth)).claims()!.amr).toContain('sms');
  });
});
