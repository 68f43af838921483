/**
 * Messaging: how a one-time code reaches a person. Email over SMTP (or, in
 * development without SMTP, the log), text messages and voice calls through
 * the operator's signed webhook. Built once at start from configuration; the
 * factor engine hands factors only a narrow `outOfBand` service on top of it,
 * never this.
 */
import crypto from 'node:crypto';
import type { Config } from '../config.ts';
import { logger as defaultLogger, type Logger } from '../logger.ts';
import { Catalogue } from '../i18n/catalogue.ts';
import { DeliveryError } from './delivery-error.ts';
import { MessageTemplates, type CodeMessageData } from './templates.ts';
import { smtpMailer, type Mail, type Mailer } from './smtp-mailer.ts';
import { SmsWebhook } from './sms-webhook.ts';

export { DeliveryError } from './delivery-error.ts';
export type { Mail } from './smtp-mailer.ts';
export { SIGNATURE_HEADER, sign as signWebhook, verifySignature as verifyWebhookSignature, type WebhookMessage } from './sms-webhook.ts';

export type Channel = 'email' | 'sms' | 'voice';

export interface CodeMessage {
  channel: Channel;
  /** An email address, or an E.164 phone number. */
  to: string;
  code: string;
  purpose: 'sign-in' | 'enroll';
  expiresAt: Date;
  /** The language of the person it is for (the sign-in's), which the message is written in; default: DEFAULT_LANGUAGE. */
  language?: string;
}

export interface Messaging {
  /** What this deployment can deliver over. */
  readonly channels: Channel[];
  /** How email leaves: `smtp`, `log` (development only) or `off`. */
  readonly email: Config['emailDelivery'];
  /** Resolves once the mail server or the gateway took the message; throws DeliveryError otherwise. */
  sendCode(message: CodeMessage): Promise<void>;
  /**
   * Sends an email that carries no code (a security notice, a reset link): over SMTP, or into the log in
   * development (its text included, so a reset link can be followed). Throws DeliveryError when email is off
   * or the mail server refused it.
   */
  sendEmail(mail: Mail): Promise<void>;
  close(): void;
}

/** In the log instead of a mailbox, in development only; impossible to mistake for a delivery. */
export const DEV_CODE_MARKER = '>>> DEVELOPMENT ONLY, NOT EMAILED (no SMTP_URL) <<<';

export interface MessagingOptions {
  logger?: Logger;
  /** The messages' words (the provider's catalogue, with its theme's); default: the built-in ones. */
  catalogue?: Catalogue;
}

function defaultFrom(config: Config): string {
  const host = new URL(config.ISSUER).hostname;
  const name = config.brand.name.replace(/["\\\r\n]/g, '');
  return `"${name}" <no-reply@${host}>`;
}

/** The channels this configuration delivers codes over: email (SMTP, or the log in development), sms and voice (the gateway). */
export function deliveryChannels(config: Pick<Config, 'emailDelivery' | 'SMS_WEBHOOK_URL'>): Channel[] {
  return [...(config.emailDelivery !== 'off' ? (['email'] as const) : []), ...(config.SMS_WEBHOOK_URL ? (['sms', 'voice'] as const) : [])];
}

export function createMessaging(config: Config, options: MessagingOptions = {}): Messaging {
  const log = options.logger ?? defaultLogger;
  const catalogue = options.catalogue ?? new Catalogue({ defaultLanguage: config.DEFAULT_LANGUAGE });
  const templates = new MessageTemplates(config.MESSAGE_TEMPLATES_DIR, catalogue);
  const issuerName = config.brand.name;
  const host = new URL(config.ISSUER).hostname;
  let mailer: Mailer | undefined;
  const mail = (): Mailer => (mailer ??= smtpMailer({ url: config.SMTP_URL!, from: config.MAIL_FROM ?? defaultFrom(config) }));
  const webhook = config.SMS_WEBHOOK_URL
    ? new SmsWebhook({ url: config.SMS_WEBHOOK_URL, secret: config.SMS_WEBHOOK_SECRET!, timeoutMs: config.SMS_WEBHOOK_TIMEOUT * 1000 })
    : undefined;
  const channels = deliveryChannels(config);

  return {
    channels,
    email: config.emailDelivery,
    async sendCode(message) {
      if (!channels.includes(message.channel)) throw new DeliveryError(`no ${message.channel} delivery is configured`, message.channel, 'unreachable');
      // What the words will be in (the HTML part's lang, the webhook's language): a language the catalogue has, else its default.
      const lang = message.language && catalogue.offers(message.language) ? message.language : catalogue.defaultLanguage;
      const data: CodeMessageData = {
        lang,
        code: message.code,
        spokenCode: message.code.split('').join(' '),
        minutes: Math.max(1, Math.round((message.expiresAt.getTime() - Date.now()) / 60_000)),
        purpose: message.purpose,
        enroll: message.purpose === 'enroll',
        issuerName,
        host,
        issuer: config.ISSUER,
      };
      if (message.channel === 'email') {
        const rendered = templates.email(data);
        if (config.emailDelivery === 'log') {
          log.warn(
            { devCode: message.code, to: message.to, purpose: message.purpose, subject: rendered.subject },
            `${DEV_CODE_MARKER} code ${message.code} for ${message.to}`,
          );
          return;
        }
        await mail().send({ to: message.to, ...rendered });
        return;
      }
      await webhook!.send({
        id: crypto.randomUUID(),
        channel: message.channel,
        to: message.to,
        message: message.channel === 'voice' ? templates.voice(data) : templates.sms(data),
        code: message.code,
        purpose: message.purpose,
        expiresAt: message.expiresAt.toISOString(),
        issuer: config.ISSUER,
        language: lang,
      });
    },
    async sendEmail(message) {
      if (config.emailDelivery === 'off') throw new DeliveryError('no email delivery is configured', 'email', 'unreachable');
      if (config.emailDelivery === 'log') {
        log.warn({ to: message.to, subject: message.subject, text: message.text }, `${DEV_CODE_MARKER} email "${message.subject}" for ${message.to}`);
        return;
      }
      await mail().send(message);
    },
    close() {
      mailer?.close();
    },
  };
}
