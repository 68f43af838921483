/**
 * Auth.js (@auth/core + @auth/express) as an app, on every database in the
 * matrix. It lives in its own package folder (test/interop/apps/authjs: its
 * optional peer @simplewebauthn/browser@^9 conflicts with Twofold's ^14) and
 * runs as a child process. Flows: password (session.user from the ID token's
 * profile), password + TOTP, per-app MFA with enrolment, essential and
 * voluntary step-up (authorization parameters on the sign-in request), key
 * rotation. Auth.js has no token refresh, no RP-initiated and no back-channel
 * logout (its sign-out is local), and no API side: not run.
 */
import crypto from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { decodeProtectedHeader } from 'jose';
import { DIALECTS } from '../helpers/databases.ts';
import { freePort } from '../helpers/ports.ts';
import { ACR1, Browser, REFEDS_MFA, addUser, register, startProvider, walk, type Provider, type User, ESSENTIAL_MFA } from './harness.ts';
import { signInFlows } from './sign-in-flows.ts';

const DIR = path.join(process.cwd(), 'test/interop/apps/authjs');
const VERSIONS = ['@auth/core', '@auth/express']
  .map((name) => {
    try {
      return `${name}@${(JSON.parse(fs.readFileSync(path.join(DIR, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version}`;
    } catch {
      return `${name} (MISSING: npm ci --prefix test/interop/apps/authjs, as .ci/run does)`;
    }
  })
  .join(' + ');

interface Session {
  user: { name?: string; email?: string };
  sub: string;
  acr: string;
  amr: string[];
  idToken: string;
}

for (const kind of DIALECTS) {
  describe(`${VERSIONS} on ${kind}`, () => {
    let p: Provider;
    let child: ChildProcess;
    let origin: string;

    beforeAll(async () => {
      p = await startProvider(kind);
      const port = await freePort();
      origin = `http://127.0.0.1:${port}`;
      const app = await register(p, 'authjs-app', ['--first-party', '--redirect-uri', `${origin}/auth/callback/twofold`]);
      child = spawn(process.execPath, [path.join(DIR, 'app.mjs')], {
        cwd: DIR,
        env: {
          ...process.env,
          NODE_OPTIONS: '',
          PORT: String(port),
          ISSUER: p.issuer,
          CLIENT_ID: app.clientId,
          CLIENT_SECRET: app.clientSecret,
          AUTH_SECRET: crypto.randomBytes(32).toString('hex'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the Auth.js app did not start in 30 s: ${stderr}`)), 30_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the Auth.js app exited (${code}): ${stderr}`));
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

    /** What Auth.js's signIn('twofold', …, authorizationParams) does in a page: the CSRF token, then the POST. */
    async function visit(b: Browser, user: User, params: Record<string, string> = {}, options: { skip?: boolean } = {}) {
      const csrf = await b.request(`${origin}/auth/csrf`);
      const { csrfToken } = JSON.parse(csrf.body) as { csrfToken: string };
      const query = new URLSearchParams(params).toString();
      const start = await b.request(`${origin}/auth/signin/twofold${query ? `?${query}` : ''}`, { form: { csrfToken, callbackUrl: `${origin}/me` } });
      const walked = await walk(p, b, start, user, options);
      if (walked.hop.url !== `${origin}/me` || walked.hop.status !== 200)
        throw new Error(
          `did not reach /me: ${JSON.stringify(walked.pages)} ${walked.hop.status} ${walked.hop.url} ${walked.hop.location} ${walked.hop.body.slice(0, 400)}`,
        );
      return { ...walked, session: JSON.parse(walked.hop.body) as Session };
    }

    test('password: session.user has the profile from the ID token, acr level 1', async () => {
      const user = await addUser(p);
      const { session, pages } = await visit(browser(), user);
      expect(pages).toEqual(['login']);
      expect(session.user.name ?? session.user.email ?? '').not.toBe('');
      expect(session).toMatchObject({ sub: user.id, acr: ACR1, amr: ['pwd'] });
    });

    signInFlows({
      provider: () => p,
      client: 'authjs-app',
      browser,
      async signIn(b, user, ask, options) {
        const params: Record<string, string> = { plain: {}, essential: { claims: ESSENTIAL_MFA }, voluntary: { acr_values: REFEDS_MFA } }[ask];
        const { session, pages } = await visit(b, user, params, options);
        return { pages, acr: session.acr };
      },
    });

    test('key rotation: sign-ins work before and after the next keys sign', async () => {
      const user = await addUser(p);
      const oldKid = decodeProtectedHeader((await visit(browser(), user)).session.idToken).kid;
      expect((await p.run('keys', 'rotate')).code).toBe(0);
      expect(await p.server.holder.refresh()).toBe(true);
      await visit(browser(), user);
      p.clock.advance(p.server.config.KEY_PUBLISH_DELAY + 1);
      expect(await p.server.holder.refresh()).toBe(true);
      const after = await visit(browser(), user);
      expect(decodeProtectedHeader(after.session.idToken).kid).not.toBe(oldKid);
      expect(after.session.sub).toBe(user.id);
    });
  });
}
