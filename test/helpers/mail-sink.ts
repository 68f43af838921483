/**
 * A real SMTP server in the test process (smtp-server): the provider sends to
 * it over TCP as it would to any mail server, and tests read what arrived.
 */
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The raw message (headers and MIME parts), as delivered. */
  raw: string;
  /** The raw message with its quoted-printable parts decoded as UTF-8: words in any language, readable. */
  decoded: string;
  /** Decoded (RFC 2047), whatever its language. */
  subject: string;
  at: number;
}

export interface MailSink {
  url: string;
  messages: ReceivedMail[];
  /** Messages to one address, oldest first. */
  to(address: string): ReceivedMail[];
  /** The code in the newest message to `address` (the digits on a line of their own in the text part). */
  latestCode(address: string): string;
  /** Refuse every message with this SMTP reply code (e.g. 451), or accept again with undefined. */
  refuseWith: number | undefined;
  /**
   * Go quiet: `greeting`, never greet a new connection (nothing is sent); `data`, take the whole message
   * (it is kept in `messages`) and never answer it. Undefined: answer as usual.
   */
  hang: 'greeting' | 'data' | undefined;
  close(): Promise<void>;
}

/** Undoes quoted-printable soft line breaks and escapes (`=C3=BC` is the UTF-8 of ü), enough to read a code and words. */
function decodeQp(text: string): string {
  const joined = text.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = /^=([0-9A-F]{2})/.exec(joined.slice(i, i + 3));
    if (hex) {
      bytes.push(parseInt(hex[1]!, 16));
      i += 2;
    } else bytes.push(...Buffer.from(joined[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A header's RFC 2047 encoded words (`=?UTF-8?Q?f=C3=BCr?=`, `=?UTF-8?B?…?=`) as text; the space between two of them is not text. */
function decodeWords(value: string): string {
  return value
    .replace(/(\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?[^?]+\?([QqBb])\?([^?]*)\?=/g, (_, encoding: string, data: string) =>
      encoding.toUpperCase() === 'B' ? Buffer.from(data, 'base64').toString('utf8') : decodeQp(data.replace(/_/g, ' ')),
    );
}

export async function startMailSink(): Promise<MailSink> {
  const messages: ReceivedMail[] = [];
  const sink: MailSink = {
    url: '',
    messages,
    refuseWith: undefined,
    hang: undefined,
    to: (address) => messages.filter((m) => m.to.includes(address.toLowerCase())),
    latestCode(address) {
      const mail = sink.to(address).at(-1);
      if (!mail) throw new Error(`no mail to ${address}; got mail to ${messages.map((m) => m.to.join(',')).join('; ') || 'nobody'}`);
      const code = /^\s+(\d{6,10})\s*$/m.exec(decodeQp(mail.raw));
      if (!code) throw new Error(`no code in the mail to ${address}:\n${mail.raw.slice(0, 2000)}`);
      return code[1]!;
    },
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    // Connections left hanging are cut when the sink closes, not waited for.
    closeTimeout: 500,
    onConnect(_session, callback) {
      if (sink.hang !== 'greeting') callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (sink.refuseWith) {
          const err = new Error('mailbox unavailable') as Error & { responseCode: number };
          err.responseCode = sink.refuseWith;
          return callback(err);
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const hang = sink.hang === 'data';
        const subject = decodeWords((/^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1] ?? '').replace(/\r?\n([ \t])/g, '$1'));
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
          raw,
          decoded: decodeQp(raw),
          subject,
          at: Date.now(),
        });
        if (!hang) callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = (server as unknown as { server: { address(): AddressInfo } }).server.address();
  sink.url = `smtp://127.0.0.1:${port}`;
  return sink;
}
