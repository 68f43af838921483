/**
 * Debian's python3-authlib (with python3-requests) as an app and as an API, in
 * a small Python web app run as a child process (test/interop/apps/authlib_app.py),
 * on every database in the matrix: password, password + TOTP, per-app MFA
 * with enrolment, essential and voluntary step-up, refresh, RP-initiated
 * logout, introspection as the API, key rotation (the app caches the JWKS and
 * fetches it again only for an unknown kid). authlib has no back-channel
 * logout receiver, so that flow is not run here.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { decodeProtectedHeader } from 'jose';
import { DIALECTS } from '../helpers/databases.ts';
import { freePort } from '../helpers/ports.ts';
import { ACR1, ACR2, Browser, REFEDS_MFA, addUser, formAction, register, startProvider, walk, type Provider, type User, ESSENTIAL_MFA } from './harness.ts';
import { signInFlows } from './sign-in-flows.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(process.cwd(), 'test/interop/apps/authlib_app.py');

interface Me {
  claims: Record<string, unknown>;
  id_token: string;
}

/** "python3-authlib 1.2.0 (requests 2.28.1)": what the suite ran. */
const VERSIONS = (() => {
  try {
    return execFileSync(PYTHON, ['-c', 'import authlib, requests; print("python3-authlib %s (requests %s)" % (authlib.__version__, requests.__version__))'])
      .toString()
      .trim();
  } catch {
    return 'python3-authlib (missing: .ci/run installs it)';
  }
})();

for (const kind of DIALECTS) {
  describe(`${VERSIONS} on ${kind}`, () => {
    let p: Provider;
    let child: ChildProcess;
    let origin: string;

    beforeAll(async () => {
      p = await startProvider(kind);
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      const app = await register(p, 'python-app', ['--first-party', '--redirect-uri', `${origin}/callback`, '--post-logout-redirect-uri', `${origin}/bye`]);
      const api = await register(p, 'orders-api', ['--resource-server', 'https://api.example.test']);
      child = spawn(PYTHON, [SCRIPT], {
        env: {
          ...process.env,
          PORT: String(port),
          ISSUER: p.issuer,
          CLIENT_ID: app.clientId,
          CLIENT_SECRET: app.clientSecret,
          API_CLIENT_ID: api.clientId,
          API_CLIENT_SECRET: api.clientSecret,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the authlib app did not start in 30 s: ${stderr}`)), 30_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the authlib app exited (${code}): ${stderr}`));
        });
        readline.createInterface({ input: child.stdout! }).once('line', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    });

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      await p?.close();
    });

    const browser = () => new Browser([p.issuer, origin]);

    async function visit(b: Browser, path: string, user: User, options: { skip?: boolean } = {}) {
      const walked = await walk(p, b, await b.request(`${origin}${path}`), user, options);
      if (walked.hop.url !== `${origin}/me` || walked.hop.status !== 200)
        throw new Error(`did not reach /me: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.body.slice(0, 400)}`);
      return { ...walked, me: JSON.parse(walked.hop.body) as Me };
    }

    async function json<T>(b: Browser, path: string): Promise<T> {
      const hop = await b.request(`${origin}${path}`);
      if (hop.status !== 200) throw new Error(`${path}: ${hop.status} ${hop.body}`);
      return JSON.parse(hop.body) as T;
    }

    test('password: the ID token, verified by authlib, carries acr level 1 and the profile', async () => {
      const user = await addUser(p);
      const { me, pages } = await visit(browser(), '/login', user);
      expect(pages).toEqual(['login']);
      expect(me.claims).toMatchObject({ sub: user.id, acr: ACR1, amr: ['pwd'], preferred_username: user.username });
    });

    signInFlows({
      provider: () => p,
      client: 'python-app',
      browser,
      async signIn(b, user, ask, options) {
        const query = { plain: '', essential: `?claims=${encodeURIComponent(ESSENTIAL_MFA)}`, voluntary: `?acr_values=${encodeURIComponent(REFEDS_MFA)}` }[ask];
        const { me, pages } = await visit(b, `/login${query}`, user, options);
        return { pages, acr: me.claims.acr };
      },
    });

    test('refresh: OAuth2Session.refresh_token gets a new access token', async () => {
      const b = browser();
      await visit(b, '/login', await addUser(p));
      const { before, after } = await json<{ before: string; after: string }>(b, '/refresh');
      expect(after).toBeTruthy();
      expect(after).not.toBe(before);
    });

    test('logout: RP-initiated ends the provider session', async () => {
      const user = await addUser(p);
      const b = browser();
      await visit(b, '/login', user);
      const confirm = await b.get(`${origin}/logout`);
      expect(confirm.url.startsWith(`${p.issuer}/session/end`)).toBe(true);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await b.follow(await b.request(new URL(formAction(confirm.body), confirm.url).toString(), { form: { xsrf, logout: 'yes' } }));
      expect(out.url).toBe(`${origin}/bye`);
      expect((await visit(b, '/login', user)).pages).toEqual(['login']);
    });

    test("introspection: the API (authlib introspect_token) reads acr only with --introspect-any for the app's opaque token", async () => {
      const user = await addUser(p, { totp: true });
      const b = browser();
      await visit(b, '/login', user);
      const { access_token } = await json<{ access_token: string }>(b, '/token');
      expect(await json(b, `/introspect?token=${access_token}`)).toEqual({ active: false });
      expect((await p.run('client', 'update', 'orders-api', '--introspect-any')).code).toBe(0);
      try {
        expect(await json(b, `/introspect?token=${access_token}`)).toMatchObject({ active: true, sub: user.id, acr: ACR2 });
      } finally {
        expect((await p.run('client', 'update', 'orders-api', '--no-introspect-any')).code).toBe(0);
      }
    });

    test('key rotation: the app verifies ID tokens of the next keys (its cached JWKS, fetched again only for an unknown kid)', async () => {
      const user = await addUser(p);
      const oldKid = decodeProtectedHeader((await visit(browser(), '/login', user)).me.id_token).kid;
      expect((await p.run('keys', 'rotate')).code).toBe(0);
      expect(await p.server.holder.refresh()).toBe(true);
      expect(decodeProtectedHeader((await visit(browser(), '/login', user)).me.id_token).kid).toBe(oldKid);
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await visit(browser(), '/login', user);
      expect(decodeProtectedHeader(after.me.id_token).kid).not.toBe(oldKid);
      expect(after.me.claims.sub).toBe(user.id);
    });
  });
}
