/**
 * Backup codes (NIST SP 800-63B "saved recovery codes"): a set of codes, each
 * 80 bits of randomness, shown once, stored only as keyed hashes, each usable
 * once. Recovery only: offered as a fallback, never an account's only factor.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineFactor, FACTOR_API_VERSION } from '../types.ts';

export const backupCodeSettings = z
  .object({
    count: z.number().int().min(5).max(20).default(10),
    /** Warn when this many or fewer codes are left. */
    warnAt: z.number().int().min(0).max(10).default(2),
    /** Offer a new set at sign-in to an account with a second factor and no unused code (interactions/recovery-offer.ts). */
    offerAgain: z.boolean().default(true),
  })
  .default({ count: 10, warnAt: 2, offerAgain: true });
export type BackupCodeSettings = z.infer<typeof backupCodeSettings>;

// Crockford's base32: no I, L, O, U, so codes read aloud and typed by hand survive.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_CHARS = 16; // 16 × 5 bits = 80 bits

export function formatCode(raw: string): string {
  return raw.match(/.{4}/g)!.join('-');
}

function newCode(randomBytes: (n: number) => Buffer): string {
  const bytes = randomBytes(CODE_CHARS);
  let out = '';
  for (const b of bytes) out += ALPHABET[b & 31];
  return formatCode(out);
}

const ENROLL_TTL = 15 * 60;

export default defineFactor<BackupCodeSettings>({
  apiVersion: FACTOR_API_VERSION,
  id: 'backup-codes',
  kinds: ['have'],
  amr: ['otp'],
  phishingResistant: false,
  firstFactor: false,
  recoveryOnly: true,
  multiple: false,
  // Saved right after the first factor is set up, so a lost device is not a lockout.
  offerAfterFirstEnrollment: true,
  enrollPage: { title: { key: 'backup-codes.enroll.title' }, intro: false },
  settings: backupCodeSettings,
  viewsDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'views'),
  messagesDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'messages'),

  async beginEnrollment(ctx) {
    const { services, settings } = ctx;
    let pending = await services.state.get<{ codes: string[] }>('pending');
    if (!pending) {
      pending = { codes: Array.from({ length: settings.count }, () => newCode((n) => services.randomBytes(n))) };
      await services.state.set('pending', pending, ENROLL_TTL);
    }
    return {
      partial: 'backup-codes/enroll',
      data: { codes: pending.codes, download: pending.codes.join('\n') + '\n' },
      submit: { label: { key: 'backup-codes.enroll.submit' } },
    };
  },

  async finishEnrollment(ctx, input) {
    if (input.saved !== 'yes') return { ok: false, reason: 'invalid_input', message: { key: 'backup-codes.failure.notSaved' } };
    const pending = await ctx.services.state.take<{ codes: string[] }>('pending');
    if (!pending) return { ok: false, reason: 'expired', message: { key: 'backup-codes.failure.setupExpired' } };
    return {
      ok: true,
      proves: false,
      credential: { label: { key: 'backup-codes.label' }, oneTimeCodes: pending.codes },
      reveal: { count: pending.codes.length },
    };
  },

  async beginChallenge(ctx, credentials) {
    // The page says how many are left, so a user knows when to make a new set before running out.
    let left = 0;
    for (const credential of credentials) left += await ctx.services.remainingOneTimeCodes(credential.id);
    return { partial: 'backup-codes/challenge', data: { left } };
  },

  async verify(ctx, credentials, input) {
    const code = (input.code ?? '').replace(/[\s-]/g, '').toUpperCase();
    if (!/^[0-9A-Z]{16}$/.test(code)) return { ok: false, reason: 'invalid_input', message: { key: 'backup-codes.failure.format' } };
    for (const credential of credentials) {
      if (await ctx.services.consumeOneTimeCode(credential.id, code)) {
        const left = await ctx.services.remainingOneTimeCodes(credential.id);
        const notice =
          left <= ctx.settings.warnAt ? (left === 0 ? { key: 'backup-codes.notice.last' } : { key: 'backup-codes.notice.few', params: { left } }) : undefined;
        return { ok: true, credentialId: credential.id, amr: ['otp'], notice };
      }
    }
    // Wrong and already-used look the same: an attacker learns nothing about which codes exist.
    return { ok: false, reason: 'wrong' };
  },
});
