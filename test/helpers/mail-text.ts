/**
 * Reads a delivered message's plain-text part as the person would see it:
 * the MIME part found, its quoted-printable or base64 transfer encoding
 * undone, as UTF-8. Enough for the messages Twofold sends (nodemailer's
 * multipart/alternative with a text and an HTML part).
 */
import type { ReceivedMail } from './mail-sink.ts';

function decodePart(headers: string, body: string): string {
  const encoding = /content-transfer-encoding:\s*([\w-]+)/i.exec(headers)?.[1]?.toLowerCase();
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

/** The text/plain part of a message (the whole body for a single-part one). */
export function mailText(mail: ReceivedMail): string {
  const raw = mail.raw.replace(/\r\n/g, '\n');
  const boundary = /boundary="?([^";\n]+)"?/i.exec(raw)?.[1];
  if (!boundary) {
    const split = raw.indexOf('\n\n');
    return decodePart(raw.slice(0, split), raw.slice(split + 2));
  }
  for (const part of raw.split(`--${boundary}`)) {
    const split = part.indexOf('\n\n');
    if (split < 0) continue;
    const headers = part.slice(0, split);
    if (/content-type:\s*text\/plain/i.test(headers)) return decodePart(headers, part.slice(split + 2));
  }
  throw new Error(`no text part in:\n${raw.slice(0, 1500)}`);
}

/** The reset link in a message. */
export function resetLink(mail: ReceivedMail): string {
  const link = /https?:\/\/\S+\/password\/reset\?token=[A-Za-z0-9_-]+(?:&ui_locales=[\w-]+)?/.exec(mailText(mail))?.[0];
  if (!link) throw new Error(`no reset link in:\n${mailText(mail)}`);
  return link;
}

/** Waits for the `n`th message to `address` (1-based), polling the sink. */
export async function waitForMail(sink: { to(address: string): ReceivedMail[] }, address: string, n: number, timeoutMs = 10_000): Promise<ReceivedMail> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const mails = sink.to(address);
    if (mails.length >= n) return mails[n - 1]!;
    if (Date.now() > until) throw new Error(`waited ${timeoutMs} ms for mail ${n} to ${address}; got ${mails.length}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
