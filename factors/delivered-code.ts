/**
 * What every factor that sends a code has in common (email-code, sms-code):
 * prove the address at enrolment with a code sent to it, send a code when the
 * user asks at sign-in, check it. Codes themselves (making, delivering,
 * hashing, expiry, tries, throttles, accepting once) are the engine's
 * `outOfBand` service; this module only decides what to send where and what
 * the pages say. Sending needs a click (an action), never a page view, so a
 * reload, a prefetch or a user who picks another factor sends nothing.
 *
 * What every such factor says alike (send a new code, type the digits we
 * sent) is the engine's `codes.*` messages, next to what its code service
 * says; the words that differ (email or text, address or number) are each
 * factor's own.
 */
import { z } from 'zod';
import {
  defineFactor,
  FACTOR_API_VERSION,
  type AmrValue,
  type CodeChannel,
  type CodeRules,
  type CodeStatus,
  type Credential,
  type Factor,
  type FactorAccount,
  type FactorContext,
  type MessageRef,
  type StepView,
} from './types.ts';

/** The settings every code factor shares (FACTOR_SETTINGS), with NIST SP 800-63B's numbers as defaults. */
export const codeSettingsShape = {
  /** Digits per code (NIST: at least 6). */
  length: z.number().int().min(6).max(10).default(6),
  /** Seconds a code works. */
  ttl: z.number().int().min(60).max(3600).default(600),
  /** Wrong tries per code; a new code inherits the tries spent on the one it replaces. */
  attempts: z.number().int().min(1).max(10).default(5),
  /** Seconds before another code may be sent. */
  cooldown: z.number().int().min(0).max(3600).default(60),
};
export const CODE_DEFAULTS = { length: 6, ttl: 600, attempts: 5, cooldown: 60 };
export type CodeSettings = { length: number; ttl: number; attempts: number; cooldown: number };

export function rulesOf(settings: CodeSettings): CodeRules {
  return { length: settings.length, ttlSeconds: settings.ttl, maxAttempts: settings.attempts, cooldownSeconds: settings.cooldown };
}

type Parsed = { ok: true; to: string } | { ok: false; message: MessageRef };

export interface DeliveredCodeOptions<S extends CodeSettings> {
  id: string;
  /** Every amr value the factor may contribute. */
  amr: AmrValue[];
  settings: z.ZodType<S>;
  viewsDir: string;
  messagesDir: string;
  /** The channel codes normally go over. */
  channel: Exclude<CodeChannel, 'voice'>;
  /** Why the factor is off when this deployment does not deliver over its channel: one line for the start-up log, saying what to configure. */
  noChannel: string;
  /** Whether a voice call may stand in for a text message (sms-code with `voice: true`). */
  voice?: (settings: S) => boolean;
  /** The form field holding the address (`email`, `phone`). */
  field: string;
  /** Reads and normalises the address the user typed. */
  parse(value: string): Parsed;
  /** The address as pages show it to someone who may not own it. */
  mask(to: string): string;
  /** The credential's label in listings. */
  credentialLabel(to: string): MessageRef;
  /** What to offer at enrolment (the account's email address). */
  suggest?(account: FactorAccount): string | undefined;
  /** The amr value a code delivered over `channel` proves. */
  amrFor(channel: CodeChannel): AmrValue;
  /**
   * The factor's own words, keys of its catalogue: its buttons (send a code, call instead when
   * `voice` allows it, use another address), and what an enrolment says when the address it was
   * sending to is gone (the step expired).
   */
  words: { send: MessageRef; call?: MessageRef; change: MessageRef; enterAgain: MessageRef };
}

interface Pending {
  scope: string;
  to: string;
}

const cleanCode = (value: string | undefined) => (value ?? '').replace(/[\s-]/g, '');

