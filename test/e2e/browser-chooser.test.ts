/**
 * The list of methods to add (`twofold_enroll=any`) in headless Chromium:
 * - axe-core (WCAG 2 A and AA, contrast included) finds no violation, light
 *   and dark, 390 px and 1280 px wide, and the page is never wider than the
 *   screen;
 * - with JavaScript off, the keyboard alone picks a method (arrow keys in the
 *   radio group, Enter on Continue), reaches its enrolment, and goes back to
 *   the list.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://app.example.test/callback';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('the list of methods to add in Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let rp: RelyingParty;
  let secret: string;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database, { MFA: 'optional' });
    const { services } = server.opened;
    await savePolicy(services.db, GLOBAL, { mfa: 'optional' }, 'test');
    const account = await createAccount(services.db, services.hasher, { username: 'erin', email: 'erin@example.test', password: PASSWORD });
    secret = await enrolTotp(services, account.id);
    const app = await createClient(services.db, services.sealer, { name: 'Notes', redirectUris: [REDIRECT], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
  });

  /** Password and TOTP, typed; the page is then the list. Each test proves TOTP in its own time step. */
  async function reachList(context: BrowserContext, step: number): Promise<Page> {
    const page = await context.newPage();
    await page.goto((await rp.authorizationUrl({ twofold_enroll: 'any' })).url);
    await page.getByLabel('Username or email').fill('erin');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Password').press('Enter');
    const code = page.getByLabel(/Enter the 6-digit code/);
    await code.fill(totpCode(secret, step));
    await code.press('Enter');
    await page.locator('fieldset.choices').waitFor();
    return page;
  }

  test('axe finds no violation, light and dark, at 390 and 1280 px', async () => {
    // CSP is bypassed only so axe can be injected.
    const context = await browser.newContext({ bypassCSP: true });
    try {
      const page = await reachList(context, 0);
      await expect(page.title()).resolves.toBe('Add a sign-in method · Twofold');
      await page.evaluate(AXE_SOURCE);
      const violations: string[] = [];
      for (const width of [390, 1280]) {
        await page.setViewportSize({ width, height: 800 });
        for (const colorScheme of ['light', 'dark'] as const) {
          await page.emulateMedia({ colorScheme });
          const found = await page.evaluate(async () => {
            const axe = (window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[] }> }> }> } })
              .axe;
            const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
            return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${JSON.stringify(n.target)}`));
          });
          violations.push(...found.map((f) => `${colorScheme} ${width}px: ${f}`));
        }
        await expect(page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).resolves.toBe(true);
      }
      expect(violations).toEqual([]);
      // The radio group is named by its legend, each radio by its label (no email or SMS delivery on this server).
      const radios = page.getByRole('group', { name: 'Methods you can add' }).getByRole('radio');
      await expect(radios.evaluateAll((els) => els.map((el) => (el as HTMLInputElement).value))).resolves.toEqual([
        'totp',
        'webauthn',
        'passkey',
        'backup-codes',
      ]);
    } finally {
      await context.close();
    }
  });

  test('with JavaScript off, the keyboard picks a method, reaches its enrolment and goes back', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await reachList(context, 1);
      const focused = () =>
        page.evaluate(() => {
          const el = document.activeElement;
          if (el instanceof HTMLInputElement) return `input ${el.type} ${el.value}`;
          return el && el !== document.body ? `${el.tagName.toLowerCase()} ${el.textContent?.trim() ?? ''}` : 'body';
        });
      // The radio group is the page's first stop; arrow keys move through it and select.
      await page.keyboard.press('Tab');
      await expect(focused()).resolves.toBe('input radio totp');
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown');
      await expect(focused()).resolves.toBe('input radio backup-codes');
      await page.keyboard.press('Tab');
      await expect(focused()).resolves.toBe('button Continue');
      await page.keyboard.press('Enter');
      await page.waitForURL(/\?factor=backup-codes$/);
      await expect(page.title()).resolves.toBe('Save your backup codes · Twofold');

      // Back to the list from the enrolment page, by keyboard too.
      for (let i = 0; i < 12 && (await focused()) !== 'a Choose a different method'; i++) await page.keyboard.press('Tab');
      await expect(focused()).resolves.toBe('a Choose a different method');
      await page.keyboard.press('Enter');
      await page.locator('fieldset.choices').waitFor();
      expect(new URL(page.url()).search).toBe('');
    } finally {
      await context.close();
    }
  });
});
