/**
 * Text messages and voice calls through the operator's own gateway: Twofold
 * POSTs one JSON object per message to SMS_WEBHOOK_URL and the gateway (a few
 * lines in front of Twilio, Vonage, an SMPP link…) delivers it. Each request
 * is signed so the gateway can refuse anything Twofold did not send:
 *
 *   Twofold-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(SMS_WEBHOOK_SECRET, "<t>.<raw body>")>
 *
 * The receiver recomputes the HMAC over the raw body, compares in constant
 * time, and refuses timestamps more than five minutes away (a replayed
 * request). Any 2xx answer means "taken"; anything else, a redirect, no
 * answer within SMS_WEBHOOK_TIMEOUT seconds or no connection is a failed
 * delivery. Twofold never retries by itself: the user is told and may ask again.
 */
import crypto from 'node:crypto';
import { DeliveryError } from './delivery-error.ts';

export const SIGNATURE_HEADER = 'Twofold-Signature';

/** What the gateway receives. */
export interface WebhookMessage {
  /** Unique per message: a gateway may use it to drop duplicates. */
  id: string;
  channel: 'sms' | 'voice';
  /** E.164, e.g. +447700900123. */
  to: string;
  /** The text to send, or for `voice` the words to read out. */
  message: string;
  /** The code alone, for gateways that format their own message. */
  code: string;
  purpose: 'sign-in' | 'enroll';
  /** ISO 8601. */
  expiresAt: string;
  /** Which provider sent it. */
  issuer: string;
  /** The language `message` is written in (BCP 47, e.g. `de`): a voice gateway picks its voice by it. */
  language: string;
}

export function sign(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** What a receiver does, in Node (docs/factors.md shows the same): true when the header signs this body and is fresh. */
export function verifySignature(
  secret: string,
  header: string | undefined,
  body: string,
  toleranceSeconds = 300,
  now = Math.floor(Date.now() / 1000),
): boolean {
  const parts = new Map((header ?? '').split(',').map((p) => p.trim().split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const given = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || Math.abs(now - t) > toleranceSeconds || !/^[0-9a-f]{64}$/.test(given)) return false;
  const expected = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return crypto.timingSafeEqual(expected, Buffer.from(given, 'hex'));
}

export interface SmsWebhookOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  userAgent?: string;
}

export class SmsWebhook {
  constructor(private readonly options: SmsWebhookOptions) {}

  async send(message: WebhookMessage): Promise<void> {
    const body = JSON.stringify(message);
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': this.options.userAgent ?? 'Twofold',
          [SIGNATURE_HEADER]: sign(this.options.secret, body),
        },
        body,
        // A redirect could carry the message somewhere the operator did not configure.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const name = (err as Error).name;
      const timedOut = name === 'TimeoutError' || name === 'AbortError';
      throw new DeliveryError(
        timedOut ? `SMS webhook: no answer within ${this.options.timeoutMs} ms` : `SMS webhook: ${(err as Error).message}`,
        message.channel,
        timedOut ? 'timeout' : 'unreachable',
        { cause: err },
      );
    }
    // Drain the body so the connection can be reused, but never wait long for it.
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status > 299) {
      throw new DeliveryError(`SMS webhook answered ${res.status}`, message.channel, 'rejected');
    }
  }
}
