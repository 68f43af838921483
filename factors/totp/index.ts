/**
 * TOTP (RFC 6238) authenticator apps, with otpauth. A code is accepted at most
 * once per credential: the matched time step must be higher than the last one
 * accepted, and the engine advances it with one conditional UPDATE.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';
import { z } from 'zod';
import { defineFactor, FACTOR_API_VERSION, type Credential, type FactorContext } from '../types.ts';

export const totpSettings = z
  .object({
    algorithm: z.enum(['SHA1', 'SHA256', 'SHA512']).default('SHA1'),
    digits: z.literal([6, 8]).default(6),
    period: z.number().int().min(15).max(120).default(30),
    /** Steps accepted either side of now, for clock drift. */
    window: z.number().int().min(0).max(3).default(1),
  })
  .default({ algorithm: 'SHA1', digits: 6, period: 30, window: 1 });
export type TotpSettings = z.infer<typeof totpSettings>;

interface TotpData {
  algorithm: TotpSettings['algorithm'];
  digits: number;
  period: number;
}

const ENROLL_TTL = 10 * 60;
const APPS = ['Google Authenticator', 'Microsoft Authenticator', 'Authy', '1Password', 'Bitwarden', 'FreeOTP', 'Aegis'];

/** Which time step a code matches for one credential, or null. */
export function matchStep(secretBase32: string, data: TotpData, token: string, nowMs: number, window: number): number | null {
  const delta = TOTP.validate({
    token,
    secret: Secret.fromBase32(secretBase32),
    algorithm: data.algorithm,
    digits: data.digits,
    period: data.period,
    timestamp: nowMs,
    window,
  });
  if (delta === null) return null;
  return Math.floor(nowMs / 1000 / data.period) + delta;
}

function groupKey(base32: string): string {
  return base32.replace(/(.{4})/g, '$1 ').trim();
}

const cleanCode = (value: string | undefined) => (value ?? '').replace(/\s/g, '');

export default defineFactor<TotpSettings>({
  apiVersion: FACTOR_API_VERSION,
  id: 'totp',
  kinds: ['have'],
  amr: ['otp'],
  phishingResistant: false,
  firstFactor: false,
  recoveryOnly: false,
  multiple: true,
  settings: totpSettings,
  viewsDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'views'),
  messagesDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'messages'),

  async beginEnrollment(ctx: FactorContext<TotpSettings>) {
    const { settings, services, account } = ctx;
    let pending = await services.state.get<{ secret: string }>('pending');
    if (!pending) {
      pending = { secret: new Secret({ buffer: services.randomBytes(20).buffer as ArrayBuffer }).base32 };
      await services.state.set('pending', pending, ENROLL_TTL);
    }
    const totp = new TOTP({
      issuer: services.issuerName,
      label: account.email ?? account.username,
      algorithm: settings.algorithm,
      digits: settings.digits,
      period: settings.period,
      secret: Secret.fromBase32(pending.secret),
    });
    const uri = totp.toString();
    return {
      partial: 'totp/enroll',
      data: {
        qr: await QRCode.toDataURL(uri, { margin: 1, width: 200, errorCorrectionLevel: 'M' }),
        key: groupKey(pending.secret),
        uri,
        apps: APPS,
        appList: APPS.join(', '),
        digits: settings.digits,
        algorithm: settings.algorithm,
        period: settings.period,
        nonDefault: settings.algorithm !== 'SHA1' || settings.digits !== 6 || settings.period !== 30,
      },
    };
  },

  async finishEnrollment(ctx, input) {
    const { settings, services } = ctx;
    const pending = await services.state.get<{ secret: string }>('pending');
    if (!pending) return { ok: false, reason: 'expired', message: { key: 'totp.failure.setupExpired' } };
    const code = cleanCode(input.code);
    if (!new RegExp(`^\\d{${settings.digits}}$`).test(code))
      return { ok: false, reason: 'invalid_input', message: { key: 'totp.failure.enrollFormat', params: { digits: settings.digits } } };
    const data: TotpData = { algorithm: settings.algorithm, digits: settings.digits, period: settings.period };
    const step = matchStep(pending.secret, data, code, services.clock.now().getTime(), settings.window);
    if (step === null) return { ok: false, reason: 'wrong', message: { key: 'totp.failure.enrollWrong' } };
    // Only now is the secret committed; the code that proved it counts as used.
    if ((await services.state.take('pending')) === undefined) return { ok: false, reason: 'already_used' };
    const label = (input.label ?? '').trim().slice(0, 64) || { key: 'totp.label' };
    return { ok: true, proves: true, credential: { label, secret: pending.secret, data: { ...data }, counter: step } };
  },

  async beginChallenge(ctx) {
    return { partial: 'totp/challenge', data: { digits: ctx.settings.digits } };
  },

  async verify(ctx, credentials: Credential[], input) {
    const { settings, services } = ctx;
    const code = cleanCode(input.code);
    if (!/^\d{6,8}$/.test(code)) return { ok: false, reason: 'invalid_input', message: { key: 'totp.failure.format' } };
    const now = services.clock.now().getTime();
    let replayed = false;
    for (const credential of credentials) {
      if (!credential.secret) continue;
      const step = matchStep(credential.secret, credential.data as unknown as TotpData, code, now, settings.window);
      if (step === null) continue;
      // Accept only a step above the last one used: one conditional UPDATE, one winner.
      if (await services.advanceCounter(credential.id, step)) return { ok: true, credentialId: credential.id, amr: ['otp'], counter: step };
      replayed = true;
    }
    return replayed
      ? { ok: false, reason: 'already_used', message: { key: 'totp.failure.replayed' } }
      : { ok: false, reason: 'wrong', message: { key: 'totp.failure.wrong' } };
  },

  // An authenticator set up in another system keeps working: its key and parameters come over as they are.
  importCredential: {
    fields: {
      secret: { description: 'the shared key, base32 (at least 80 bits: 16 characters; spaces and dashes ignored)', required: true, secret: true },
      algorithm: { description: 'SHA1, SHA256 or SHA512 (default SHA1)' },
      digits: { description: '6 or 8 (default 6)' },
      period: { description: 'the time step in seconds, 15–120 (default 30)' },
    },
    async credential(_ctx, input) {
      const secret = (input.secret ?? '').replace(/[\s-]/g, '').toUpperCase().replace(/=+$/, '');
      if (!/^[A-Z2-7]{16,128}$/.test(secret)) return { ok: false, field: 'secret', problem: 'a base32 key of at least 80 bits (16 characters)' };
      const algorithm = (input.algorithm ?? 'SHA1').toUpperCase();
      if (algorithm !== 'SHA1' && algorithm !== 'SHA256' && algorithm !== 'SHA512') return { ok: false, field: 'algorithm', problem: 'SHA1, SHA256 or SHA512' };
      const digits = Number(input.digits ?? 6);
      if (digits !== 6 && digits !== 8) return { ok: false, field: 'digits', problem: '6 or 8' };
      const period = Number(input.period ?? 30);
      if (!Number.isInteger(period) || period < 15 || period > 120) return { ok: false, field: 'period', problem: 'whole seconds from 15 to 120' };
      const data: TotpData = { algorithm, digits, period };
      return { ok: true, credential: { label: { key: 'totp.label' }, secret, data: { ...data }, counter: null } };
    },
  },
});
