/**
 * Operability, against a running provider on every database in the matrix:
 * /healthz and /readyz (ready, database gone, shutting down), the request id
 * (a well-formed X-Request-Id echoed and logged, anything else replaced), the
 * dummy password hash made before the first request, and graceful shutdown
 * (a request in flight when close() starts still gets its whole answer; new
 * connections are refused).
 *
 * In-flight requests are held deterministically with `Expect: 100-continue`:
 * the server's `100 Continue` says the request has reached the app, which then
 * waits for the body we have not sent yet.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { pino } from 'pino';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { applyLogLevel, logger } from '../../src/logger.ts';

/** Bytes from a raw socket until `until` matches what arrived (or the socket ends). */
function readUntil(socket: net.Socket, until: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (until(text)) done();
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('end', done);
      socket.off('error', reject);
      resolve(text);
    };
    socket.on('data', onData);
    socket.on('end', done);
    socket.on('error', reject);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Splits raw HTTP/1.1 responses (Content-Length framed, as Koa sends JSON). */
function responses(text: string): Array<{ status: number; headers: Record<string, string>; body: string }> {
  const out = [];
  let rest = text;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...headerLines] = rest.slice(0, end).split('\r\n');
    const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    const status = Number(statusLine!.split(' ')[1]);
    const length = Number(headers['content-length'] ?? 0);
    const body = rest.slice(end + 4, end + 4 + length);
    rest = rest.slice(end + 4 + length);
    if (status !== 100) out.push({ status, headers, body });
  }
  return out;
}

for (const kind of DIALECTS) {
  describe(`health and operability on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('/healthz and /readyz answer 200, never cached', async () => {
      const health = await fetch(new URL('/healthz', server.issuer));
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      expect(health.headers.get('cache-control')).toBe('no-store');
      const ready = await fetch(new URL('/readyz', server.issuer));
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready' });
      expect(ready.headers.get('cache-control')).toBe('no-store');
    });

    test('the dummy password hash is made at start-up, before any sign-in', () => {
      expect(server.opened.services.hasher.work).toEqual({ hashes: 1, verifications: 0 });
    });

    test('a well-formed X-Request-Id is echoed; a malformed or overlong one is replaced', async () => {
      const echoed = await fetch(new URL('/healthz', server.issuer), { headers: { 'x-request-id': 'lb-7f3a.9_Z-1' } });
      expect(echoed.headers.get('x-request-id')).toBe('lb-7f3a.9_Z-1');
      for (const bad of ['has space', '<script>', 'a'.repeat(65), 'semi;colon', 'new\\nline', '../../etc']) {
        const res = await fetch(new URL('/healthz', server.issuer), { headers: { 'x-request-id': bad } });
        expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      }
      // At the limit (64 characters) it is still echoed.
      const longest = 'b'.repeat(64);
      expect((await fetch(new URL('/healthz', server.issuer), { headers: { 'x-request-id': longest } })).headers.get('x-request-id')).toBe(longest);
      const made = await fetch(new URL('/healthz', server.issuer));
      expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      const again = await fetch(new URL('/healthz', server.issuer));
      expect(again.headers.get('x-request-id')).not.toBe(made.headers.get('x-request-id'));
    });

    test('each request is logged as one JSON line carrying its request id', async () => {
      // The logger's own destination, as pino writes to it (the test environment runs it silent).
      const stream = (logger as unknown as Record<symbol, { write(line: string): boolean }>)[pino.symbols.streamSym]!;
      const lines: string[] = [];
      const spy = jest.spyOn(stream, 'write').mockImplementation((line: string) => (lines.push(line), true));
      const previous = logger.level;
      applyLogLevel('info');
      try {
        const res = await fetch(new URL('/.well-known/openid-configuration', server.issuer), { headers: { 'x-request-id': 'trace-abc-123' } });
        expect(res.status).toBe(200);
        const replaced = await fetch(new URL('/jwks', server.issuer), { headers: { 'x-request-id': 'not valid!' } });
        const replacedId = replaced.headers.get('x-request-id');
        const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(entries).toContainEqual(
          expect.objectContaining({
            service: 'twofold',
            reqId: 'trace-abc-123',
            msg: 'request',
            method: 'GET',
            path: '/.well-known/openid-configuration',
            status: 200,
          }),
        );
        expect(entries).toContainEqual(expect.objectContaining({ reqId: replacedId, path: '/jwks', msg: 'request' }));
        expect(lines.join('')).not.toContain('not valid!');
        for (const line of lines) expect(line.endsWith('\n') && !line.slice(0, -1).includes('\n')).toBe(true);
      } finally {
        applyLogLevel(previous);
        spy.mockRestore();
      }
    });
  });

  describe(`readiness when the database is gone, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
    });

    afterAll(async () => {
      await server?.close();
    });

    test('/readyz turns 503 database_unreachable; /healthz stays 200', async () => {
      expect((await fetch(new URL('/readyz', server.issuer))).status).toBe(200);
      await database.close();
      const ready = await fetch(new URL('/readyz', server.issuer));
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'database_unreachable', since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
      expect((await fetch(new URL('/healthz', server.issuer))).status).toBe(200);
    });
  });

  describe(`graceful shutdown on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('a request in flight when close() starts gets its whole answer; /readyz behind it says shutting_down; new connections are refused', async () => {
      const body = 'grant_type=authorization_code&code=not-a-code&redirect_uri=http%3A%2F%2Fapp.example.test%2Fcb&client_id=nobody';
      const socket = await connect(server.port);
      socket.write(
        `POST /token HTTP/1.1\r\nHost: localhost:${server.port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
      );
      // The request is in the app now, waiting for its body.
      expect(await readUntil(socket, (t) => t.includes('\r\n\r\n'))).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);

      let closed = false;
      const closing = server.close().then(() => (closed = true));
      // The listening socket goes first: a new connection is refused while the old one is still served.
      for (;;) {
        const refused = await connect(server.port).then(
          (s) => (s.destroy(), false),
          (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
        );
        if (refused) break;
      }
      expect(closed).toBe(false);

      // The rest of the request, and a readiness probe pipelined behind it on the same connection.
      const answers = readUntil(socket, (t) => responses(t).length === 2);
      socket.write(`${body}GET /readyz HTTP/1.1\r\nHost: localhost:${server.port}\r\n\r\n`);
      const [token, ready] = responses(await answers);
      expect(token!.status).toBe(401);
      expect(JSON.parse(token!.body)).toMatchObject({ error: 'invalid_client' });
      expect(ready!.status).toBe(503);
      expect(JSON.parse(ready!.body)).toEqual({ status: 'shutting_down' });
      socket.end();
      await closing;
      expect(closed).toBe(true);
    });
  });
}
