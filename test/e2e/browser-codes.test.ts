/**
 * Emailed codes in a real browser: headless Chromium enrols an address inside
 * the sign-in and signs in with a code read from a real SMTP server in the
 * test process. Checks what only a browser tells: the buttons that send a code
 * work although the code field is required (formnovalidate), Enter in the code
 * field verifies rather than sending another code, and no console errors.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const PASSWORD = 'correct horse battery staple';
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('emailed codes in Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let sink: MailSink;
  let browser: Browser;
  let rp: RelyingParty;
  let appOrigin: string;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    sink = await startMailSink();
    server = await startTestServer(database, { SMTP_URL: sink.url, MAIL_FROM: 'Twofold <id@example.test>' });
    const { db, hasher, sealer } = server.opened.services;
    await createAccount(db, hasher, { username: 'carol', email: 'carol@example.test', password: PASSWORD });
    appOrigin = `http://localhost:${await freePort()}`;
    const app = await createClient(db, sealer, { name: 'Browser Test App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sink?.close();
    await database?.close();
  });

  async function openPage(): Promise<{ context: BrowserContext; page: Page; errors: string[]; callback: Promise<string> }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    let resolve!: (url: string) => void;
    const callback = new Promise<string>((r) => (resolve = r));
    await page.route(
      (url) => url.origin === appOrigin,
      (route: Route) => {
        resolve(route.request().url());
        return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>App</title><p>Signed in.</p>' });
      },
    );
    return { context, page, errors, callback };
  }

  async function signInWithPassword(page: Page, extra: Record<string, string> = {}) {
    const auth = await rp.authorizationUrl(extra);
    await page.goto(auth.url);
    await page.getByLabel('Username or email').fill('carol');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    return auth;
  }

  test('enrol an address with the code it receives, then sign in with an emailed code, pressing Enter', async () => {
    const first = await openPage();
    try {
      const auth = await signInWithPassword(first.page, { acr_values: MFA_ACR });
      await first.page.getByRole('link', { name: 'Use Email code instead' }).click();
      await expect(first.page.getByLabel('Email address').inputValue()).resolves.toBe('carol@example.test');
      await first.page.screenshot({ path: '/tmp/email-enroll.png', fullPage: true });
      await first.page.getByRole('button', { name: 'Email me a code' }).click();
      await first.page.getByText('We emailed a code to').waitFor();
      // "Send a new code" posts although the required code field is empty (formnovalidate); the cooldown answers.
      await first.page.getByRole('button', { name: 'Send a new code' }).click();
      await first.page.getByText('A code was just sent.').waitFor();
      await first.page.getByLabel('Enter the 6-digit code from the email').fill(sink.latestCode('carol@example.test'));
      await first.page.getByRole('button', { name: 'Turn on' }).click();
      await first.page.getByLabel('I have saved these codes').check();
      await first.page.getByRole('button', { name: 'Continue' }).click();
      const claims = (await rp.redeem(await first.callback, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      // The cooldown page answered 429 on purpose; Chromium logs any error status.
      expect(first.errors.filter((e) => !e.includes('status of 429'))).toEqual([]);
    } finally {
      await first.context.close();
    }

    const second = await openPage();
    try {
      const auth = await signInWithPassword(second.page);
      await second.page.getByText('We will email a code to c•••@example.test').waitFor();
      await second.page.getByRole('button', { name: 'Email me a code' }).click();
      const code = second.page.getByLabel('Enter the 6-digit code from the email');
      await code.fill(sink.latestCode('carol@example.test'));
      await second.page.screenshot({ path: '/tmp/email-challenge.png', fullPage: true });
      // Enter submits the form's first button, Verify, not "Send a new code".
      await code.press('Enter');
      const claims = (await rp.redeem(await second.callback, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      // Two codes, and between them the security notices of the two methods added (the address and backup codes).
      const mails = sink.to('carol@example.test').map((m) => m.subject);
      expect(mails.filter((subject) => subject.startsWith('Your sign-in code') || subject.startsWith('Confirm your email'))).toHaveLength(2);
      expect(mails.filter((subject) => subject.startsWith('A sign-in method was added'))).toHaveLength(2);
      expect(second.errors).toEqual([]);
    } finally {
      await second.context.close();
    }
  });
});