/** Builds a factor that proves an address by sending a code to it. */
export function defineDeliveredCodeFactor<S extends CodeSettings>(o: DeliveredCodeOptions<S>): Factor<S> {
  const voiceOn = (settings: S) => o.voice?.(settings) ?? false;
  const minutes = (settings: S) => Math.round(settings.ttl / 60);
  /** What a page says about a code already sent: the minutes it has left, not its full lifetime. */
  const left = (status: CodeStatus) => Math.max(1, Math.ceil((status.expiresAt.getTime() - Date.now()) / 60_000));

  const callButton = (settings: S) => (voiceOn(settings) && o.words.call ? [{ name: 'call', label: o.words.call }] : []);

  function codeInput(
    ctx: FactorContext<S>,
    input: Record<string, string>,
  ): { ok: true; code: string } | { ok: false; reason: 'invalid_input'; message: MessageRef } {
    const code = cleanCode(input.code);
    if (!new RegExp(`^\\d{${ctx.settings.length}}$`).test(code))
      return { ok: false, reason: 'invalid_input', message: { key: 'codes.format', params: { digits: ctx.settings.length } } };
    return { ok: true, code };
  }

  return defineFactor<S>({
    apiVersion: FACTOR_API_VERSION,
    id: o.id,
    // Possession of a mailbox or a phone line: something you have, never phishing-resistant (a code can be typed into a fake page).
    kinds: ['have'],
    amr: o.amr,
    phishingResistant: false,
    firstFactor: false,
    recoveryOnly: false,
    multiple: false,
    settings: o.settings,
    // A code nobody can receive would lock people out: without its channel the factor is off.
    enabled: (_settings, environment) => environment.channels.includes(o.channel) || o.noChannel,
    viewsDir: o.viewsDir,
    messagesDir: o.messagesDir,

    async beginEnrollment(ctx): Promise<StepView> {
      const { settings, services } = ctx;
      const pending = await services.state.get<Pending>('pending');
      const status = pending && (await services.outOfBand.status(pending.scope, rulesOf(settings)));
      if (pending && status) {
        return {
          partial: `${o.id}/enroll`,
          data: { sent: true, to: pending.to, digits: settings.length, minutes: left(status), byVoice: status.channel === 'voice' },
          actions: [{ name: 'resend', label: { key: 'codes.resend' } }, ...callButton(settings), { name: 'change', label: o.words.change }],
        };
      }
      return {
        partial: `${o.id}/enroll`,
        data: { sent: false, value: pending?.to ?? o.suggest?.(ctx.account) ?? '', minutes: minutes(settings) },
        submit: { label: o.words.send, action: 'send' },
        actions: callButton(settings),
      };
    },

    async finishEnrollment(ctx, input) {
      const { services } = ctx;
      const pending = await services.state.get<Pending>('pending');
      if (!pending) return { ok: false, reason: 'expired', message: { key: 'codes.sendFirst' } };
      const parsed = codeInput(ctx, input);
      if (!parsed.ok) return parsed;
      const checked = await services.outOfBand.check(pending.scope, parsed.code);
      if (!checked.ok) return checked;
      // The code proved the address; the pending enrolment is finished once, whoever races.
      if ((await services.state.take<Pending>('pending')) === undefined) return { ok: false, reason: 'already_used' };
      return {
        ok: true,
        proves: true,
        amr: [o.amrFor(checked.channel)],
        credential: { label: o.credentialLabel(pending.to), secret: pending.to, data: { channel: o.channel } },
        ...(o.channel === 'email' ? { provedEmail: pending.to } : {}),
      };
    },

    async beginChallenge(ctx, credentials: Credential[]): Promise<StepView> {
      const { settings, services } = ctx;
      const credential = credentials[0];
      const to = credential?.secret ? o.mask(credential.secret) : '';
      const status = credential && (await services.outOfBand.status(credential.id, rulesOf(settings)));
      if (status) {
        return {
          partial: `${o.id}/challenge`,
          data: { sent: true, to, digits: settings.length, minutes: left(status), attemptsLeft: status.attemptsLeft, byVoice: status.channel === 'voice' },
          actions: [{ name: 'resend', label: { key: 'codes.resend' } }, ...callButton(settings)],
          // Once the code has expired, the page offers to send one again.
          expiresAt: status.expiresAt,
        };
      }
      return {
        partial: `${o.id}/challenge`,
        data: { sent: false, to, digits: settings.length, minutes: minutes(settings) },
        submit: { label: o.words.send, action: 'send' },
        actions: callButton(settings),
      };
    },

    async verify(ctx, credentials, input) {
      const parsed = codeInput(ctx, input);
      if (!parsed.ok) return parsed;
      const credential = credentials[0]!;
      const checked = await ctx.services.outOfBand.check(credential.id, parsed.code);
      if (!checked.ok) return checked;
      return { ok: true, credentialId: credential.id, amr: [o.amrFor(checked.channel)] };
    },

    async act(ctx, request, input) {
      const { settings, services } = ctx;
      const rules = rulesOf(settings);
      const call = request.action === 'call';
      if (call && !voiceOn(settings)) return { ok: false, reason: 'invalid_input' };
      const channel: CodeChannel = call ? 'voice' : o.channel;

      if (request.step === 'challenge') {
        if (!['send', 'resend', 'call'].includes(request.action)) return { ok: false, reason: 'invalid_input' };
        const credential = request.credentials[0]!;
        if (!credential.secret) throw new Error(`${o.id} credential ${credential.id} has no address`);
        const sent = await services.outOfBand.send({ scope: credential.id, channel, to: credential.secret, purpose: 'sign-in', rules });
        return sent.ok ? { ok: true } : sent;
      }

      const pending = await services.state.get<Pending>('pending');
      if (request.action === 'change') {
        await services.state.take('pending');
        return { ok: true };
      }
      let to: string;
      if (request.action === 'resend' || (call && pending && input[o.field] === undefined)) {
        if (!pending) return { ok: false, reason: 'expired', message: o.words.enterAgain };
        to = pending.to;
      } else if (request.action === 'send' || call) {
        const parsed = o.parse(input[o.field] ?? '');
        if (!parsed.ok) return { ok: false, reason: 'invalid_input', message: parsed.message };
        to = parsed.to;
      } else {
        return { ok: false, reason: 'invalid_input' };
      }
      // The same address keeps its scope (a resend replaces the code and keeps its spent tries); a new one starts afresh.
      const scope = pending && pending.to === to ? pending.scope : `enroll:${services.randomBytes(12).toString('base64url')}`;
      const sent = await services.outOfBand.send({ scope, channel, to, purpose: 'enroll', rules });
      if (!sent.ok) return sent;
      await services.state.set('pending', { scope, to } satisfies Pending, settings.ttl + 60);
      return { ok: true };
    },
  });
}
