/**
 * The account center in a real Chromium (playwright-core), on every database
 * in the matrix, with a DevTools virtual authenticator as the security key:
 * sign in to /account through the provider, see the methods, add an
 * authenticator app and a security key through the provider's add-factor
 * flow, rename, the refusal to remove a method the policy needs, remove,
 * make new backup codes, revoke a trusted device, a session and an app, and
 * sign out (RP-initiated logout).
 *
 * On the first database, every page the flow shows is checked with axe-core
 * (WCAG 2 A and AA) in light and dark, 390 px and 1280 px wide, and never
 * wider than the screen; and the add-a-method flow is done with the keyboard
 * alone, JavaScript off.
 *
 * Skipped, with one warning, when /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { totpCode } from '../helpers/factors.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listDevices, trustDevice } from '../../src/mfa/trusted-devices.ts';
import { savePolicy } from '../../src/policy/store.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'correct horse battery staple';
const THIRD_PARTY = 'http://third.example.test/callback';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

for (const [index, kind] of DIALECTS.entries()) {
  describeBrowser(`the account center in Chromium on ${kind}`, () => {
    /** Accessibility is a property of the pages, not of the database: checked once. */
    const checkPages = index === 0;
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let browser: Browser;
    let thirdParty: RelyingParty;
    let users = 0;
    const violations: string[] = [];
    const checked = new Set<string>();

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', FACTOR_SETTINGS: JSON.stringify({ 'backup-codes': { offerAgain: true } }) });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'Third Party', redirectUris: [THIRD_PARTY] });
      thirdParty = await relyingParty(server.issuer, app.clientId, app.clientSecret, THIRD_PARTY, { scope: 'openid profile offline_access' });
      browser = await launchBrowser();
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<Account> {
      const n = ++users;
      return createAccount(services.db, services.hasher, {
        username: `carol${n}`,
        email: `carol${n}@example.test`,
        displayName: `Carol ${n}`,
        password: PASSWORD,
      });
    }

    /** axe on the page as it is, light and dark, narrow and wide; once per page title. */
    async function check(page: Page): Promise<void> {
      if (!checkPages) return;
      const title = await page.title();
      if (checked.has(title)) return;
      checked.add(title);
      await page.evaluate(AXE_SOURCE);
      for (const width of [390, 1280]) {
        await page.setViewportSize({ width, height: 900 });
        for (const colorScheme of ['light', 'dark'] as const) {
          await page.emulateMedia({ colorScheme });
          const found = await page.evaluate(async () => {
            const axe = (window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[] }> }> }> } })
              .axe;
            const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
            return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${JSON.stringify(n.target)}`));
          });
          violations.push(...found.map((f) => `${title} ${colorScheme} ${width}px: ${f}`));
        }
        if (!(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)))
          violations.push(`${title} ${width}px: wider than the screen`);
      }
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.emulateMedia({ colorScheme: 'light' });
    }

    /** A browser profile with a virtual security key (USB, device-bound); CSP bypassed only so axe can be injected. */
    async function openBrowser(options: { javaScriptEnabled?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
      const context = await browser.newContext({ bypassCSP: true, ...options });
      const page = await context.newPage();
      if (options.javaScriptEnabled !== false) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('WebAuthn.enable', { enableUI: false });
        await cdp.send('WebAuthn.addVirtualAuthenticator', {
          options: {
            protocol: 'ctap2',
            transport: 'usb',
            hasResidentKey: true,
            hasUserVerification: true,
            isUserVerified: true,
            automaticPresenceSimulation: true,
          },
        });
      }
      return { context, page };
    }

    async function signIn(page: Page, account: Account): Promise<void> {
      await page.goto(`${server.issuer}/account`);
      await page.getByLabel('Username or email').fill(account.username);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL(`${server.issuer}/account`);
    }

    /** Adds an authenticator app from the methods page; returns its secret. */
    async function addTotp(page: Page, name: string): Promise<string> {
      await page.getByRole('button', { name: 'Add a sign-in method' }).click();
      await page.locator('fieldset.choices').waitFor();
      await check(page);
      await page.getByRole('radio', { name: /Authenticator app/ }).check();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Code from the app').waitFor();
      await check(page);
      const secret = (await page.locator('code.key').textContent())!.replace(/\s/g, '');
      await page.getByLabel('Name this authenticator').fill(name);
      await page.getByLabel('Code from the app').fill(totpCode(secret));
      await page.getByLabel('Code from the app').press('Enter');
      return secret;
    }

    test('sign in, add an app and a key, rename, remove, new codes, revoke a device, a session and an app, sign out', async () => {
      const account = await newUser();
      const { context, page } = await openBrowser();
      try {
        await signIn(page, account);
        await expect(page.title()).resolves.toBe('Your account · Twofold');
        await page.getByText('Only your password.').first().waitFor();
        await check(page);
        await page.getByRole('link', { name: 'Sign-in methods', exact: true }).click();
        await page.getByText('You have no sign-in method besides your password yet.').first().waitFor();
        await check(page);

        // An authenticator app, through the provider's add-factor flow; its first backup codes are offered after it.
        const secret = await addTotp(page, 'Pixel');
        await page.getByLabel('I have saved these codes').waitFor();
        await check(page);
        await page.getByLabel('I have saved these codes').check();
        await page.getByRole('button', { name: 'Continue' }).click();
        await page.waitForURL(`${server.issuer}/account/methods?notice=added`);
        await page.getByText('The sign-in method was added.').first().waitFor();
        await page.getByText('Pixel').first().waitFor();
        await page.getByText('10 codes left').first().waitFor();

        // A security key: the virtual authenticator answers; the list says it is bound to the device.
        await page.getByRole('button', { name: 'Add a sign-in method' }).click();
        await page.getByRole('radio', { name: /Security key/ }).check();
        await page.getByRole('button', { name: 'Continue' }).click();
        await page.getByLabel('Name this key').fill('Blue key');
        await page.getByRole('button', { name: 'Register this key' }).click();
        await page.waitForURL(`${server.issuer}/account/methods?notice=added`, { timeout: 20_000 });
        await page.getByText('Blue key').first().waitFor();
        await page.getByText('Device-bound: stays on this one key or device').first().waitFor();

        // Something that is not the account's: a page that says so.
        const missing = await page.goto(`${server.issuer}/account/methods/no-such-method/rename`);
        expect(missing!.status()).toBe(404);
        await page.getByText('Nothing was changed.').first().waitFor();
        await check(page);
        await page.goto(`${server.issuer}/account/methods`);

        // Rename the key.
        await page.getByRole('link', { name: 'Rename Blue key' }).click();
        await check(page);
        await page.getByLabel('New name').fill('Office key');
        await page.getByRole('button', { name: 'Save' }).click();
        await page.getByText('The sign-in method was renamed.').first().waitFor();
        await page.getByText('Office key').first().waitFor();

        // Refused while a group requires level 3: the key is the only phishing-resistant method.
        const group = await services.db
          .insertInto('groups')
          .values({ id: `g-${account.id}`, name: `keys-${account.id}` })
          .returning('id')
          .executeTakeFirstOrThrow();
        await services.db.insertInto('account_groups').values({ account_id: account.id, group_id: group.id }).execute();
        await savePolicy(services.db, `group:${group.id}`, { level: 3 }, 'test');
        await page.getByRole('link', { name: 'Remove Office key' }).click();
        await page.getByText('requires sign-in at level 3').first().waitFor();
        expect(await page.getByRole('button', { name: 'Remove' }).count()).toBe(0);
        await check(page);
        await services.db.deleteFrom('account_groups').where('group_id', '=', group.id).execute();

        // A second session (another browser) and an app holding a consent and a refresh token.
        const other = new UserAgent(server.issuer);
        const login = await other.follow('/account');
        const challenge = await other.submit(formAction(login.body), { login: account.username, password: PASSWORD });
        const signedIn = await other.submit(`/interaction/${/\/interaction\/([^/"]+)\//.exec(challenge.body)![1]}/factor/totp`, { code: totpCode(secret, 1) });
        expect(signedIn.url).toBe(`${server.issuer}/account`);
        const auth = await thirdParty.authorizationUrl({ prompt: 'consent' });
        const consent = await other.follow(auth.url);
        const callback = await other.submit(formAction(consent.body), {});
        await thirdParty.redeem(callback.location!, auth);

        // Remove the authenticator app (a fresh proof: the key was just registered).
        await page.goto(`${server.issuer}/account/methods`);
        await page.getByRole('link', { name: 'Remove Pixel' }).click();
        await check(page);
        await page.getByRole('button', { name: 'Remove' }).click();
        await page.getByText('The sign-in method was removed.').first().waitFor();
        expect(await page.getByText('Pixel').count()).toBe(0);

        // New backup codes: shown once, with a download and a print button.
        await page.getByRole('link', { name: 'Backup codes', exact: true }).click();
        await page.getByText('You have 10 unused codes.').first().waitFor();
        await check(page);
        await page.getByRole('button', { name: 'Make new codes' }).click();
        await page.waitForURL(`${server.issuer}/account/backup-codes/new`);
        expect(await page.locator('ol.codes li').count()).toBe(10);
        expect(await page.getByRole('link', { name: 'Download as text file' }).getAttribute('download')).toBe('twofold-backup-codes.txt');
        await check(page);
        await page.getByRole('link', { name: 'I have saved them' }).click();

        // A trusted device (made now: removing a method voids the devices trusted before), revoked.
        await trustDevice(services.db, account.id, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 30, 'webauthn');
        await page.getByRole('link', { name: 'Trusted devices', exact: true }).click();
        await page.getByText('Firefox on Linux').first().waitFor();
        await check(page);
        await page.getByRole('button', { name: 'Revoke Firefox on Linux' }).click();
        await page.getByText('The device is no longer trusted').first().waitFor();
        expect((await listDevices(services.db, account.id))[0]!.state).toBe('revoked');

        // The other session, signed out.
        await page.getByRole('link', { name: 'Sessions', exact: true }).click();
        await page.getByText('This browser').first().waitFor();
        expect(
          await page
            .locator('li.item')
            .getByRole('button', { name: /^Sign out / })
            .count(),
        ).toBe(2);
        await check(page);
        await page
          .locator('li.item', { hasNot: page.getByText('This browser') })
          .getByRole('button', { name: /^Sign out / })
          .click();
        await page.getByText('That session was signed out.').first().waitFor();
        expect(
          await page
            .locator('li.item')
            .getByRole('button', { name: /^Sign out / })
            .count(),
        ).toBe(1);
        expect((await other.request('/account')).status).toBe(303);

        // The app, revoked.
        await page.getByRole('link', { name: 'Apps', exact: true }).click();
        await page.getByText('Third Party').first().waitFor();
        await check(page);
        await page.getByRole('button', { name: 'Revoke access Third Party' }).click();
        await page.getByText('No app holds access to your account.').first().waitFor();

        // Sign out: the provider asks, then the signed-out page.
        await page.getByRole('button', { name: 'Sign out', exact: true }).click();
        await page.getByRole('button', { name: 'Sign out', exact: true }).click();
        await page.waitForURL(/\/account\/signed-out/);
        await page.getByText('You signed out of your account.').first().waitFor();
        await check(page);
        await page.getByRole('link', { name: 'Sign in again' }).click();
        await page.getByLabel('Password').first().waitFor();
        expect(violations).toEqual([]);
      } finally {
        await context.close();
      }
    });

    (checkPages ? test : test.skip)('the keyboard alone adds an authenticator app, JavaScript off', async () => {
      const account = await newUser();
      const { context, page } = await openBrowser({ javaScriptEnabled: false });
      try {
        await signIn(page, account);
        await page.goto(`${server.issuer}/account/methods`);
        const focused = () =>
          page.evaluate(() => {
            const el = document.activeElement;
            if (el instanceof HTMLInputElement) return `input ${el.type} ${el.name} ${el.value}`;
            return el && el !== document.body ? `${el.tagName.toLowerCase()} ${el.textContent?.trim() ?? ''}` : 'body';
          });
        const tabTo = async (target: string) => {
          for (let i = 0; i < 30 && (await focused()) !== target; i++) await page.keyboard.press('Tab');
          await expect(focused()).resolves.toBe(target);
        };
        await tabTo('button Add a sign-in method');
        await page.keyboard.press('Enter');
        await page.locator('fieldset.choices').waitFor();
        await page.keyboard.press('Tab');
        await expect(focused()).resolves.toBe('input radio factor totp');
        await page.keyboard.press('Space');
        await tabTo('button Continue');
        await page.keyboard.press('Enter');
        await page.getByLabel('Code from the app').waitFor();
        const secret = (await page.locator('code.key').textContent())!.replace(/\s/g, '');
        await tabTo('input text label ');
        await page.keyboard.type('Keyboard phone');
        await page.keyboard.press('Tab');
        await page.keyboard.type(totpCode(secret));
        await page.keyboard.press('Enter');
        await page.getByLabel('I have saved these codes').waitFor();
        await tabTo('input checkbox saved yes');
        await page.keyboard.press('Space');
        await tabTo('button Continue');
        await page.keyboard.press('Enter');
        await page.waitForURL(`${server.issuer}/account/methods?notice=added`);
        await page.getByText('Keyboard phone').first().waitFor();
      } finally {
        await context.close();
      }
    });
  });
}
