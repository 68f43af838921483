/**
 * A stand-in for an operator's SMS gateway: a local HTTP server that checks
 * every request's signature as docs/factors.md tells operators to (written here
 * from the documentation, not with Twofold's own code), keeps what it got, and
 * can be told to fail (answer 500) or to hang (no answer).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatewayRequest {
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown>;
  signatureValid: boolean;
}

export interface SmsGateway {
  url: string;
  secret: string;
  requests: GatewayRequest[];
  /** `ok` answers 202; `fail` 500; `hang` never answers; `slow` answers 202 after `delayMs`. */
  mode: 'ok' | 'fail' | 'hang' | 'slow';
  /** How long `slow` takes to answer. */
  delayMs: number;
  /** The code in the newest message to `phone`. */
  latestCode(phone: string): string;
  close(): Promise<void>;
}

/** The receiver check of docs/factors.md: HMAC-SHA256 over "<t>.<raw body>", constant-time, at most 5 minutes old. */
export function verify(secret: string, header: string | undefined, raw: string): boolean {
  const fields = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=')));
  const t = Number(fields.t);
  if (!Number.isFinite(t) || Math.abs(Date.now() / 1000 - t) > 300 || typeof fields.v1 !== 'string') return false;
  const expected = crypto.createHmac('sha256', secret).update(`${fields.t}.${raw}`).digest('hex');
  return fields.v1.length === expected.length && crypto.timingSafeEqual(Buffer.from(fields.v1), Buffer.from(expected));
}

export async function startSmsGateway(secret = crypto.randomBytes(32).toString('hex')): Promise<SmsGateway> {
  const hanging = new Set<http.ServerResponse>();
  const gateway: SmsGateway = {
    url: '',
    secret,
    requests: [],
    mode: 'ok',
    delayMs: 0,
    latestCode(phone) {
      const last = gateway.requests.filter((r) => r.body.to === phone && r.signatureValid).at(-1);
      if (!last) throw new Error(`no message to ${phone}`);
      return String(last.body.code);
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        /* kept as {} */
      }
      gateway.requests.push({ headers: req.headers, raw, body, signatureValid: verify(secret, req.headers['twofold-signature'] as string | undefined, raw) });
      if (gateway.mode === 'hang') {
        hanging.add(res);
        return;
      }
      if (gateway.mode === 'slow') {
        hanging.add(res);
        const timer = setTimeout(() => {
          hanging.delete(res);
          if (!res.destroyed) res.writeHead(202, { 'content-type': 'application/json' }).end('{"queued":true}');
        }, gateway.delayMs);
        res.once('close', () => clearTimeout(timer));
        return;
      }
      if (gateway.mode === 'fail') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('gateway exploded');
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"queued":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  gateway.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sms`;
  return gateway;
}
