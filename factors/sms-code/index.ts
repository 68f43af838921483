/**
 * Codes by text message, or read out by a voice call, through the operator's
 * own gateway (SMS_WEBHOOK_URL). Off unless the gateway is configured (`enabled`).
 *
 * `amr` is `sms` for a text message and `tel` for a call (RFC 8176). The
 * phone network is the weakest channel Twofold offers: NIST SP 800-63B calls
 * it a restricted authenticator (SIM swaps, number porting, interception), so
 * the policy can leave it out, and it never reaches level 3.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CODE_DEFAULTS, codeSettingsShape, defineDeliveredCodeFactor } from '../delivered-code.ts';
import type { MessageRef } from '../types.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const smsCodeSettings = z
  .object({
    ...codeSettingsShape,
    /** Offer "Call me instead": the gateway receives `channel: "voice"` and reads the code out. */
    voice: z.boolean().default(false),
  })
  .default({ ...CODE_DEFAULTS, voice: false });
export type SmsCodeSettings = z.infer<typeof smsCodeSettings>;

/** E.164: `+`, a country code and the number, 8 to 15 digits; spaces, dots, dashes and brackets are dropped, `00` becomes `+`. */
export function parsePhone(value: string): { ok: true; to: string } | { ok: false; message: MessageRef } {
  const compact = value.replace(/[\s().-]/g, '').replace(/^00/, '+');
  if (!/^\+[1-9]\d{7,14}$/.test(compact)) return { ok: false, message: { key: 'sms-code.failure.number' } };
  return { ok: true, to: compact };
}

export function maskPhone(phone: string): string {
  return `•••• ${phone.slice(-4)}`;
}

export default defineDeliveredCodeFactor<SmsCodeSettings>({
  id: 'sms-code',
  amr: ['sms', 'tel'],
  settings: smsCodeSettings,
  viewsDir: path.join(HERE, 'views'),
  messagesDir: path.join(HERE, 'messages'),
  channel: 'sms',
  noChannel: 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET',
  voice: (settings) => settings.voice,
  field: 'phone',
  parse: parsePhone,
  mask: maskPhone,
  credentialLabel: (to) => ({ key: 'sms-code.credential', params: { last4: to.slice(-4) } }),
  amrFor: (channel) => (channel === 'voice' ? 'tel' : 'sms'),
  words: { send: { key: 'sms-code.send' }, call: { key: 'sms-code.call' }, change: { key: 'sms-code.change' }, enterAgain: { key: 'sms-code.enterAgain' } },
});
