/**
 * Outgoing HTTP for factors (a push relay, a vendor's API): every call has a
 * timeout and a response size limit, and leaves an audit record that names
 * the method, host, path, status and duration, never the query, the headers
 * or a body, which is where API keys and codes travel. Failures are values
 * (`unavailable`), never exceptions into a sign-in.
 *
 * The transport is what actually talks to the network: fetch (undici) in a
 * provider, a function of the test's own in tests (OpenServicesOptions), so a
 * factor's calls are seen and answered without a network.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { FactorHttp, HttpRequest, HttpResult } from '../../factors/types.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';

/** What a transport is asked: the URL checked, the headers and body final, and the signal that ends the call. */
export interface TransportRequest {
  method: HttpRequest['method'];
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: Record<string, string>;
  /** The body as it arrives (chunks); the service stops reading past the size limit. */
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | null;
}

export type HttpTransport = (request: TransportRequest) => Promise<TransportResponse>;

export const DEFAULT_TIMEOUT_MS = 10_000;
export const MAX_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BYTES = 256 * 1024;
export const MAX_BYTES = 5 * 1024 * 1024;

/** The network, through Node's fetch (undici). Redirects are answers, not followed: a call goes to the host it names. */
export const fetchTransport: HttpTransport = async ({ method, url, headers, body, signal }) => {
  const res = await fetch(url, { method, headers, body, signal, redirect: 'manual' });
  return {
    status: res.status,
    headers: Object.fromEntries(res.headers),
    body: res.body as AsyncIterable<Uint8Array> | null,
  };
};

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

function clamp(value: number | undefined, fallback: number, max: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.min(Math.floor(value), max) : fallback;
}

/** Reads at most `limit` bytes; undefined when there are more. */
async function readLimited(body: TransportResponse['body'], limit: number, signal: AbortSignal): Promise<Buffer | undefined> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (signal.aborted) throw signal.reason;
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** The service one factor gets; `audit` says on whose behalf it calls (the account, the client address). */
export function factorHttp(db: Kysely<Database>, transport: HttpTransport, factorId: string, audit: AuditContext = {}): FactorHttp {
  return {
    async request(request: HttpRequest): Promise<HttpResult> {
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        throw new Error(`factor ${factorId}: http.request needs an absolute URL`);
      }
      // A factor's own mistakes are bugs, not a person's failure.
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`factor ${factorId}: http.request supports http: and https: only`);
      if (!METHODS.has(request.method)) throw new Error(`factor ${factorId}: http.request method ${String(request.method)} is not supported`);
      if (url.username || url.password) throw new Error(`factor ${factorId}: http.request URLs carry no credentials (send them in a header)`);
      const headers: Record<string, string> = { ...request.headers };
      let body = request.body;
      if (request.json !== undefined) {
        body = JSON.stringify(request.json);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      }
      const timeout = clamp(request.timeoutMs, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
      const limit = clamp(request.maxBytes, DEFAULT_MAX_BYTES, MAX_BYTES);
      const signal = AbortSignal.timeout(timeout);
      const started = performance.now();
      let outcome: { status?: number; error?: 'timeout' | 'too_large' | 'network' };
      let result: HttpResult;
      try {
        const res = await transport({ method: request.method, url, headers, body, signal });
        const bytes = await readLimited(res.body, limit, signal);
        if (!bytes) {
          outcome = { status: res.status, error: 'too_large' };
          result = { ok: false, reason: 'unavailable' };
        } else {
          const text = bytes.toString('utf8');
          const lower = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k.toLowerCase(), v]));
          let json: unknown;
          if (/^application\/([a-z.+-]*\+)?json\b/i.test(lower['content-type'] ?? '')) {
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
          }
          outcome = { status: res.status };
          result = { ok: true, status: res.status, headers: lower, text, ...(json !== undefined ? { json } : {}) };
        }
      } catch {
        outcome = { error: signal.aborted ? 'timeout' : 'network' };
        result = { ok: false, reason: 'unavailable' };
      }
      await recordAudit(db, 'factor.http', audit, {
        factor: factorId,
        method: request.method,
        host: url.host,
        path: url.pathname,
        ...outcome,
        ms: Math.round(performance.now() - started),
      });
      return result;
    },
  };
}
