/**
 * Behind a TLS-terminating proxy, and in front of a forger: every public URL
 * comes from ISSUER (https://id.example.test), whatever Host, X-Forwarded-Host,
 * X-Forwarded-Proto or the request target say, with proxy trust on and off;
 * no forwarded header, well-formed or not, causes a 500. With trust on the
 * proxy's X-Forwarded-Proto decides HSTS and its right-most X-Forwarded-For is
 * the address the throttles count; with trust off both are ignored.
 *
 * Requests go over node:http to 127.0.0.1 with the headers a proxy (or an
 * attacker) would send, since fetch would not let us set Host.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { formAction } from '../helpers/user-agent.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const ISSUER = 'https://id.example.test';
const REDIRECT = 'https://app.example.test/callback';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One raw HTTP/1.1 request to the provider's port: any Host, any request target, any headers. */
function raw(port: number, target: string, headers: Record<string, string>, init: { method?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: init.method ?? 'GET', path: target, headers: { connection: 'close', ...headers }, setHost: !('host' in headers) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

const setCookies = (a: Answer) => a.headers['set-cookie'] ?? [];

/** A browser behind the proxy: talks to https://id.example.test, which the "proxy" maps to our port with its headers. */
class ProxiedBrowser {
  readonly cookies = new Map<string, string>();
  readonly hops: Answer[] = [];
  constructor(
    readonly port: number,
    readonly proxyHeaders: Record<string, string>,
  ) {}

  async request(url: string, form?: Record<string, string>): Promise<Answer & { location?: string }> {
    const absolute = new URL(url, ISSUER);
    expect(absolute.origin).toBe(ISSUER);
    const headers: Record<string, string> = { host: 'id.example.test', accept: 'text/html', ...this.proxyHeaders };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = ISSUER;
    }
    const answer = await raw(this.port, `${absolute.pathname}${absolute.search}`, headers, { method: form ? 'POST' : 'GET', body });
    this.hops.push(answer);
    for (const line of setCookies(answer)) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(pair!.slice(0, eq).trim());
      else this.cookies.set(pair!.slice(0, eq).trim(), value);
    }
    const location = answer.headers.location ? new URL(answer.headers.location, absolute).toString() : undefined;
    return { ...answer, location };
  }

  async follow(url: string, form?: Record<string, string>) {
    let hop = await this.request(url, form);
    for (let i = 0; i < 10 && hop.location?.startsWith(`${ISSUER}/`); i++) hop = await this.request(hop.location);
    return hop;
  }
}

/** Header sets a forger (or a confused proxy) might send. */
const FORGERIES: Array<[string, Record<string, string>]> = [
  ['a forged Host', { host: 'evil.example' }],
  ['a forged Host with a port', { host: 'evil.example:8443' }],
  ['a Host with a space', { host: 'a b' }],
  ['X-Forwarded-Host', { host: 'id.example.test', 'x-forwarded-host': 'evil.example' }],
  ['a malformed X-Forwarded-Host', { host: 'id.example.test', 'x-forwarded-host': 'a b' }],
  ['X-Forwarded-Proto: http', { host: 'id.example.test', 'x-forwarded-proto': 'http' }],
  ['a malformed X-Forwarded-Proto', { host: 'id.example.test', 'x-forwarded-proto': 'gopher, https' }],
  ['a malformed X-Forwarded-For', { host: 'id.example.test', 'x-forwarded-for': 'not an address, ;;' }],
  [
    'every forged header at once',
    { host: 'evil.example', 'x-forwarded-host': 'evil2.example', 'x-forwarded-proto': 'http', 'x-forwarded-for': '203.0.113.66' },
  ],
];

const ENDPOINTS = [
  'authorization_endpoint',
  'token_endpoint',
  'userinfo_endpoint',
  'jwks_uri',
  'introspection_endpoint',
  'revocation_endpoint',
  'end_session_endpoint',
];

