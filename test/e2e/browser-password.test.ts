/**
 * The password pages as a person meets them, in headless Chromium, on every
 * database: "Forgot your password?" from an app's sign-in page, the email
 * through a real SMTP peer, the link, a refused password, the new one, and
 * signing in with it; changing the password in the account center. axe-core
 * (WCAG 2 A and AA) finds no violation on any of these pages, light and dark,
 * 390 and 1280 px wide, the refusals included.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, Page, Route } from 'playwright-core';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { resetLink, waitForMail } from '../helpers/mail-text.ts';
import { authenticatePassword, createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'correct horse battery staple';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

for (const kind of DIALECTS) {
  describeBrowser(`the password pages in Chromium, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let browser: Browser;
    let sink: MailSink;
    let rp: RelyingParty;
    let appOrigin: string;
    let users = 0;
    const violations: string[] = [];

    beforeAll(async () => {
      sink = await startMailSink();
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { SMTP_URL: sink.url, MFA: 'optional' });
      services = server.opened.services;
      appOrigin = `http://localhost:${await freePort()}`;
      const app = await createClient(services.db, services.sealer, { name: 'Password App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
      browser = await launchBrowser();
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      await database?.close();
      await sink?.close();
    });

    async function newUser() {
      const username = `${kind}-browser-${++users}`;
      const email = `${username}@example.test`;
      const account = await createAccount(services.db, services.hasher, { username, email, password: PASSWORD });
      return { account, username, email };
    }

    /** A fresh profile; the app's origin answers through page.route. CSP is bypassed only so axe can be injected. */
    async function openPage(): Promise<{ page: Page; callback: Promise<string>; close(): Promise<void> }> {
      const context = await browser.newContext({ bypassCSP: true });
      const page = await context.newPage();
      let resolve!: (url: string) => void;
      const callback = new Promise<string>((r) => (resolve = r));
      await page.route(
        (url) => url.origin === appOrigin,
        (route: Route) => {
          resolve(route.request().url());
          return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>App</title><p>Signed in.</p>' });
        },
      );
      return { page, callback, close: () => context.close() };
    }

    async function audit(page: Page, name: string): Promise<void> {
      await page.evaluate(AXE_SOURCE);
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 800 });
        for (const colorScheme of SCHEMES) {
          await page.emulateMedia({ colorScheme });
          const found = await page.evaluate(async () => {
            const axe = (
              window as unknown as {
                axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[]; failureSummary?: string }> }> }> };
              }
            ).axe;
            const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
            return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${JSON.stringify(n.target)} ${n.failureSummary ?? ''}`));
          });
          violations.push(...found.map((f) => `${name} ${colorScheme} ${width}px: ${f}`));
        }
      }
      await page.emulateMedia({ colorScheme: 'light' });
    }

    test('forgot password: from the sign-in page to the email, a refused password, the new one, and back into the app', async () => {
      const { username, email } = await newUser();
      const { page, callback, close } = await openPage();
      try {
        const auth = await rp.authorizationUrl();
        await page.goto(auth.url);
        await page.getByRole('link', { name: 'Forgot your password?' }).click();
        await expect(page.getByRole('heading', { name: 'Reset your password' }).isVisible()).resolves.toBe(true);
        await audit(page, 'forgot');
        await page.getByLabel('Username or email').fill(username);
        await page.getByRole('button', { name: 'Send link' }).click();
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();
        await audit(page, 'sent');

        const link = resetLink(await waitForMail(sink, email, 1));
        await page.goto(link);
        await page.getByRole('heading', { name: 'Set a new password' }).waitFor();
        await audit(page, 'reset');
        await page.getByLabel('New password', { exact: true }).fill('passwordpassword');
        await page.getByLabel('New password again').fill('passwordpassword');
        await page.getByRole('button', { name: 'Set new password' }).click();
        await page.getByRole('alert').filter({ hasText: 'too common' }).waitFor();
        await audit(page, 'reset refused');
        await page.getByLabel('New password', { exact: true }).fill('quiet lanterns drift');
        await page.getByLabel('New password again').fill('quiet lanterns drift');
        await page.getByRole('button', { name: 'Set new password' }).click();
        await page.getByRole('heading', { name: 'Your password was changed' }).waitFor();
        await audit(page, 'reset done');

        // The same link again: a clear page.
        await page.goto(link);
        await page.getByRole('heading', { name: 'This link does not work' }).waitFor();
        await audit(page, 'link used');

        // Back at the app, the new password signs in.
        const again = await rp.authorizationUrl();
        await page.goto(again.url);
        await page.getByLabel('Username or email').fill(username);
        await page.getByLabel('Password').fill('quiet lanterns drift');
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        expect(new URL(await callback).searchParams.has('code')).toBe(true);
      } finally {
        await close();
      }
    });

    test('change password in the account center, with the keyboard', async () => {
      const { username } = await newUser();
      const { page, close } = await openPage();
      try {
        await page.goto(`${server.issuer}/account`);
        await page.getByLabel('Username or email').fill(username);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.keyboard.press('Enter');
        await page.waitForURL(`${server.issuer}/account`);
        await page.goto(`${server.issuer}/account/password`);
        await page.getByLabel('Current password').waitFor();
        await audit(page, 'change');
        await page.getByLabel('Current password').fill('not it at all');
        await page.keyboard.press('Tab');
        await page.keyboard.type('a new long passphrase');
        await page.keyboard.press('Tab');
        await page.keyboard.type('a new long passphrase');
        await page.keyboard.press('Enter');
        await page.getByRole('alert').filter({ hasText: 'Your current password is not correct.' }).waitFor();
        await audit(page, 'change refused');
        await page.getByLabel('Current password').fill(PASSWORD);
        await page.getByLabel('New password', { exact: true }).fill('a new long passphrase');
        await page.getByLabel('New password again').fill('a new long passphrase');
        await page.getByRole('button', { name: 'Change password' }).click();
        await page.getByRole('status').filter({ hasText: 'Your password was changed.' }).waitFor();
        await audit(page, 'change done');
        expect((await authenticatePassword(services.db, services.hasher, username, 'a new long passphrase')).ok).toBe(true);
      } finally {
        await close();
      }
    });

    test('no axe violation on any of these pages', () => {
      expect(violations).toEqual([]);
    });
  });
}
