/**
 * The wire format between the provider and a phone app, shared by both ends
 * (the factor checks what a phone signs; a phone, or a test playing one,
 * signs with the same functions).
 *
 * Pairing: the factor makes a random 32-byte key and a device id at enrolment
 * and shows both; the app stores them and shows a 6-digit pairing code the
 * person types back, proving the key reached the phone.
 *
 * A request: the factor tells the push relay `{ device, request, number,
 * expiresAt, issuer }`; the relay wakes the app, which shows the number (the
 * page shows the same one) and asks "approve?".
 *
 * An answer: POST <issuer>/factor/push/callback with the JSON body
 * `{ "request", "device", "decision": "approve" | "deny" }` and three headers:
 * `x-push-timestamp` (Unix seconds), `x-push-nonce` (16 to 128 URL-safe
 * characters, new for every call) and `x-push-signature`: base64url
 * HMAC-SHA256 under the key of `<timestamp>.<nonce>.<body>`, over the body's
 * exact bytes. The provider refuses a call older or newer than five minutes
 * and a nonce it has seen.
 */
import crypto from 'node:crypto';

export const HEADERS = { timestamp: 'x-push-timestamp', nonce: 'x-push-nonce', signature: 'x-push-signature' } as const;

export type Decision = 'approve' | 'deny';

/** What the app answers, as the callback's JSON body. */
export interface Answer {
  request: string;
  device: string;
  decision: Decision;
}

/** What the factor tells the relay (and the relay the app). */
export interface Notification {
  device: string;
  request: string;
  number: number;
  expiresAt: string;
  issuer: string;
}

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'base64url');
}

export function sign(key: string, timestamp: string, nonce: string, body: string): string {
  return crypto.createHmac('sha256', keyBytes(key)).update(`${timestamp}.${nonce}.${body}`).digest('base64url');
}

/** The 6 digits the app shows after pairing: proof that it holds the key. */
export function pairingCode(key: string, device: string): string {
  const mac = crypto.createHmac('sha256', keyBytes(key)).update(`pair.${device}`).digest();
  return String(mac.readUInt32BE(0) % 1_000_000).padStart(6, '0');
}

/** What a phone sends: the body and its headers, signed now. */
export function signedAnswer(key: string, answer: Answer, now = new Date()): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(answer);
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const nonce = crypto.randomBytes(18).toString('base64url');
  return {
    body,
    headers: {
      'content-type': 'application/json',
      [HEADERS.timestamp]: timestamp,
      [HEADERS.nonce]: nonce,
      [HEADERS.signature]: sign(key, timestamp, nonce, body),
    },
  };
}
