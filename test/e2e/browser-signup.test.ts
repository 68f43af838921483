/**
 * Sign-up as a person meets it, in headless Chromium, on every database,
 * with the keyboard only: "Create an account" from an app's sign-in page, a
 * refused password, the email through a real SMTP peer, the sign-in refused
 * until the address is confirmed, the link, and signing in. axe-core (WCAG 2
 * A and AA) finds no violation on any of these pages, light and dark, 390 and
 * 1280 px wide, the refusals included.
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
import { mailText, waitForMail } from '../helpers/mail-text.ts';
import { createClient } from '../../src/oidc/clients.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'quiet lanterns drift';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

for (const kind of DIALECTS) {
  describeBrowser(`sign-up in Chromium, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let browser: Browser;
    let sink: MailSink;
    let rp: RelyingParty;
    let appOrigin: string;
    const violations: string[] = [];

    beforeAll(async () => {
      sink = await startMailSink();
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { SMTP_URL: sink.url, MFA: 'optional', SIGN_UP: 'true' });
      services = server.opened.services;
      appOrigin = `http://localhost:${await freePort()}`;
      const app = await createClient(services.db, services.sealer, { name: 'Signup App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
      browser = await launchBrowser();
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      await database?.close();
      await sink?.close();
    });

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

    test('create an account with the keyboard, confirm the address, sign in', async () => {
      const email = `${kind}-browser-signup@example.test`;
      const { page, callback, close } = await openPage();
      try {
        await page.goto((await rp.authorizationUrl()).url);
        await audit(page, 'login with sign-up');
        await page.getByRole('link', { name: 'Create an account' }).focus();
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { name: 'Create an account' }).waitFor();
        await audit(page, 'sign-up');
        // The address field has the focus; the rest is Tab and typing.
        await page.keyboard.type(email);
        await page.keyboard.press('Tab');
        await page.keyboard.type('passwordpassword');
        await page.keyboard.press('Tab');
        await page.keyboard.type('passwordpassword');
        await page.keyboard.press('Enter');
        await page.getByRole('alert').filter({ hasText: 'too common' }).waitFor();
        await audit(page, 'sign-up refused');
        await page.getByLabel('Password', { exact: true }).focus();
        await page.keyboard.type(PASSWORD);
        await page.keyboard.press('Tab');
        await page.keyboard.type(PASSWORD);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();
        await audit(page, 'sign-up sent');

        // Signing in before confirming: a clear page.
        await page.goto((await rp.authorizationUrl()).url);
        await page.getByLabel('Username or email').fill(email);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { name: 'Confirm your email first' }).waitFor();
        await audit(page, 'pending');

        const link = /https?:\/\/\S+\/signup\/verify\?token=[A-Za-z0-9_-]+(?:&ui_locales=[\w-]+)?/.exec(mailText(await waitForMail(sink, email, 1)))![0];
        await page.goto(link);
        await page.getByRole('heading', { name: 'Confirm your email address' }).waitFor();
        await audit(page, 'verify');
        await page.keyboard.type(PASSWORD);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { name: 'Email address confirmed' }).waitFor();
        await audit(page, 'verified');

        await page.goto((await rp.authorizationUrl()).url);
        await page.getByLabel('Username or email').fill(email);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.keyboard.press('Enter');
        expect(new URL(await callback).searchParams.has('code')).toBe(true);
      } finally {
        await close();
      }
    });

    test('no axe violation on any of these pages', () => {
      expect(violations).toEqual([]);
    });
  });
}
