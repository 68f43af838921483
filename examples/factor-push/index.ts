/**
 * Approve on your phone: a Twofold factor that lives outside Twofold's tree.
 *
 * Enrolment pairs a phone: a key and a device id are made, shown for the app,
 * and stored sealed as the credential's secret once the app's pairing code is
 * typed back. Sign-in asks the phone (through the operator's push relay, with
 * the engine's `http` service), and the page waits; the phone's answer arrives
 * signed at the factor's callback, and the waiting page's next check finds it.
 * See protocol.ts for the wire format.
 *
 * It uses only what the contract gives: types from `twofold/factor`, zod for
 * its settings, and the engine's services (no database, no fetch, no Koa).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { CallbackContext, Credential, Factor, FactorContext, FactorRequest, Failure, MessageRef, StepView } from 'twofold/factor';
import { HEADERS, pairingCode, sign, type Notification } from './protocol.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const pushSettings = z
  .object({
    /** Seconds a request waits for the phone's answer. */
    ttl: z.number().int().min(30).max(600).default(120),
    /** The push relay that wakes the phone app: the factor POSTs each request here. */
    notifyUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Sent to the relay as a bearer token. */
    notifyToken: z.string().min(16).optional().meta({ secret: true }),
  })
  .default({ ttl: 120 });
export type PushSettings = z.infer<typeof pushSettings>;

/** What a pairing in progress keeps in step state (the key never leaves the server but on the page that shows it). */
interface Pairing {
  device: string;
  key: string;
}

/** The request a sign-in put to the phone, in step state. */
interface Asked {
  id: string;
  credentialId: string;
}

const PAIRING_TTL = 15 * 60;
const message = (key: string, params?: MessageRef['params']): MessageRef => ({ key: `push.${key}`, ...(params ? { params } : {}) });
const failure = (reason: Failure['reason'], key: string, credentialId?: string): Failure => ({
  ok: false,
  reason,
  message: message(key),
  ...(credentialId ? { credentialId } : {}),
});

/** The callback's JSON body. */
const answerSchema = z.object({
  request: z.string().min(1).max(128),
  device: z.string().min(1).max(64),
  decision: z.enum(['approve', 'deny']),
});

async function notify(ctx: FactorContext<PushSettings>, note: Notification): Promise<boolean> {
  const { notifyUrl, notifyToken } = ctx.settings;
  if (!notifyUrl) return false;
  const sent = await ctx.services.http.request({
    method: 'POST',
    url: notifyUrl,
    headers: notifyToken ? { authorization: `Bearer ${notifyToken}` } : {},
    json: note,
    timeoutMs: 5000,
    maxBytes: 4096,
  });
  return sent.ok && sent.status >= 200 && sent.status < 300;
}

