/**
 * Email codes: a code sent to an address the user proved at enrolment.
 *
 * `amr` is `otp`: RFC 8176 has no value for email, and what the user typed is
 * a one-time password; `sms` or `tel` would claim a phone network it never
 * used. Something you have (the mailbox), never phishing-resistant: it counts
 * towards level 2, never level 3. NIST SP 800-63B does not accept email as an
 * out-of-band authenticator at all; the policy can leave it out (`factors`).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CODE_DEFAULTS, codeSettingsShape, defineDeliveredCodeFactor } from '../delivered-code.ts';
import type { MessageRef } from '../types.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const emailCodeSettings = z.object(codeSettingsShape).default(CODE_DEFAULTS);
export type EmailCodeSettings = z.infer<typeof emailCodeSettings>;

// Conservative on purpose: nothing that could break out of a mail header or needs quoting.
const ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{4,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}$/;

export function parseEmail(value: string): { ok: true; to: string } | { ok: false; message: MessageRef } {
  const trimmed = value.trim();
  if (!ADDRESS.test(trimmed)) return { ok: false, message: { key: 'email-code.failure.address' } };
  const at = trimmed.lastIndexOf('@');
  return { ok: true, to: `${trimmed.slice(0, at)}@${trimmed.slice(at + 1).toLowerCase()}` };
}

/** `a•••@example.com`: enough to recognise one's own address, not to learn someone else's. */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  return `${address.slice(0, 1)}•••${address.slice(at)}`;
}

export default defineDeliveredCodeFactor<EmailCodeSettings>({
  id: 'email-code',
  amr: ['otp'],
  settings: emailCodeSettings,
  viewsDir: path.join(HERE, 'views'),
  messagesDir: path.join(HERE, 'messages'),
  channel: 'email',
  noChannel: 'no email delivery: set SMTP_URL (or, in development, EMAIL_CODES=on to write codes to the log); EMAIL_CODES=off turns it off',
  field: 'email',
  parse: parseEmail,
  mask: maskEmail,
  credentialLabel: (to) => ({ key: 'email-code.credential', params: { address: maskEmail(to) } }),
  suggest: (account) => account.email ?? undefined,
  amrFor: () => 'otp',
  words: { send: { key: 'email-code.send' }, change: { key: 'email-code.change' }, enterAgain: { key: 'email-code.enterAgain' } },
});
