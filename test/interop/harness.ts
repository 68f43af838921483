/**
 * What every interop suite shares: a provider on a database of the matrix,
 * apps registered with the exact `twofold client add` command the docs show,
 * accounts, and a browser that walks the provider's pages for whichever RP
 * sent it there (its cookie jar keeps one jar per origin, as a browser keeps
 * one per site, so the RP's cookies and the provider's stay apart).
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { cliRunner, type CliResult } from '../helpers/cli.ts';
import { ManualClock, totpCodeAt } from '../helpers/clock.ts';
import { newTotpSecret } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import type { DatabaseKind } from '../../src/db/database.ts';
import type { Services } from '../../src/services.ts';

export const PASSWORD = 'correct horse battery';
export const REFEDS_MFA = 'https://refeds.org/profile/mfa';
export const ACR1 = 'urn:twofold:acr:1';
export const ACR2 = 'urn:twofold:acr:2';
/** A claims parameter that makes the MFA level essential for the ID token (OIDC Core 5.5.1.1). */
export const ESSENTIAL_MFA = JSON.stringify({ id_token: { acr: { essential: true, values: [REFEDS_MFA] } } });

/** "name@version" of an installed npm package: each RP's describe names what it ran. */
export function npmVersion(name: string): string {
  const file = path.join(process.cwd(), 'node_modules', name, 'package.json');
  return `${name}@${(JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version}`;
}

export interface Provider {
  kind: DatabaseKind;
  database: TestDatabase;
  server: TestServer;
  services: Services;
  clock: ManualClock;
  issuer: string;
  run: (...argv: string[]) => Promise<CliResult>;
  close(): Promise<void>;
}

export async function startProvider(kind: DatabaseKind, env: Record<string, string> = {}): Promise<Provider> {
  const database = await createTestDatabase(kind);
  const clock = new ManualClock();
  // Back-channel deliveries are queued and sent at once; the poll only retries failures.
  const server = await startTestServer(database, { MFA: 'optional', ...env }, { clock, backchannelPollMs: 200 });
  const services = server.opened.services;
  const run = cliRunner(() => services);
  return {
    kind,
    database,
    server,
    services,
    clock,
    issuer: server.issuer,
    run,
    async close() {
      await server.close();
      await database.close();
    },
  };
}

export interface Registered {
  clientId: string;
  clientSecret: string;
  /** The command as an administrator types it (what docs/connecting-apps.md shows). */
  command: string;
}

/** `twofold client add NAME ARGS…`, run through the real CLI. */
export async function register(p: Provider, name: string, args: string[]): Promise<Registered> {
  const r = await p.run('client', 'add', name, ...args, '--json');
  if (r.code !== 0) throw new Error(`client add ${name} failed: ${r.err}`);
  const out = JSON.parse(r.out) as { client_id: string; client_secret: string };
  return { clientId: out.client_id, clientSecret: out.client_secret, command: `twofold client add ${name} ${args.join(' ')}` };
}

let users = 0;
export interface User {
  username: string;
  id: string;
  totp?: string;
}

export async function addUser(p: Provider, options: { totp?: boolean } = {}): Promise<User> {
  const username = `u${++users}-${p.kind}`;
  const account = await createAccount(p.services.db, p.services.hasher, { username, password: PASSWORD });
  let totp: string | undefined;
  if (options.totp) {
    totp = newTotpSecret();
    await p.services.factors.store.insert(account.id, 'totp', {
      label: 'Phone',
      secret: totp,
      data: { algorithm: 'SHA1', digits: 6, period: 30 },
      counter: null,
    });
  }
  return { username, id: account.id, totp };
}

export interface Hop {
  status: number;
  url: string;
  location?: string;
  body: string;
  headers: Headers;
}

/** A scripted browser across origins: one cookie jar per origin, redirects followed hop by hop. */
export class Browser {
  readonly jars = new Map<string, Map<string, string>>();
  /** Origins the browser may reach; a redirect elsewhere (an app that is only a name) ends a walk. */
  constructor(readonly reachable: string[]) {}