const push: Factor<PushSettings> = {
  apiVersion: 2,
  id: 'push',
  // Something you have (the phone holding the key); answered on another channel than the browser's.
  kinds: ['have'],
  amr: ['swk', 'mca'],
  // The person approves what the page asks without seeing where it came from: a fake page can relay it.
  phishingResistant: false,
  firstFactor: false,
  recoveryOnly: false,
  multiple: false,
  waits: true,
  routes: { callback: { headers: [HEADERS.timestamp, HEADERS.nonce, HEADERS.signature] } },
  settings: pushSettings,
  viewsDir: path.join(HERE, 'views'),
  messagesDir: path.join(HERE, 'messages'),

  async beginEnrollment(ctx): Promise<StepView> {
    const { services } = ctx;
    let pairing = await services.state.get<Pairing>('pairing');
    if (!pairing) {
      pairing = { device: services.randomBytes(12).toString('base64url'), key: services.randomBytes(32).toString('base64url') };
      await services.state.set('pairing', pairing, PAIRING_TTL);
    }
    const uri = `twofold-push://pair?issuer=${encodeURIComponent(services.issuer)}&device=${pairing.device}&key=${pairing.key}`;
    return { partial: 'push/enroll', data: { device: pairing.device, key: pairing.key, uri } };
  },

  async finishEnrollment(ctx, input) {
    const { services } = ctx;
    const pairing = await services.state.get<Pairing>('pairing');
    if (!pairing) return failure('expired', 'failure.pairingExpired');
    const code = (input.code ?? '').replace(/\s/g, '');
    if (!/^\d{6}$/.test(code)) return failure('invalid_input', 'failure.pairingFormat');
    if (!services.constantTimeEqual(code, pairingCode(pairing.key, pairing.device))) return failure('wrong', 'failure.pairingWrong');
    // The pairing is used once, whoever races.
    if ((await services.state.take('pairing')) === undefined) return { ok: false, reason: 'already_used' };
    const label = (input.label ?? '').trim().slice(0, 64) || message('credential');
    return {
      ok: true,
      proves: true,
      amr: ['swk'],
      credential: { label, secret: pairing.key, lookupKey: `push:${pairing.device}`, data: { device: pairing.device } },
    };
  },

  async beginChallenge(ctx, credentials: Credential[]): Promise<StepView> {
    const { settings, services } = ctx;
    const phone = credentials.find((c) => c.factorId === 'push' && c.secret);
    const expiresAt = new Date(services.clock.now().getTime() + settings.ttl * 1000);
    if (!phone) return { partial: 'push/challenge', data: { reached: false }, expiresAt };
    // A number shown on the page and on the phone: the person approves the request they started, not any.
    const number = 10 + (services.randomBytes(1)[0]! % 90);
    const asked = await services.answers.open({ credentialId: phone.id, ttlSeconds: settings.ttl, data: { number } });
    await services.state.set('asked', { id: asked.id, credentialId: phone.id } satisfies Asked, settings.ttl + 60);
    const device = String(phone.data.device);
    const reached = await notify(ctx, { device, request: asked.id, number, expiresAt: asked.expiresAt.toISOString(), issuer: services.issuer });
    // `request` is not shown; it names the question for whoever holds the view (a test playing the phone).
    return { partial: 'push/challenge', data: { number, phone: phone.label, reached, request: asked.id }, expiresAt: asked.expiresAt };
  },

  // The person's input plays no part: the answer comes from the phone, through the callback.
  async verify(ctx, credentials) {
    const asked = await ctx.services.state.get<Asked>('asked');
    if (!asked) return failure('expired', 'failure.expired');
    const got = await ctx.services.answers.take(asked.id);
    switch (got.status) {
      case 'pending':
        return { ok: false, reason: 'pending' };
      case 'expired':
        return failure('expired', 'failure.expired');
      case 'taken':
        return { ok: false, reason: 'already_used' };
      case 'answered': {
        // A phone removed since it was asked proves nothing.
        if (!credentials.some((c) => c.id === got.credentialId)) return { ok: false, reason: 'not_enrolled' };
        if (got.answer.decision !== 'approve') return failure('wrong', 'failure.denied', got.credentialId);
        return { ok: true, credentialId: got.credentialId };
      }
    }
  },

  async handleCallback(ctx: CallbackContext<PushSettings>, request: FactorRequest) {
    const { services } = ctx;
    let parsed;
    try {
      parsed = answerSchema.safeParse(JSON.parse(request.body));
    } catch {
      return { ok: false, reason: 'invalid_input' };
    }
    const timestamp = request.headers[HEADERS.timestamp] ?? '';
    const nonce = request.headers[HEADERS.nonce] ?? '';
    const signature = request.headers[HEADERS.signature] ?? '';
    if (!parsed.success || !/^\d{1,12}$/.test(timestamp) || !nonce || !signature) return { ok: false, reason: 'invalid_input' };
    const answer = parsed.data;
    const asked = await services.answers.find(answer.request);
    // Unknown or expired alike: the caller learns nothing about other requests.
    if (!asked) return { ok: false, reason: 'expired' };
    const key = asked.credential.secret;
    if (!key || asked.credential.data.device !== answer.device) return { ok: false, reason: 'wrong' };
    if (!services.constantTimeEqual(signature, sign(key, timestamp, nonce, request.body))) return { ok: false, reason: 'wrong' };
    // Authentic; now fresh and never seen before, in any process.
    const fresh = await services.acceptOnce(nonce, new Date(Number(timestamp) * 1000));
    if (!fresh.ok) return fresh;
    if (!(await services.answers.answer(answer.request, { decision: answer.decision }))) return { ok: false, reason: 'already_used' };
    return { ok: true, body: { recorded: answer.decision } };
  },
};

export default push;
