/**
 * Behaviour of the sign-in pages in one headless Chromium (their look, axe-core
 * and languages are test/e2e/page-gallery.test.ts's):
 * - the "sign-in expired" page links back to the app that started the
 *   sign-in (only to an address registered for it), or says so when the app
 *   is unknown;
 * - a cancelled passkey autofill request shows no error on the login page.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page, Route } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { storedPayloadId } from '../../src/oidc/adapter.ts';

const START_AGAIN = 'https://app.example.test/start';

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('the sign-in pages in Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let rp: RelyingParty;
  /** An app that registered where it starts a sign-in (initiate_login_uri). */
  let starter: RelyingParty;
  let appOrigin: string;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    server = await startTestServer(database);
    const { db, sealer } = server.opened.services;
    appOrigin = `http://localhost:${await freePort()}`;
    const app = await createClient(db, sealer, { name: 'Pages Test App', redirectUris: [`${appOrigin}/callback`], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, `${appOrigin}/callback`);
    const other = await createClient(db, sealer, {
      name: 'Starter App',
      redirectUris: [`${appOrigin}/other`],
      initiateLoginUri: START_AGAIN,
      firstParty: true,
    });
    starter = await relyingParty(server.issuer, other.clientId, other.clientSecret, `${appOrigin}/other`);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
  });

  /** A fresh profile; the app's origin answers through page.route. */
  async function openPage(): Promise<{ context: BrowserContext; page: Page; callback: Promise<string> }> {
    const context = await browser.newContext();
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
