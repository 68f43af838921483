/**
 * The http service factors get (src/mfa/factor-http.ts), through the real
 * transport (fetch) to a local server: answers within the limits come back
 * whole, a slow server times out, a large answer is cut off, a redirect is an
 * answer and not followed, a refused connection is `unavailable`; each call is
 * audited with the method, host, path, status and duration, never the query,
 * the headers or a body. A factor's own mistakes (a relative URL, another
 * scheme, credentials in the URL) are bugs and throw.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { factorHttp, fetchTransport } from '../../src/mfa/factor-http.ts';
import { listAudit } from '../../src/security/audit.ts';
import { freePort } from '../helpers/ports.ts';

let server: http.Server;
let base: string;
const seen: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const path = new URL(req.url!, 'http://x').pathname;
      if (path === '/slow') return setTimeout(() => res.end('late'), 2000);
      if (path === '/big') return res.end('x'.repeat(100_000));
      if (path === '/moved') return res.writeHead(302, { location: 'http://elsewhere.example.test/' }).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: body ? JSON.parse(body) : null }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

for (const kind of DIALECTS) {
  describe(`factor http service on ${kind}`, () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
    });
    afterAll(async () => {
      await database?.close();
    });

    test('a call within the limits comes back whole, and its audit names no secret', async () => {
      const client = factorHttp(database.db, fetchTransport, 'push', { accountId: null, actor: 'system' });
      const answer = await client.request({
        method: 'POST',
        url: `${base}/notify/abc?token=SECRET-IN-QUERY`,
        headers: { authorization: 'Bearer SECRET-IN-HEADER' },
        json: { code: 'SECRET-IN-BODY' },
      });
      expect(answer).toMatchObject({ ok: true, status: 200, json: { echo: { code: 'SECRET-IN-BODY' } } });
      expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/notify/abc?token=SECRET-IN-QUERY', body: '{"code":"SECRET-IN-BODY"}' });
      expect(seen.at(-1)!.headers['content-type']).toBe('application/json');
      const events = (await listAudit(database.db)).filter((e) => e.type === 'factor.http');
      expect(events.at(-1)!.details).toEqual({
        factor: 'push',
        method: 'POST',
        host: new URL(base).host,
        path: '/notify/abc',
        status: 200,
        ms: expect.any(Number),
      });
      expect(JSON.stringify(events)).not.toMatch(/SECRET/);
    });

    test('a slow server times out, a large answer is cut off, a redirect is not followed, a closed port is unavailable', async () => {
      const client = factorHttp(database.db, fetchTransport, 'push');
      const started = Date.now();
      expect(await client.request({ method: 'GET', url: `${base}/slow`, timeoutMs: 300 })).toEqual({ ok: false, reason: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await client.request({ method: 'GET', url: `${base}/big`, maxBytes: 10_000 })).toEqual({ ok: false, reason: 'unavailable' });
      expect(await client.request({ method: 'GET', url: `${base}/big` })).toMatchObject({ ok: true, status: 200 });
      expect(await client.request({ method: 'GET', url: `${base}/moved` })).toMatchObject({
        ok: true,
        status: 302,
        headers: { location: 'http://elsewhere.example.test/' },
      });
      const closed = await freePort();
      expect(await client.request({ method: 'GET', url: `http://127.0.0.1:${closed}/` })).toEqual({ ok: false, reason: 'unavailable' });
      const details = (await listAudit(database.db)).filter((e) => e.type === 'factor.http').map((e) => e.details);
      expect(details).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ path: '/slow', error: 'timeout' }),
          expect.objectContaining({ path: '/big', error: 'too_large' }),
          expect.objectContaining({ host: `127.0.0.1:${closed}`, error: 'network' }),
        ]),
      );
    });

    test("a factor's own mistakes throw: a relative URL, another scheme, credentials in the URL", async () => {
      const client = factorHttp(database.db, fetchTransport, 'push');
      await expect(client.request({ method: 'GET', url: '/relative' })).rejects.toThrow(/absolute URL/);
      await expect(client.request({ method: 'GET', url: 'file:///etc/passwd' })).rejects.toThrow(/http: and https:/);
      await expect(client.request({ method: 'GET', url: 'https://user:pass@example.test/' })).rejects.toThrow(/no credentials/);
    });
  });
}
