/**
 * Email over SMTP with nodemailer, from SMTP_URL (`smtp://user:pass@host:587`
 * upgrades with STARTTLS when the server offers it; `smtps://` is TLS from the
 * first byte). Short timeouts: a user is waiting on the other side, and a
 * message that cannot be handed over in seconds is better reported than late.
 */
import nodemailer from 'nodemailer';
import { DeliveryError } from './delivery-error.ts';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface Mailer {
  send(mail: Mail): Promise<void>;
  close(): void;
}

export interface SmtpOptions {
  url: string;
  from: string;
  /** Milliseconds to connect, to get the greeting, and of silence mid-conversation (default 10 s). */
  timeoutMs?: number;
}

export function smtpMailer(options: SmtpOptions): Mailer {
  const timeout = options.timeoutMs ?? 10_000;
  const transport = nodemailer.createTransport({
    url: options.url,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  } as Parameters<typeof nodemailer.createTransport>[0]);
  return {
    async send(mail) {
      try {
        await transport.sendMail({ from: options.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        // A timeout before the server greeted us (or while connecting, or upgrading to TLS) sent nothing; one later
        // may come after the server took the message, so it stays a `timeout` (nodemailer names each in timeoutType).
        const beforeAnyCommand = ['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT'].includes((err as { timeoutType?: string }).timeoutType ?? '');
        const kind =
          code === 'ETIMEDOUT' && !beforeAnyCommand
            ? 'timeout'
            : ['ETIMEDOUT', 'ECONNECTION', 'ECONNREFUSED', 'EDNS', 'ESOCKET', 'ETLS'].includes(code)
              ? 'unreachable'
              : 'rejected';
        throw new DeliveryError(`SMTP: ${(err as Error).message}`, 'email', kind, { cause: err });
      }
    },
    close() {
      transport.close();
    },
  };
}
