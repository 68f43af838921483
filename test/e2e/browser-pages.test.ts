/**
 * The sign-in pages as a new user meets them, in one headless Chromium:
 * - axe-core (WCAG 2 A and AA, contrast included) finds no violation on the
 *   sign-in, TOTP enrolment, backup codes, second-factor, consent, error,
 *   expired, sign-out and signed-out pages, light and dark, 390 px and 1280 px wide;
 * - no backup code breaks over two lines at either width;
 * - the "sign-in expired" page links back to the app that started the
 *   sign-in (only to an address registered for it), or says so when the app
 *   is unknown;
 * - a cancelled passkey autofill request shows no error on the login page.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { storedPayloadId } from '../../src/oidc/adapter.ts';

const PASSWORD = 'correct horse battery staple';
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const START_AGAIN = 'https://app.example.test/start';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('the sign-in pages in Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let rp: RelyingParty;
  /** An app that registered where it starts a sign-in (initiate_login_uri). */
  let starter: RelyingParty;
  /** A third-party app: its users are asked for consent. */
  let thirdParty: RelyingParty;
  let appOrigin: string;
  /** axe's findings over every page, scheme and width, as "page scheme width: rule: target". */
  const violations: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database);
    const { db, hasher, sealer } = server.opened.services;
    await createAccount(db, hasher, { username: 'dora', email: 'dora@example.test', password: PASSWORD });
    appOrigin = `http://localhost:${await freePort()}`;
    const app = await createClient(db, sealer, { name: 'Pages Test App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
    const other = await createClient(db, sealer, { name: 'Starter App', redirectUris: [`${appOrigin}/other`], initiateLoginUri: START_AGAIN, firstParty: true });
    starter = await relyingParty(server.issuer, other.clientId, other.clientSecret, `${appOrigin}/other`);
    const third = await createClient(db, sealer, { name: 'Third Party App', redirectUris: [`${appOrigin}/third`] });
    thirdParty = await relyingParty(server.issuer, third.clientId, third.clientSecret, `${appOrigin}/third`);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
  });

  /** A fresh profile; the app's origin answers through page.route. CSP is bypassed only so axe can be injected. */
  async function openPage(): Promise<{ context: BrowserContext; page: Page; callback: Promise<string> }> {
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
    return { context, page, callback };
  }

  /** Runs axe on the page as it is, in both schemes at both widths; `each` checks more at every width. */
  async function audit(page: Page, name: string, each?: (width: number) => Promise<void>): Promise<void> {
    await page.evaluate(AXE_SOURCE);
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 800 });
      for (const colorScheme of SCHEMES) {
        await page.emulateMedia({ colorScheme });
        const found = await page.evaluate(async () => {
          const axe = (window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[]; failureSummary?: string }> }> }> } }).axe;
          const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
          return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${JSON.stringify(n.target)} ${n.failureSummary ?? ''}`));
        });
        violations.push(...found.map((f) => `${name} ${colorScheme} ${width}px: ${f}`));
      }
      await each?.(width);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  }

  async function signInWithPassword(page: Page, app: RelyingParty, extra: Record<string, string> = {}) {
    const auth = await app.authorizationUrl(extra);
    await page.goto(auth.url);
    await page.getByLabel('Username or email').fill('dora');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    return auth;
  }

  test('every page passes axe (WCAG 2 AA) light and dark at 390 and 1280 px; backup codes stay on one line', async () => {
    const first = await openPage();
    try {
      const auth = await rp.authorizationUrl({ acr_values: MFA_ACR });
      await first.page.goto(auth.url);
      await audit(first.page, 'sign-in');
      await first.page.getByLabel('Username or email').fill('dora');
      await first.page.getByLabel('Password').fill(PASSWORD);
      await first.page.getByRole('button', { name: 'Sign in', exact: true }).click();

      // Enrolment: an authenticator app (TOTP), the key read from the page as a person would type it.
      await first.page.getByLabel('Code from the app').waitFor();
      await audit(first.page, 'enrol-totp');
      const key = (await first.page.locator('code.key').textContent())!.replace(/\s/g, '');
      await first.page.getByLabel('Code from the app').fill(totpCode(key));
      await first.page.getByRole('button', { name: 'Turn on' }).click();

      await first.page.getByLabel('I have saved these codes').waitFor();
      const codes = first.page.locator('ol.codes code');
      expect(await codes.count()).toBeGreaterThan(0);
      await audit(first.page, 'backup-codes', async (width) => {
        // One box per code: a code that wraps at its hyphen has two.
        const lines = await codes.evaluateAll((els) => els.map((el) => `${el.textContent} ${el.getClientRects().length}`));
        expect(lines.filter((l) => !l.endsWith(' 1')).map((l) => `${width}px: ${l}`)).toEqual([]);
        // Nor does the list push the page wider than the screen.
        await expect(first.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).resolves.toBe(true);
      });
      await first.page.getByLabel('I have saved these codes').check();
      await first.page.getByRole('button', { name: 'Continue' }).click();
      const claims = (await rp.redeem(await first.callback, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));

      // Sign-out, and the page after it.
      await first.page.goto(`${server.issuer}/session/end`);
      await first.page.getByRole('button', { name: 'Sign out' }).waitFor();
      await audit(first.page, 'sign-out');
      await first.page.getByRole('button', { name: 'Sign out' }).click();
      await first.page.getByText('You are signed out').waitFor();
      await audit(first.page, 'signed-out');

      // The second factor, asked of an account that has one, then a third-party app's consent.
      await signInWithPassword(first.page, thirdParty, { acr_values: MFA_ACR });
      const code = first.page.getByLabel(/Enter the 6-digit code/);
      await code.waitFor();
      await audit(first.page, 'second-factor');
      // The next time step: the enrolment used this one, and a code is accepted once.
      await code.fill(totpCode(key, 1));
      await code.press('Enter');
      await first.page.getByRole('button', { name: 'Allow' }).waitFor();
      await audit(first.page, 'consent');

      // An error page: an app that is not registered.
      await first.page.goto(`${server.issuer}/auth?client_id=unknown-app&response_type=code&scope=openid`);
      await first.page.getByRole('alert').waitFor();
      await audit(first.page, 'error');

      // The expired sign-in page.
      await first.page.goto(`${server.issuer}/interaction/no-such-sign-in`);
      await audit(first.page, 'expired');
    } finally {
      await first.context.close();
    }
    expect(violations).toEqual([]);
  });

  test('an expired sign-in, or one opened in another browser, links back to the app that started it', async () => {
    const started = await openPage();
    const elsewhere = await openPage();
    try {
      const wayBack = (page: Page) => page.locator('nav.secondary a');

      // Opened in another browser (no interaction cookie there): the app's first redirect URI's origin.
      await started.page.goto((await rp.authorizationUrl()).url);
      const signIn = started.page.url();
      const uid = new URL(signIn).pathname.split('/').at(-1)!;
      const response = await elsewhere.page.goto(signIn);
      expect(response?.status()).toBe(400);
      await expect(elsewhere.page.title()).resolves.toBe('Sign-in expired · Twofold');
      await expect(elsewhere.page.getByRole('alert').textContent()).resolves.toContain('Start again from Pages Test App.');
      await expect(wayBack(elsewhere.page).getAttribute('href')).resolves.toBe(`${appOrigin}/`);
      await wayBack(elsewhere.page).click();
      await expect(elsewhere.callback).resolves.toBe(`${appOrigin}/`);

      // Expired in the browser that started it: the same way back, found from the expired interaction.
      await server.opened.services.db
        .updateTable('oidc_payloads')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('kind', '=', 'Interaction')
        .where('id', '=', storedPayloadId(server.opened.services.codeHasher, 'Interaction', uid))
        .execute();
      await started.page.reload();
      await expect(started.page.title()).resolves.toBe('Sign-in expired · Twofold');
      // A link taken from the request would be an open redirect: only what the app registered is offered.
      await started.page.goto(`${signIn}?redirect_uri=https://evil.example/&initiate_login_uri=https://evil.example/`);
      await expect(wayBack(started.page).getAttribute('href')).resolves.toBe(`${appOrigin}/`);

      // An app that registered initiate_login_uri is started again there.
      await started.page.goto((await starter.authorizationUrl()).url);
      await elsewhere.page.goto(started.page.url());
      await expect(wayBack(elsewhere.page).textContent()).resolves.toBe('Start again at Starter App');
      await expect(wayBack(elsewhere.page).getAttribute('href')).resolves.toBe(START_AGAIN);

      // A sign-in nobody knows: no link to guess, a plain instruction instead.
      await elsewhere.page.goto(`${server.issuer}/interaction/no-such-sign-in`);
      await expect(elsewhere.page.getByRole('alert').textContent()).resolves.toContain('Go back to the app you came from');
      await expect(wayBack(elsewhere.page).count()).resolves.toBe(0);
    } finally {
      await started.context.close();
      await elsewhere.context.close();
    }
  });

  test('a cancelled passkey autofill request shows no error; a cancelled passkey button press does', async () => {
    const { context, page } = await openPage();
    try {
      // Chromium's own passkey UI cannot be dismissed from a test, so navigator.credentials.get() answers as the
      // browser does when a person dismisses it or it times out: NotAllowedError. What is tested is the page's handling.
      await page.addInitScript(() => {
        const w = window as unknown as { cancelled: string[] };
        w.cancelled = [];
        PublicKeyCredential.isConditionalMediationAvailable = async () => true;
        navigator.credentials.get = (options?: CredentialRequestOptions) => {
          const refusal = Promise.reject(new DOMException('The operation either timed out or was not allowed.', 'NotAllowedError'));
          // A task after the refusal: every promise reaction to it (the page's catch included) has run by then.
          setTimeout(() => w.cancelled.push(options?.mediation ?? 'optional'), 0);
          return refusal as Promise<Credential | null>;
        };
      });
      await page.goto((await rp.authorizationUrl()).url);
      await expect(page.getByLabel('Username or email').getAttribute('autocomplete')).resolves.toBe('username webauthn');
      await page.waitForFunction(() => (window as unknown as { cancelled: string[] }).cancelled.includes('conditional'));
      const error = page.locator('[data-webauthn-error]');
      await expect(error.isHidden()).resolves.toBe(true);

      // Asked for and cancelled, it is said.
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.waitForFunction(() => (window as unknown as { cancelled: string[] }).cancelled.includes('optional'));
      await expect(error.textContent()).resolves.toBe('The request was cancelled or timed out. Try again.');
      await expect(error.isVisible()).resolves.toBe(true);
    } finally {
      await context.close();
    }
  });
});
