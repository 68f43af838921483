/**
 * Signing in with a real browser: headless Chromium (playwright-core) opens an
 * app's authorization URL, the login form is filled and submitted as a person
 * would, and the code that comes back to the app's redirect URI is redeemed
 * with openid-client. The app itself never runs: its redirect URI is on a port
 * nobody listens on, and the browser's request to it is intercepted.
 *
 * Also checks what only a browser can tell: the page logs no console errors,
 * and the login page refuses to be framed (CSP frame-ancestors 'none').
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import type { Account } from '../../src/db/schema.ts';

const PASSWORD = 'correct horse battery staple';
const SCREENSHOT = '/tmp/login.png';

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

/** Console errors a page logged (the layout declares an inline icon, so not even a favicon 404 is allowed). */
function unexpected(errors: string[]): string[] {
  return errors;
}

describeBrowser('signing in with Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let alice: Account;
  let clientId: string;
  let rp: RelyingParty;
  /** The app's origin: a localhost port with nothing listening, reached only through page.route. */
  let appOrigin: string;
  let redirectUri: string;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database);
    expect(server.issuer).toMatch(/^http:\/\/localhost:\d+$/);
    const { db, hasher, sealer } = server.opened.services;
    alice = await createAccount(db, hasher, {
      username: 'alice',
      email: 'alice@example.test',
      emailVerified: true,
      displayName: 'Alice Liddell',
      password: PASSWORD,
    });
    appOrigin = `http://localhost:${await freePort()}`;
    redirectUri = `${appOrigin}/callback`;
    const app = await createClient(db, sealer, { name: 'Browser Test App', redirectUris: [redirectUri], firstParty: true });
    clientId = app.clientId;
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, redirectUri);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
  });

  /** A fresh browser profile whose console errors and uncaught page errors are collected. */
  async function openPage(): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    return { context, page, errors };
  }

  test('the login form signs the user in; the code redeems for a valid ID token', async () => {
    const { context, page, errors } = await openPage();
    try {
      // Stand in for the app at its redirect URI: remember where the browser was sent, answer with a small page.
      let resolveCallback!: (url: string) => void;
      const callback = new Promise<string>((resolve) => (resolveCallback = resolve));
      await page.route(
        (url) => url.origin === appOrigin,
        (route: Route) => {
          resolveCallback(route.request().url());
          return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>App</title><p>Signed in.</p>' });
        },
      );

      const auth = await rp.authorizationUrl();
      const response = await page.goto(auth.url);
      expect(response?.status()).toBe(200);
      expect(new URL(page.url()).pathname).toMatch(/^\/interaction\/[^/]+$/);
      await expect(page.title()).resolves.toBe('Sign in · Twofold');
      await expect(page.locator('.for-app strong').textContent()).resolves.toBe('Browser Test App');

      // The login page may not be put in a frame by another site.
      const headers = await response!.allHeaders();
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(headers['x-frame-options']).toBe('DENY');
      expect(headers['cache-control']).toBe('no-store');

      // The stylesheet loaded and applied (CSP allows 'self' styles).
      const css = await page.evaluate(() => [...document.styleSheets].map((s) => s.href));
      expect(css.some((href) => href?.endsWith('/assets/twofold.css'))).toBe(true);

      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      await page.getByLabel('Username or email').fill('alice');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();

      const callbackUrl = await callback;
      await page.waitForURL((url) => url.origin === appOrigin);
      const params = new URL(callbackUrl).searchParams;
      expect(callbackUrl.startsWith(`${redirectUri}?`)).toBe(true);
      expect(params.get('code')).toBeTruthy();
      expect(params.get('state')).toBe(auth.state);
      expect(params.get('iss')).toBe(server.issuer);

      const tokens = await rp.redeem(callbackUrl, auth);
      const claims = tokens.claims()!;
      expect(claims).toMatchObject({ iss: server.issuer, sub: alice.id, aud: clientId, nonce: auth.nonce, amr: ['pwd'] });
      expect(typeof claims.auth_time).toBe('number');
      expect(Math.abs(claims.auth_time! - Date.now() / 1000)).toBeLessThan(120);
      expect(tokens.access_token).toBeTruthy();

      expect(unexpected(errors)).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('a wrong password shows the error on the page, without console errors', async () => {
    const { context, page, errors } = await openPage();
    try {
      const auth = await rp.authorizationUrl();
      await page.goto(auth.url);
      await page.getByLabel('Username or email').fill('alice');
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await expect(page.getByRole('alert').textContent()).resolves.toBe('Incorrect username or password.');
      // The login is kept, the password is not.
      await expect(page.getByLabel('Username or email').inputValue()).resolves.toBe('alice');
      await expect(page.getByLabel('Password').inputValue()).resolves.toBe('');
      // Chromium logs the 401 answer to the form post itself as a failed resource; nothing else may appear.
      expect(unexpected(errors).filter((e) => !/status of 401 .*\/interaction\/[^/]+\/login\)$/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('another site cannot put the login page in a frame', async () => {
    const auth = await rp.authorizationUrl();
    // Another site (a real server on another localhost port) that frames the
    // login page, and, as a control, a page of its own that may be framed.
    const evil = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/html');
      if (req.url === '/frameable') return res.end('<!doctype html><p id="ok">frameable</p>');
      if (req.url !== '/') {
        res.statusCode = 404;
        return res.end();
      }
      res.end(`<!doctype html><title>Elsewhere</title><link rel="icon" href="data:,">
        <iframe id="login" src="${auth.url.replace(/&/g, '&amp;')}" width="400" height="400"></iframe>
        <iframe id="control" src="/frameable" width="200" height="100"></iframe>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilOrigin = `http://localhost:${(evil.address() as AddressInfo).port}`;
    const { context, page, errors } = await openPage();
    try {
      // The provider does answer the framed request with the login page; the browser must refuse to show it.
      const framed = page.waitForResponse((res) => new URL(res.url()).pathname.startsWith('/interaction/') && res.request().frame() !== page.mainFrame());
      await page.goto(`${evilOrigin}/`);
      const blocked = await framed;
      expect(blocked.status()).toBe(200);
      expect((await blocked.allHeaders())['content-security-policy']).toContain("frame-ancestors 'none'");
      await page.waitForLoadState('load');

      await expect(page.frameLocator('#control').locator('#ok').textContent()).resolves.toBe('frameable');

      const loginFrame = await (await page.$('#login'))!.contentFrame();
      expect(loginFrame).not.toBeNull();
      await expect(loginFrame!.locator('input[name="password"]').count()).resolves.toBe(0);
      // Chromium says why, on the framing page's console.
      for (let i = 0; i < 40 && !errors.some((e) => /frame-ancestors/.test(e)); i++) await page.waitForTimeout(50);
      expect(errors.some((e) => /frame-ancestors/.test(e))).toBe(true);
    } finally {
      await context.close();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });
});