  #jar(origin: string): Map<string, string> {
    let jar = this.jars.get(origin);
    if (!jar) this.jars.set(origin, (jar = new Map()));
    return jar;
  }

  async request(url: string, init: { form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
    const target = new URL(url);
    const jar = this.#jar(target.origin);
    // What a browser's top-level navigation sends: mod_auth_openidc answers 401 instead of redirecting to sign-in
    // when Sec-Fetch-Mode says a script is asking (fetch always sends cors, hence node:http below).
    const headers: Record<string, string> = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', ...init.headers };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = target.origin;
    }
    const res = await send(target, init.form ? 'POST' : 'GET', headers, body);
    for (const line of res.setCookies) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line) || /max-age=0\b/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get('location');
    return {
      status: res.status,
      url: target.toString(),
      location: location ? new URL(location, target).toString() : undefined,
      body: await res.text(),
      headers: res.headers,
    };
  }

  /** Follows redirects while they lead somewhere reachable; returns the last hop. */
  async follow(hop: Hop): Promise<Hop> {
    for (let i = 0; i < 20 && hop.location && this.reachable.some((o) => hop.location!.startsWith(o)); i++) hop = await this.request(hop.location);
    return hop;
  }

  async get(url: string): Promise<Hop> {
    return this.follow(await this.request(url));
  }

  async submit(page: Hop, form: Record<string, string>): Promise<Hop> {
    return this.follow(await this.request(new URL(formAction(page.body), page.url).toString(), { form }));
  }
}

/** One HTTP request with node:http (fetch would replace Sec-Fetch-Mode); the answer as fetch's Response-like parts. */
async function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Headers; setCookies: string[]; text(): Promise<string> }> {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const h = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) h.append(name, v);
          }
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: h, setCookies: res.headers['set-cookie'] ?? [], text: async () => text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function formAction(html: string): string {
  const m = /<form[^>]*action="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no form on page:\n${html.slice(0, 800)}`);
  return m[1]!.replace(/&amp;/g, '&');
}

export interface Walk {
  /** The hop that left the provider's pages (an app's page, or a redirect to an app that is only a name). */
  hop: Hop;
  /** Which provider pages were shown, in order. */
  pages: Array<'login' | 'code' | 'enrol' | 'backup-codes'>;
  /** The TOTP secret set up on an enrolment page. */
  enrolled?: string;
}

/**
 * Walks the provider's pages as the person would: password, a TOTP code,
 * setting TOTP up when asked (or "Skip for now" with skip: true), saving the
 * backup codes; stops once the browser is no longer on a provider page.
 */
export async function walk(p: Provider, browser: Browser, start: Hop, user: User, options: { skip?: boolean } = {}): Promise<Walk> {
  let hop = await browser.follow(start);
  const pages: Walk['pages'] = [];
  let enrolled: string | undefined;
  for (let i = 0; i < 8 && hop.status === 200 && hop.url.startsWith(p.issuer) && /<form/.test(hop.body); i++) {
    if (/name="password"/.test(hop.body)) {
      pages.push('login');
      hop = await browser.submit(hop, { login: user.username, password: PASSWORD });
    } else if (/<code class="key">/.test(hop.body)) {
      pages.push('enrol');
      const skip = /action="(\/interaction\/[^/"]+\/skip)"/.exec(hop.body)?.[1];
      if (options.skip) {
        expect(skip).toBeDefined();
        hop = await browser.follow(await browser.request(new URL(skip!, p.issuer).toString(), { form: {} }));
      } else {
        enrolled = /<code class="key">([^<]+)<\/code>/.exec(hop.body)![1]!.replace(/\s/g, '');
        user.totp = enrolled;
        hop = await browser.submit(hop, { code: totpCodeAt(enrolled, p.clock), label: 'Phone' });
      }
    } else if (/Save your backup codes/.test(hop.body)) {
      pages.push('backup-codes');
      hop = await browser.submit(hop, { saved: 'yes' });
    } else if (/name="code"/.test(hop.body)) {
      pages.push('code');
      const skip = /action="(\/interaction\/[^/"]+\/skip)"/.exec(hop.body)?.[1];
      if (options.skip && skip) hop = await browser.follow(await browser.request(new URL(skip, p.issuer).toString(), { form: {} }));
      else hop = await browser.submit(hop, { code: totpCodeAt(user.totp!, p.clock) });
    } else break;
  }
  return { hop, pages, enrolled };
}

/** An app's back-channel logout endpoint: keeps every logout_token POSTed to it. */
export async function logoutReceiver(): Promise<{ url: string; tokens: string[]; close(): Promise<void> }> {
  const http = await import('node:http');
  const tokens: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      tokens.push(new URLSearchParams(body).get('logout_token') ?? '');
      res.writeHead(200, { 'cache-control': 'no-store' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/backchannel-logout`,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls for something the provider or an RP does in the background; bounded, never a fixed sleep. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
