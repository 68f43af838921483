/**
 * A phone running the push example's app, and the push relay that wakes it:
 * the relay is the factor's `http` transport (it receives what the factor
 * sends and answers as a relay would), the phone pairs from what enrolment
 * shows and signs its answers with the key, as examples/factor-push/protocol.ts
 * says.
 */
import type { HttpTransport } from '../../src/mfa/factor-http.ts';
import type { FactorRequest } from '../../factors/types.ts';
import { pairingCode, signedAnswer, type Decision, type Notification } from '../../examples/factor-push/protocol.ts';

export const RELAY_URL = 'https://relay.example.test/v1/notify';
export const RELAY_TOKEN = 'relay-token-for-tests-0123456789';

export class PushPhone {
  readonly notifications: Notification[] = [];
  /** Every call the relay received: what the audit may name, and what it may not. */
  readonly calls: Array<{ method: string; url: string; headers: Record<string, string>; body?: string }> = [];
  /** Set to make the relay fail (the phone is then not reached). */
  down = false;

  readonly transport: HttpTransport = async ({ method, url, headers, body }) => {
    this.calls.push({ method, url: url.toString(), headers, body });
    if (this.down) throw new Error('relay unreachable');
    const authorised = url.toString() === RELAY_URL && headers.authorization === `Bearer ${RELAY_TOKEN}` && method === 'POST';
    if (!authorised) return { status: 401, headers: { 'content-type': 'application/json' }, body: [Buffer.from('{"error":"unauthorized"}')] };
    this.notifications.push(JSON.parse(body ?? '{}') as Notification);
    return { status: 202, headers: { 'content-type': 'application/json' }, body: [Buffer.from('{"queued":true}')] };
  };

  /** The pairing code the app shows for what the enrolment page showed. */
  pair(shown: { device?: unknown; key?: unknown }): string {
    return pairingCode(String(shown.key), String(shown.device));
  }

  /** The request the relay delivered for this device, newest first; undefined if none reached it. */
  delivered(device: string, request?: string): Notification | undefined {
    return [...this.notifications].reverse().find((n) => n.device === device && (request === undefined || n.request === request));
  }

  /** The signed call the app makes to answer `request`, at `now` (the provider's time). */
  answer(key: string, device: string, request: string, decision: Decision, now = new Date()): { body: string; headers: Record<string, string> } {
    return signedAnswer(key, { request, device, decision }, now);
  }

  /** The same, as the plain request the factor's callback route hands it. */
  callback(key: string, device: string, request: string, decision: Decision, now = new Date()): FactorRequest {
    const { body, headers } = this.answer(key, device, request, decision, now);
    const lower = Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('x-push-')));
    return { method: 'POST', query: {}, form: JSON.parse(body) as Record<string, string>, body, headers: lower };
  }
}