for (const kind of DIALECTS) {
  describe.each([
    ['on', 'true'],
    ['off', 'false'],
  ])(`proxy trust %s, https issuer, on ${kind}`, (trust, TRUST_PROXY) => {
    let database: TestDatabase;
    let server: TestServer;
    let clientId: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { ISSUER, TRUST_PROXY });
      const { db, hasher, sealer } = server.opened.services;
      await createAccount(db, hasher, { username: 'alice', email: 'alice@example.test', password: 'correct horse battery' });
      clientId = (await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true })).clientId;
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    const authPath = () =>
      `/auth?${new URLSearchParams({ client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's1', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`;

    test.each(FORGERIES)('discovery shows the issuer’s endpoints despite %s', async (_name, headers) => {
      const answer = await raw(server.port, '/.well-known/openid-configuration', headers);
      expect(answer.status).toBe(200);
      const meta = JSON.parse(answer.body) as Record<string, string>;
      expect(meta.issuer).toBe(ISSUER);
      for (const key of ENDPOINTS) expect(meta[key]).toMatch(/^https:\/\/id\.example\.test\//);
    });

    test('an absolute-form request target does not choose the host', async () => {
      const answer = await raw(server.port, 'http://evil.example/.well-known/openid-configuration', { host: 'evil.example' });
      expect(answer.status).toBe(200);
      const meta = JSON.parse(answer.body) as Record<string, string>;
      for (const key of ENDPOINTS) expect(meta[key]).toMatch(/^https:\/\/id\.example\.test\//);
    });

    test.each(FORGERIES)('the authorization endpoint answers without a 500 despite %s, with Secure cookies', async (_name, headers) => {
      const answer = await raw(server.port, authPath(), { accept: 'text/html', ...headers });
      expect(answer.status).toBe(303);
      expect(answer.headers.location).toMatch(/^\/interaction\//);
      const cookies = setCookies(answer);
      expect(cookies.length).toBeGreaterThan(0);
      // An https issuer's cookies are always Secure: a forged scheme cannot downgrade them.
      for (const line of cookies) expect(line).toMatch(/;\s*secure/i);
    });

    test('health probes answer whatever the Host', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const answer = await raw(server.port, path, { host: '10.1.2.3:8080' });
        expect(answer.status).toBe(200);
      }
    });

    test('a sign-in through the TLS proxy: every hop stays on the issuer, cookies are Secure', async () => {
      const browser = new ProxiedBrowser(server.port, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.20' });
      const page = await browser.follow(`${ISSUER}${authPath()}`);
      expect(page.status).toBe(200);
      const done = await browser.follow(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      expect(done.location).toMatch(/^https:\/\/app\.example\.test\/callback\?code=/);
      expect(new URL(done.location!).searchParams.get('iss')).toBe(ISSUER);
      for (const hop of browser.hops) {
        expect(hop.status).toBeLessThan(500);
        if (hop.headers.location && !hop.headers.location.startsWith('/')) expect(hop.headers.location).toMatch(/^https:\/\/(id|app)\.example\.test\//);
        for (const line of setCookies(hop)) expect(line).toMatch(/;\s*secure/i);
      }
      expect(browser.hops.some((hop) => setCookies(hop).some((c) => c.startsWith('twofold.session=')))).toBe(true);
      // The known-browser cookie the throttles read: HttpOnly, SameSite, Secure, only for the sign-in pages.
      const known = browser.hops.flatMap(setCookies).find((c) => c.startsWith('twofold.known='));
      expect(known).toMatch(/;\s*path=\/interaction;/i);
      for (const attribute of [/;\s*httponly/i, /;\s*samesite=strict/i, /;\s*secure/i]) expect(known).toMatch(attribute);
    });

    test(`HSTS only when the proxy says TLS${trust === 'on' ? '' : ' (never: the header is not trusted)'}`, async () => {
      const https = await raw(server.port, '/.well-known/openid-configuration', { host: 'id.example.test', 'x-forwarded-proto': 'https' });
      expect(https.headers['strict-transport-security']).toBe(trust === 'on' ? 'max-age=31536000' : undefined);
      for (const proto of ['http', 'https, https', 'HTTPS ', 'https;q=1']) {
        const other = await raw(server.port, '/.well-known/openid-configuration', { host: 'id.example.test', 'x-forwarded-proto': proto });
        expect(other.status).toBe(200);
        // Only a single well-formed value counts ('HTTPS ' trims to one).
        expect(other.headers['strict-transport-security']).toBe(trust === 'on' && proto === 'HTTPS ' ? 'max-age=31536000' : undefined);
      }
    });

    test(`the throttled client address ${trust === 'on' ? 'is the right-most X-Forwarded-For entry' : 'ignores X-Forwarded-For'}`, async () => {
      const { db } = server.opened.services;
      const attempt = async (xff: string) => {
        const browser = new ProxiedBrowser(server.port, { 'x-forwarded-proto': 'https', 'x-forwarded-for': xff });
        const page = await browser.follow(`${ISSUER}${authPath()}`);
        const answer = await browser.follow(formAction(page.body), { login: 'alice', password: 'wrong password' });
        expect(answer.status).toBe(401);
      };
      const addresses = async () =>
        (await db.selectFrom('rate_limits').select('key').where('key', 'like', 'pwd:ip:%').execute()).map((r) => r.key.slice('pwd:ip:'.length));
      await db.deleteFrom('rate_limits').execute();
      await attempt('192.0.2.1, 198.51.100.77');
      // Not an address: the socket's address counts, so a malformed header cannot dodge the throttle.
      await attempt('198.51.100.78 junk');
      const seen = new Set(await addresses());
      if (trust === 'on') {
        expect(seen).toEqual(new Set(['198.51.100.77', '127.0.0.1']));
      } else {
        expect(seen).toEqual(new Set(['127.0.0.1']));
      }
    });
  });
}
