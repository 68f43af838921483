/**
 * Messaging without a database: which factors configuration turns on, the
 * refusals that stop the start (production without SMTP, a gateway without
 * its key, http in production), the development log with its marker, the
 * webhook's signature as docs/factors.md documents it, templates an operator
 * overrides, and messages written in the language of the person they are for
 * (through a real SMTP server and a real gateway). A German sign-in's codes
 * end to end: test/e2e/delivered-codes.test.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import { createMessaging, DeliveryError, DEV_CODE_MARKER, signWebhook, verifyWebhookSignature } from '../../src/messaging/index.ts';
import { smtpMailer } from '../../src/messaging/smtp-mailer.ts';
import { MessageTemplates, TEMPLATE_FILES } from '../../src/messaging/templates.ts';
import { parseEmail, maskEmail } from '../../factors/email-code/index.ts';
import { parsePhone, maskPhone } from '../../factors/sms-code/index.ts';
import { randomDigits } from '../../src/mfa/out-of-band.ts';
import { startMailSink } from '../helpers/mail-sink.ts';
import { startSmsGateway } from '../helpers/sms-gateway.ts';
import { Catalogue } from '../../src/i18n/catalogue.ts';

const KEY = crypto.randomBytes(32).toString('hex');
const SECRET = crypto.randomBytes(32).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-messaging-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const production = { NODE_ENV: 'production', SECRET_KEY: KEY, ISSUER: 'https://id.example.com' };

function refused(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('configuration', () => {
  test('email codes are on when SMTP is configured, off otherwise, unless asked for', () => {
    expect(loadConfig({}).emailDelivery).toBe('off');
    expect(loadConfig({ SMTP_URL: 'smtp://mail.example.com:587' }).emailDelivery).toBe('smtp');
    expect(loadConfig({ SMTP_URL: 'smtps://u:p@mail.example.com:465', EMAIL_CODES: 'off' }).emailDelivery).toBe('off');
    // Development without SMTP: the codes go to the log.
    expect(loadConfig({ EMAIL_CODES: 'on' }).emailDelivery).toBe('log');
    expect(loadConfig({ ...production, SMTP_URL: 'smtps://u:p@mail.example.com:465' }).emailDelivery).toBe('smtp');
  });

  test('production refuses email codes without SMTP, with a clear message', () => {
    const message = refused({ ...production, EMAIL_CODES: 'on' });
    expect(message).toContain('EMAIL_CODES');
    expect(message).toContain('SMTP_URL is not set');
    expect(message).toContain('never written to the log');
  });

  test('the SMS gateway needs its key, https in production, and an http(s) URL', () => {
    expect(loadConfig({}).SMS_WEBHOOK_URL).toBeUndefined();
    expect(refused({ SMS_WEBHOOK_URL: 'https://sms.example.com/hook' })).toContain('SMS_WEBHOOK_SECRET: required');
    expect(refused({ SMS_WEBHOOK_SECRET: SECRET })).toContain('SMS_WEBHOOK_URL');
    expect(refused({ SMS_WEBHOOK_URL: 'https://sms.example.com/hook', SMS_WEBHOOK_SECRET: 'short' })).toContain('at least 32 characters');
    expect(refused({ ...production, SMS_WEBHOOK_URL: 'http://sms.example.com/hook', SMS_WEBHOOK_SECRET: SECRET })).toContain('https:// in production');
    expect(loadConfig({ SMS_WEBHOOK_URL: 'http://127.0.0.1:9/hook', SMS_WEBHOOK_SECRET: SECRET }).SMS_WEBHOOK_TIMEOUT).toBe(10);
  });

  test('secrets in SMTP_URL and the webhook key are never echoed', () => {
    expect(refused({ SMTP_URL: 'imap://user:hunter2@mail.example.com' })).not.toContain('hunter2');
    expect(refused({ SMS_WEBHOOK_URL: 'https://sms.example.com', SMS_WEBHOOK_SECRET: 'hunter2-too-short' })).not.toContain('hunter2');
  });

  test('MAIL_FROM is one line', () => {
    expect(refused({ MAIL_FROM: 'a@example.com\r\nBcc: victim@example.com' })).toContain('MAIL_FROM');
  });
});

describe('the development log', () => {
  test('without SMTP_URL (EMAIL_CODES=on), the code is logged with an unmistakable marker instead of being sent', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    const messaging = createMessaging(loadConfig({ EMAIL_CODES: 'on', DATA_DIR: tmp }), { logger });
    expect(messaging.channels).toEqual(['email']);
    await messaging.sendCode({ channel: 'email', to: 'dev@example.test', code: '428913', purpose: 'sign-in', expiresAt: new Date(Date.now() + 600_000) });
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry.msg).toContain(DEV_CODE_MARKER);
    expect(entry.msg).toContain('428913');
    expect(entry.msg).toContain('dev@example.test');
    expect(entry.level).toBe(40);
  });

  test('no channel configured: nothing can be sent', async () => {
    const messaging = createMessaging(loadConfig({ DATA_DIR: tmp }));
    expect(messaging.channels).toEqual([]);
    await expect(messaging.sendCode({ channel: 'sms', to: '+15555550123', code: '123456', purpose: 'sign-in', expiresAt: new Date() })).rejects.toThrow(
      /no sms delivery/,
    );
  });
});

describe('SMTP failures', () => {
  test('a mail server that accepts the connection but never speaks is unreachable (nothing was sent), not a hang', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const { port } = silent.address() as net.AddressInfo;
    const mailer = smtpMailer({ url: `smtp://127.0.0.1:${port}`, from: 'a@example.test', timeoutMs: 300 });
    const started = Date.now();
    const err = await mailer.send({ to: 'b@example.test', subject: 's', text: 't', html: '<p>t</p>' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).kind).toBe('unreachable');
    expect(Date.now() - started).toBeLessThan(3000);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  test('a mail server that takes the message and then goes quiet is a timeout (it may have been sent), not a hang', async () => {
    const sink = await startMailSink();
    sink.hang = 'data';
    try {
      const mailer = smtpMailer({ url: sink.url, from: 'a@example.test', timeoutMs: 300 });
      const err = await mailer.send({ to: 'b@example.test', subject: 's', text: 't', html: '<p>t</p>' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DeliveryError);
      expect((err as DeliveryError).kind).toBe('timeout');
      // The server did get the whole message: "nothing was sent" would have been false.
      expect(sink.to('b@example.test')).toHaveLength(1);
    } finally {
      await sink.close();
    }
  });

  test('no server at all is unreachable', async () => {
    const mailer = smtpMailer({ url: 'smtp://127.0.0.1:9', from: 'a@example.test', timeoutMs: 2000 });
    const err = await mailer.send({ to: 'b@example.test', subject: 's', text: 't', html: '<p>t</p>' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).kind).toBe('unreachable');
  });
});

describe('webhook signature', () => {
  const body = JSON.stringify({ to: '+15555550123', message: '123456 is your code' });

  test('t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">, as docs/factors.md says', () => {
    const header = signWebhook(SECRET, body, 1_800_000_000);
    const expected = crypto.createHmac('sha256', SECRET).update(`1800000000.${body}`).digest('hex');
    expect(header).toBe(`t=1800000000,v1=${expected}`);
  });

  test('verifies a fresh signature, refuses a changed body, another key, an old timestamp and garbage', () => {
    const now = Math.floor(Date.now() / 1000);
    const header = signWebhook(SECRET, body, now);
    expect(verifyWebhookSignature(SECRET, header, body)).toBe(true);
    expect(verifyWebhookSignature(SECRET, header, body.replace('123456', '654321'))).toBe(false);
    expect(verifyWebhookSignature(crypto.randomBytes(32).toString('hex'), header, body)).toBe(false);
    expect(verifyWebhookSignature(SECRET, signWebhook(SECRET, body, now - 301), body)).toBe(false);
    for (const bad of [undefined, '', 't=abc,v1=00', `t=${now}`, `t=${now},v1=zz`]) expect(verifyWebhookSignature(SECRET, bad, body)).toBe(false);
  });
});

describe('templates', () => {
  const data = {
    lang: 'en',
    code: '428913',
    spokenCode: '4 2 8 9 1 3',
    minutes: 10,
    purpose: 'sign-in' as const,
    enroll: false,
    issuerName: 'Example <ID>',
    host: 'id.example.com',
    issuer: 'https://id.example.com',
  };

  test('the built-in messages carry the code, its lifetime and, in a text message, the origin-bound line', () => {
    const t = new MessageTemplates();
    const email = t.email(data);
    expect(email.subject).toBe('Your sign-in code for Example <ID>');
    expect(email.text).toMatch(/^\s+428913$/m);
    expect(email.text).toContain('expires in 10 minutes');
    expect(email.html).toContain('428913');
    // HTML is escaped; plain text is not.
    expect(email.html).toContain('Example &lt;ID&gt;');
    expect(t.sms(data)).toMatch(/^428913 is your Example <ID> sign-in code\. It expires in 10 minutes\./);
    expect(t.sms(data).split('\n').at(-1)).toBe('@id.example.com #428913');
    expect(t.voice(data)).toContain('4 2 8 9 1 3');
    expect(t.email({ ...data, purpose: 'enroll', enroll: true }).subject).toBe('Confirm your email address for Example <ID>');
    expect(t.email({ ...data, minutes: 1 }).text).toContain('It expires in 1 minute and works once.');
  });

  test('in German: subject, text and HTML parts, text message and voice call, plural minutes', () => {
    const t = new MessageTemplates();
    const de = { ...data, lang: 'de' };
    const email = t.email(de);
    expect(email.subject).toBe('Ihr Anmeldecode für Example <ID>');
    expect(email.text).toContain('Mit diesem Code schließen Sie die Anmeldung bei Example <ID> ab:');
    expect(email.text).toMatch(/^\s+428913$/m);
    expect(email.text).toContain('Er ist 10 Minuten lang gültig und funktioniert nur einmal.');
    expect(email.html).toContain('<html lang="de">');
    expect(email.html).toContain('Mit diesem Code schließen Sie die Anmeldung bei Example &#60;ID&#62; ab:');
    expect(email.text).not.toMatch(/expires|sign/i);
    expect(t.email({ ...de, purpose: 'enroll', enroll: true }).subject).toBe('Bestätigen Sie Ihre E-Mail-Adresse für Example <ID>');
    expect(t.email({ ...de, minutes: 1 }).text).toContain('Er ist 1 Minute lang gültig');
    expect(t.sms(de)).toBe(
      '428913 ist Ihr Anmeldecode für Example <ID>. Er ist 10 Minuten lang gültig. Geben Sie ihn nicht weiter.\n\n@id.example.com #428913',
    );
    expect(t.voice(de)).toBe('Ihr Code für Example <ID> lautet 4 2 8 9 1 3. Noch einmal: 4 2 8 9 1 3. Er ist 10 Minuten lang gültig.');
  });

  test('an operator overrides any template by file name; a broken one stops the start', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'templates-'));
    fs.writeFileSync(path.join(dir, 'code-sms.hbs'), 'ACME: {{code}} ({{minutes}} min)');
    const t = new MessageTemplates(dir);
    expect(t.sms(data)).toBe('ACME: 428913 (10 min)');
    expect(t.email(data).subject).toBe('Your sign-in code for Example <ID>');
    // Plain text stays as written, whatever the language; the parts left out keep speaking the person's.
    expect(t.sms({ ...data, lang: 'de' })).toBe('ACME: 428913 (10 min)');
    expect(t.email({ ...data, lang: 'de' }).subject).toBe('Ihr Anmeldecode für Example <ID>');
    fs.writeFileSync(path.join(dir, 'code-email.subject.hbs'), '{{#if code}}unclosed');
    expect(() => new MessageTemplates(dir)).toThrow(/code-email\.subject\.hbs/);
    expect(TEMPLATE_FILES).toContain('code-voice.hbs');
  });

  test("an override may take its words from the catalogue, the theme's own included, in the person's language", () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'templates-'));
    fs.writeFileSync(path.join(dir, 'code-sms.hbs'), 'ACME · {{t "sms.code.signIn" oneTimeCode=code issuer=issuerName minutes=minutes}}');
    fs.writeFileSync(path.join(dir, 'code-email.html.hbs'), '<p lang="{{lang}}">{{t "email.code.use" issuer=issuerName}}</p>');
    const catalogue = new Catalogue();
    catalogue.addOverrides('de', { 'sms.code.signIn': '{oneTimeCode}: Ihr Code für {issuer}, {minutes} Min. gültig.' }, 'theme/messages/de.json');
    const t = new MessageTemplates(dir, catalogue);
    expect(t.sms({ ...data, lang: 'de' })).toBe('ACME · 428913: Ihr Code für Example <ID>, 10 Min. gültig.');
    expect(t.sms(data)).toMatch(/^ACME · 428913 is your Example <ID> sign-in code\./);
    expect(t.email({ ...data, lang: 'de' }).html).toBe('<p lang="de">Mit diesem Code schließen Sie die Anmeldung bei Example &#60;ID&#62; ab:</p>');
    // An override that leaves out a parameter its message needs stops the start, naming the file.
    fs.writeFileSync(path.join(dir, 'code-voice.hbs'), '{{t "voice.code" issuer=issuerName minutes=minutes}}');
    expect(() => new MessageTemplates(dir, catalogue)).toThrow(/code-voice\.hbs/);
  });

  test('createMessaging uses MESSAGE_TEMPLATES_DIR', () => {
    const config: Config = loadConfig({ MESSAGE_TEMPLATES_DIR: path.join(tmp, 'missing'), DATA_DIR: tmp });
    expect(() => createMessaging(config)).not.toThrow();
  });
});

describe("messages in the person's language", () => {
  const expiresIn10 = () => new Date(Date.now() + 600_000);

  test('a German sign-in gets its code email (subject and body) and text message in German, an English one in English; the gateway is told which', async () => {
    const sink = await startMailSink();
    const gateway = await startSmsGateway();
    const messaging = createMessaging(
      loadConfig({ DATA_DIR: tmp, ISSUER_NAME: 'Example ID', SMTP_URL: sink.url, SMS_WEBHOOK_URL: gateway.url, SMS_WEBHOOK_SECRET: gateway.secret }),
    );
    try {
      const send = (channel: 'email' | 'sms' | 'voice', to: string, language: string) =>
        messaging.sendCode({ channel, to, code: '428913', purpose: 'sign-in', expiresAt: expiresIn10(), language });
      await send('email', 'anna@example.test', 'de');
      await send('email', 'alice@example.test', 'en');
      const [german] = sink.to('anna@example.test');
      expect(german!.subject).toBe('Ihr Anmeldecode für Example ID');
      expect(german!.decoded).toContain('Mit diesem Code schließen Sie die Anmeldung bei Example ID ab:');
      expect(german!.decoded).toContain('Er ist 10 Minuten lang gültig und funktioniert nur einmal.');
      expect(german!.decoded).toContain('<html lang="de">');
      expect(german!.decoded).not.toMatch(/expires|signing in/);
      expect(sink.latestCode('anna@example.test')).toBe('428913');
      const [english] = sink.to('alice@example.test');
      expect(english!.subject).toBe('Your sign-in code for Example ID');
      expect(english!.decoded).toContain('Use this code to finish signing in to Example ID:');
      expect(english!.decoded).toContain('It expires in 10 minutes and works once.');
      expect(english!.decoded).not.toMatch(/gültig|Anmeld/);

      await send('sms', '+4915123456789', 'de');
      await send('sms', '+447700900123', 'en');
      await send('voice', '+4915123456780', 'de');
      const body = (to: string) => gateway.requests.find((r) => r.body.to === to)!.body;
      expect(body('+4915123456789')).toMatchObject({
        language: 'de',
        message: expect.stringMatching(/^428913 ist Ihr Anmeldecode für Example ID\. Er ist 10 Minuten lang gültig\./),
      });
      expect(body('+447700900123')).toMatchObject({
        language: 'en',
        message: expect.stringMatching(/^428913 is your Example ID sign-in code\. It expires in 10 minutes\./),
      });
      expect(body('+4915123456780')).toMatchObject({
        channel: 'voice',
        language: 'de',
        message: 'Ihr Code für Example ID lautet 4 2 8 9 1 3. Noch einmal: 4 2 8 9 1 3. Er ist 10 Minuten lang gültig.',
      });
    } finally {
      messaging.close();
      await sink.close();
      await gateway.close();
    }
  });

  test('without a language, or in one the catalogue lacks, a message is in DEFAULT_LANGUAGE', async () => {
    const gateway = await startSmsGateway();
    const messaging = createMessaging(loadConfig({ DATA_DIR: tmp, DEFAULT_LANGUAGE: 'de', SMS_WEBHOOK_URL: gateway.url, SMS_WEBHOOK_SECRET: gateway.secret }));
    try {
      await messaging.sendCode({ channel: 'sms', to: '+4915100000001', code: '111111', purpose: 'enroll', expiresAt: expiresIn10() });
      await messaging.sendCode({ channel: 'sms', to: '+4915100000002', code: '222222', purpose: 'enroll', expiresAt: expiresIn10(), language: 'fr' });
      for (const r of gateway.requests)
        expect(r.body).toMatchObject({ language: 'de', message: expect.stringMatching(/^\d{6} ist Ihr Bestätigungscode für /) });
      expect(gateway.requests).toHaveLength(2);
    } finally {
      messaging.close();
      await gateway.close();
    }
  });
});

describe('addresses', () => {
  test('email addresses are checked, their domain lower-cased, and masked on pages', () => {
    expect(parseEmail('  Alice.Smith+id@Example.COM ')).toEqual({ ok: true, to: 'Alice.Smith+id@example.com' });
    for (const bad of ['', 'alice', 'alice@', '@example.com', 'a b@example.com', 'alice@example', 'a@example.com\r\nBcc: x@y.z', 'a<b>@example.com']) {
      expect(parseEmail(bad).ok).toBe(false);
    }
    expect(maskEmail('alice@example.com')).toBe('a•••@example.com');
  });

  test('phone numbers become E.164 and are masked to their last four digits', () => {
    expect(parsePhone('+44 7700 900123')).toEqual({ ok: true, to: '+447700900123' });
    expect(parsePhone('0044 (7700) 900-123')).toEqual({ ok: true, to: '+447700900123' });
    for (const bad of ['', '07700 900123', '+0 1234 5678', '+1 555', '+1555555555555555', '+44 7700 9OO123']) expect(parsePhone(bad).ok).toBe(false);
    expect(maskPhone('+447700900123')).toBe('•••• 0123');
  });

  test('codes are uniformly random digits of the asked length', () => {
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 2000; i++) {
      const code = randomDigits(6);
      expect(code).toMatch(/^\d{6}$/);
      for (const d of code) counts[Number(d)]!++;
    }
    // 12,000 digits: each of the ten appears roughly 1,200 times.
    for (const n of counts) expect(n).toBeGreaterThan(1000);
  });
});
