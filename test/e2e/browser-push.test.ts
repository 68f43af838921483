/**
 * The waiting page in a real browser: headless Chromium signs in with the push
 * example (examples/factor-push); the page's script polls while the phone (the
 * test) has not answered, and goes on by itself once it approves, with no
 * click. Also: no console errors, and the poll is a same-origin JSON request
 * the page's CSP allows.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, Route } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { PUSH_FACTORS, PushPhone, RELAY_TOKEN, RELAY_URL } from '../helpers/push-phone.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const PASSWORD = 'correct horse battery staple';

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('the waiting page in Chromium (push example)', () => {
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let rp: RelyingParty;
  let appOrigin: string;
  const phone = new PushPhone();
  const key = Buffer.alloc(32, 42).toString('base64url');

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(
      database,
      { MFA: 'required', FACTORS: PUSH_FACTORS, FACTOR_SETTINGS: JSON.stringify({ push: { notifyUrl: RELAY_URL, notifyToken: RELAY_TOKEN } }) },
      { httpTransport: phone.transport },
    );
    const { db, hasher, sealer, factors } = server.opened.services;
    const account = await createAccount(db, hasher, { username: 'dana', password: PASSWORD });
    await factors.store.insert(account.id, 'push', { label: 'Dana’s phone', secret: key, lookupKey: 'push:dana', data: { device: 'dana' } });
    appOrigin = `http://localhost:${await freePort()}`;
    const app = await createClient(db, sealer, { name: 'Browser Test App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
  });

  test('the page polls while the phone has not answered, and continues by itself once it approves', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
    page.on('pageerror', (err) => errors.push(err.message));
    const polls: string[] = [];
    page.on('request', (request) => request.url().endsWith('/factor/push/status') && polls.push(request.method()));
    let arrived!: (url: string) => void;
    const callback = new Promise<string>((resolve) => (arrived = resolve));
    await page.route(
      (url) => url.origin === appOrigin,
      (route: Route) => {
        arrived(route.request().url());
        return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>App</title><p>Signed in.</p>' });
      },
    );
    const auth = await rp.authorizationUrl();
    await page.goto(auth.url);
    await page.getByLabel('Username or email').fill('dana');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('Open the app and approve it').waitFor();
    const note = phone.delivered('dana')!;
    await page.getByText(`the number ${note.number}`).waitFor();
    // Unanswered, the page keeps asking (a poll every two seconds).
    await page.waitForTimeout(4500);
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls.every((m) => m === 'GET')).toBe(true);
    const { body, headers } = phone.answer(key, 'dana', note.request, 'approve');
    expect((await fetch(`${server.issuer}/factor/push/callback`, { method: 'POST', headers, body })).status).toBe(200);
    const url = new URL(await callback);
    expect(url.searchParams.get('code')).toBeTruthy();
    const claims = (await rp.redeem(url.toString(), auth)).claims()!;
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'swk', 'mca', 'mfa']));
    expect(errors).toEqual([]);
    await context.close();
  });
});
