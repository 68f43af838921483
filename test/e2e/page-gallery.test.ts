/**
 * The page gallery: one headless Chromium walks through every page a person
 * can meet (sign-in, enrolment of each factor, the backup codes, the second
 * step of each factor, the optional step with "Skip", the reminder to enrol,
 * adding a method at the app's request and the list to pick it from,
 * consent, the error, expired and input-refused pages, sign-out, and the
 * device flow's pages), in a given language (the browser's Accept-Language
 * and the app's ui_locales):
 *
 * - English and German: every page at 390 and 1280 px, light and dark, is
 *   screenshotted (full page, to `$SCREENSHOT_DIR/<lang>/<page>-<width>-<scheme>.png`,
 *   test-output/screenshots by default) and checked by axe-core (WCAG 2 A and
 *   AA, contrast included) with no violation; no page is wider than the
 *   screen, no backup code breaks over two lines, and `<html lang>` is the
 *   language asked for;
 * - the pseudo-language en-XA (PSEUDO_LANGUAGE): every catalogue text comes
 *   out accented inside ⟦ ⟧, so any word of plain ASCII letters outside them
 *   that is not data the test put there (names, addresses, codes) was not
 *   rendered from the message catalogue; each is listed with its page.
 *
 * The tour finds its way by element ids, `name` attributes, hrefs and form
 * actions, never by words, so the one tour serves every language. Skipped,
 * with one warning, when /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { newSeedKey, seedWebAuthnCredential } from '../helpers/webauthn.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { startSmsGateway, type SmsGateway } from '../helpers/sms-gateway.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { GLOBAL, groupScope, savePolicy } from '../../src/policy/store.ts';
import { PSEUDO_LANGUAGE } from '../../src/i18n/catalogue.ts';
import { maskEmail } from '../../factors/email-code/index.ts';
import { maskPhone } from '../../factors/sms-code/index.ts';
import type { Services } from '../../src/services.ts';

const PASSWORD = 'correct horse battery staple';
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
/** A second factor as the app's wish (voluntary acr_values): with MFA off, the person may skip it. */
const WISH = { acr_values: MFA_ACR };
/** A second factor as a must (an essential acr): no skipping. */
const MUST = { claims: JSON.stringify({ id_token: { acr: { essential: true, values: [MFA_ACR] } } }) };
const APP = 'Gallery App';
const PARTNER = 'Partner App';
const DEVICE = 'Gallery TV';
const KEY_LABEL = 'Blue key';
/** A group whose members must have a second factor from this date on: until then they are reminded at each sign-in. */
const DEADLINE = '2099-12-31';
/** The layout's brand, allowed in the pseudo-language in its header and the title only. */
const BRAND = 'Twofold';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? 'test-output/screenshots';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [390, 1280] as const;
const SCHEMES = ['light', 'dark'] as const;
/** One language's tour, with the machine busy (two cores, shared). */
const TOUR_TIMEOUT = 240_000;

type Language = 'en' | 'de' | typeof PSEUDO_LANGUAGE;

/**
 * What the tour does at each page: `data` holds strings on it that are no
 * text of Twofold's (codes and keys the server drew, the names and addresses
 * the test chose).
 */
type Look = (page: Page, name: string, data: string[]) => Promise<void>;

/**
 * The lines of `text` holding a word of plain ASCII letters outside ⟦ ⟧
 * (nested ones too: a message may carry another as a parameter), once the
 * `allowed` strings are taken out (whole words only, so a name does not hide
 * part of an English word).
 */
function untranslated(text: string, allowed: string[]): string[] {
  let rest = text;
  for (const a of [...allowed].filter(Boolean).sort((x, y) => y.length - x.length)) {
    const escaped = a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    rest = rest.replace(new RegExp(`(?<![A-Za-z0-9])${escaped}(?![A-Za-z0-9])`, 'g'), ' ');
  }
  for (let before = ''; before !== rest;) {
    before = rest;
    rest = rest.replace(/⟦[^⟦⟧]*⟧/g, ' ');
  }
  return rest
    .split('\n')
    .map((line) => line.replace(/\s+/g, ' ').trim())
    .filter((line) => /[A-Za-z]/.test(line));
}

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

describeBrowser('every page a person meets, in Chromium, in English, German and the pseudo-language', () => {
  let database: TestDatabase;
  let server: TestServer;
  let services: Services;
  let browser: Browser;
  let sink: MailSink;
  let gateway: SmsGateway;
  let app: RelyingParty;
  /** A third-party app: its users are asked for consent. */
  let partner: RelyingParty;
  /** A TV: the device flow. */
  let tv: oidc.Configuration;
  /** The apps' redirect URIs: a real server (Chromium restarts a navigation that page.route would answer, after the provider's COOP header). */
  let appServer: http.Server;
  let appOrigin: string;
  let onCallback: ((url: string) => void) | undefined;
  let phones = 0;
  /** Its members are reminded to enrol. */
  let staffGroupId: string;

  beforeAll(async () => {
    sink = await startMailSink();
    gateway = await startSmsGateway();
    database = await createTestDatabase('pglite');
    // MFA off: the app's request alone asks for a second factor, as a wish (skippable) or a must, so one server shows both.
    server = await startTestServer(database, {
      MFA: 'off',
      PSEUDO_LANGUAGE: 'true',
      SMTP_URL: sink.url,
      SMS_WEBHOOK_URL: gateway.url,
      SMS_WEBHOOK_SECRET: gateway.secret,
    });
    services = server.opened.services;
    // The global policy says what MFA off says, and lets a browser be trusted, so the second step offers "don't ask again".
    await savePolicy(services.db, GLOBAL, { mfa: 'off', trustedDevices: { enabled: true, days: 30 } }, 'page-gallery');
    staffGroupId = (await createGroup(services.db, 'staff')).id;
    await savePolicy(services.db, groupScope(staffGroupId), { level: 2, enrollmentDeadline: { date: DEADLINE } }, 'page-gallery');
    appServer = http.createServer((req, res) => {
      onCallback?.(`${appOrigin}${req.url}`);
      onCallback = undefined;
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><html lang="en"><title>App</title><link rel="icon" href="data:,"><p>Back at the app.</p>');
    });
    await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    appOrigin = `http://localhost:${(appServer.address() as AddressInfo).port}`;
    const first = await createClient(services.db, services.sealer, { name: APP, redirectUris: [`${appOrigin}/callback`], firstParty: true });
    app = await relyingParty(server.issuer, first.clientId, first.clientSecret, `${appOrigin}/callback`);
    const third = await createClient(services.db, services.sealer, { name: PARTNER, redirectUris: [`${appOrigin}/partner`] });
    partner = await relyingParty(server.issuer, third.clientId, third.clientSecret, `${appOrigin}/partner`);
    const device = await createClient(services.db, services.sealer, { name: DEVICE, deviceFlow: true, firstParty: true });
    tv = await oidc.discovery(new URL(server.issuer), device.clientId, { client_secret: device.clientSecret! }, oidc.ClientSecretBasic(device.clientSecret!), {
      execute: [oidc.allowInsecureRequests],
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
    await new Promise<void>((resolve) => (appServer ? appServer.close(() => resolve()) : resolve()));
    await sink?.close();
    await gateway?.close();
  });

  /** A fresh browser profile speaking `lang`; with a virtual security key (CTAP2 over USB, touched and verified at once) when asked. CSP is bypassed only so axe can be injected. */
  async function openProfile(lang: Language, withAuthenticator = false): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ locale: lang, bypassCSP: true, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    if (withAuthenticator) {
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

  /** Runs `act` (a click that submits or follows a link) and waits for the page it leads to. */
  async function next(page: Page, act: () => Promise<unknown>): Promise<void> {
    const loaded = page.waitForEvent('load', { timeout: 20_000 });
    await act();
    await loaded;
  }

  /** Runs `act` and waits for the browser to arrive back at the app; the URL it arrived at. */
  async function backAtApp(page: Page, act: () => Promise<unknown>): Promise<URL> {
    const arrived = new Promise<string>((resolve) => (onCallback = resolve));
    await act();
    const url = new URL(await arrived);
    await page.waitForURL((u) => u.origin === appOrigin);
    return url;
  }

  async function submitPassword(page: Page, username: string, password = PASSWORD): Promise<void> {
    await page.locator('#login').fill(username);
    await page.locator('#password').fill(password);
    await next(page, () => page.locator('form[action$="/login"] button[type="submit"]').click());
  }

  /** Makes `factorId` the step on the page (an enrolment or a proof): through its "use … instead" link when another is shown. */
  async function choose(page: Page, step: 'enroll' | 'factor', factorId: string): Promise<void> {
    const form = page.locator(`form[action$="/${step}/${factorId}"]`);
    if ((await form.count()) === 0) await next(page, () => page.locator(`a[href$="?factor=${factorId}"]`).first().click());
    await expect(form.count()).resolves.toBe(1);
  }

  /** Presses the primary button of the step's form. */
  async function pressPrimary(page: Page, step: 'enroll' | 'factor', factorId: string): Promise<void> {
    await next(page, () => page.locator(`form[action$="/${step}/${factorId}"] button.primary`).click());
  }

  /** Presses "send a code" (a button of the step's form posting action=send); the page then asks for the code. */
  async function sendCode(page: Page, step: 'enroll' | 'factor', factorId: string): Promise<void> {
    await next(page, () => page.locator(`form[action$="/${step}/${factorId}"] button[name="action"][value="send"]`).click());
    await expect(page.locator('input#code').count()).resolves.toBe(1);
  }

  /** What the server drew for the page, data rather than text: a TOTP key being enrolled (in groups of four), backup codes. */
  async function drawnByServer(page: Page): Promise<string[]> {
    const keys = await page.locator('form[action$="/enroll/totp"] code.key').allTextContents();
    const codes = await page.locator('ol.codes code').allTextContents();
    return [...keys.flatMap((key) => key.trim().split(/\s+/)), ...codes];
  }

  /** A TOTP code that none of the accepted time steps (now and one either side) would take. */
  function wrongTotp(secret: string): string {
    const accepted = new Set([-1, 0, 1].map((offset) => totpCode(secret, offset)));
    let code = totpCode(secret);
    while (accepted.has(code)) code = String((Number(code) + 123457) % 1_000_000).padStart(6, '0');
    return code;
  }

  /**
   * The whole tour in `lang`, calling `look` at every page. Four people: Ada, new, enrols; Bea, with every
   * factor seeded, proves each; Cy, new, skips the optional step and consents; Dee, new and in a group that
   * will require a second factor, connects a TV and is reminded to enrol.
   */
  async function tour(lang: Language, look: Look): Promise<void> {
    const tag = lang.toLowerCase().replace('-', '');
    const person = async (name: string) => {
      const username = `${name}.${tag}`;
      const email = `${username}@example.test`;
      const phone = `+4477009${String(++phones).padStart(5, '0')}`;
      const account = await createAccount(services.db, services.hasher, { username, email, password: PASSWORD });
      return { account, username, email, phone, data: [username, email, maskEmail(email), phone, maskPhone(phone)] };
    };
    const ada = await person('ada');
    const bea = await person('bea');
    const cy = await person('cy');
    const dee = await person('dee');
    await addMember(services.db, staffGroupId, dee.account.id);
    const beaTotp = await enrolTotp(services, bea.account.id);
    await services.factors.store.insert(bea.account.id, 'email-code', { label: 'Email', secret: bea.email, data: { channel: 'email' } });
    await services.factors.store.insert(bea.account.id, 'sms-code', { label: 'Phone', secret: bea.phone, data: { channel: 'sms' } });
    await seedWebAuthnCredential(services, bea.account.id, newSeedKey(), { label: KEY_LABEL });
    // Three codes: using one leaves two, which is when the "make a new set" notice shows (warnAt 2).
    const beaCodes = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
    await enrolBackupCodes(services, bea.account.id, beaCodes);
    const common = [APP, PARTNER, DEVICE, KEY_LABEL, ...ada.data, ...bea.data, ...cy.data, ...dee.data];
    const at = async (page: Page, name: string, data: string[] = []) => look(page, name, [...common, ...(await drawnByServer(page)), ...data]);
    const withLocale = (extra: Record<string, string>) => ({ ui_locales: lang, ...extra });

    // Ada: the sign-in page, a wrong password, then the enrolment of each factor; a security key registered for real.
    {
      const { context, page } = await openProfile(lang, true);
      try {
        await page.goto((await app.authorizationUrl(withLocale(MUST))).url);
        await at(page, 'sign-in');
        await submitPassword(page, ada.username, 'not the password');
        await expect(page.locator('p.alert[role="alert"]:not([hidden])').count()).resolves.toBe(1);
        await at(page, 'sign-in-failed');
        await submitPassword(page, ada.username);

        await choose(page, 'enroll', 'totp');
        await at(page, 'enrol-totp');
        await choose(page, 'enroll', 'email-code');
        await at(page, 'enrol-email');
        await page.locator('#email').fill(ada.email);
        await sendCode(page, 'enroll', 'email-code');
        await at(page, 'enrol-email-sent');
        await choose(page, 'enroll', 'sms-code');
        await at(page, 'enrol-sms');
        await page.locator('#phone').fill(ada.phone);
        await sendCode(page, 'enroll', 'sms-code');
        await at(page, 'enrol-sms-sent');
        await choose(page, 'enroll', 'passkey');
        await at(page, 'enrol-passkey');
        await choose(page, 'enroll', 'webauthn');
        await at(page, 'enrol-security-key');
        // The page's script asks the virtual key, then posts its answer: the backup codes follow a first factor.
        await pressPrimary(page, 'enroll', 'webauthn');
        const codes = await page.locator('ol.codes code').allTextContents();
        expect(codes.length).toBeGreaterThan(0);
        await at(page, 'backup-codes');
        await page.locator('input[name="saved"]').check();
        const back = await backAtApp(page, () => page.locator('form[action$="/enroll/backup-codes"] button.primary').click());
        expect(back.searchParams.get('code')).toBeTruthy();
      } finally {
        await context.close();
      }
    }

    // Bea: each factor's second step (no security key in this browser: its page is only looked at), a backup code, sign-out.
    {
      const { context, page } = await openProfile(lang);
      try {
        const auth = await app.authorizationUrl(withLocale(MUST));
        await page.goto(auth.url);
        await submitPassword(page, bea.username);
        await choose(page, 'factor', 'totp');
        await at(page, 'second-factor-totp');
        await page.locator('#code').fill(wrongTotp(beaTotp));
        await pressPrimary(page, 'factor', 'totp');
        await expect(page.locator('p.alert[role="alert"]:not([hidden])').count()).resolves.toBe(1);
        await at(page, 'second-factor-wrong-code');
        await choose(page, 'factor', 'email-code');
        await at(page, 'second-factor-email');
        await sendCode(page, 'factor', 'email-code');
        await at(page, 'second-factor-email-sent');
        await choose(page, 'factor', 'sms-code');
        await at(page, 'second-factor-sms');
        await sendCode(page, 'factor', 'sms-code');
        await at(page, 'second-factor-sms-sent');
        await choose(page, 'factor', 'webauthn');
        await at(page, 'second-factor-security-key');
        // "Lost your device?": the recovery link.
        await choose(page, 'factor', 'backup-codes');
        await at(page, 'second-factor-backup-code');
        await page.locator('#code').fill(beaCodes[0]!);
        await pressPrimary(page, 'factor', 'backup-codes');
        await expect(page.locator('form[action$="/continue"]').count()).resolves.toBe(1);
        await at(page, 'backup-codes-low');
        const callback = await backAtApp(page, () => page.locator('form[action$="/continue"] button').click());
        const tokens = await app.redeem(callback.href, auth);

        // Sign-out as the app asks for it, and the page after.
        const end = new URL(app.config.serverMetadata().end_session_endpoint!);
        end.searchParams.set('id_token_hint', tokens.id_token!);
        end.searchParams.set('ui_locales', lang);
        await page.goto(end.href);
        await at(page, 'sign-out');
        await next(page, () => page.locator('button[name="logout"][value="yes"]').click());
        await expect(page.locator('form, #login').count()).resolves.toBe(0);
        await at(page, 'signed-out');

        // The second step as a wish: it may be skipped.
        await page.goto((await app.authorizationUrl(withLocale(WISH))).url);
        await submitPassword(page, bea.username);
        await expect(page.locator('form[action$="/skip"]').count()).resolves.toBe(1);
        await at(page, 'second-factor-optional');
        await backAtApp(page, () => page.locator('form[action$="/skip"] button').click());

        // The app asks for a method to be added, any: a fresh proof of one she has, the list to pick from, then the
        // picked one's page; she cancels.
        await page.goto((await app.authorizationUrl(withLocale({ twofold_enroll: 'any' }))).url);
        await choose(page, 'factor', 'totp');
        await at(page, 'add-method-confirm');
        await page.locator('#code').fill(totpCode(beaTotp));
        await pressPrimary(page, 'factor', 'totp');
        await expect(page.locator('input[name="factor"][type="radio"]').count()).resolves.toBeGreaterThan(1);
        await at(page, 'add-method-choose');
        await page.locator('input[name="factor"][value="webauthn"]').check();
        await next(page, () => page.locator('form:has(input[name="factor"]) button[type="submit"]').click());
        await expect(page.locator('form[action$="/enroll/webauthn"]').count()).resolves.toBe(1);
        await at(page, 'add-method');
        const cancelled = await backAtApp(page, () => page.locator('a[href$="/abort"]').click());
        expect(cancelled.searchParams.get('error')).toBe('access_denied');
      } finally {
        await context.close();
      }
    }

    // Cy: the optional enrolment, skipped; a third-party app's consent; then pages of things gone wrong.
    {
      const { context, page } = await openProfile(lang);
      try {
        await page.goto((await partner.authorizationUrl(withLocale(WISH))).url);
        await submitPassword(page, cy.username);
        await expect(page.locator('form[action*="/enroll/"]').count()).resolves.toBe(1);
        await at(page, 'enrol-optional');
        await next(page, () => page.locator('form[action$="/skip"] button').click());
        await expect(page.locator('form[action$="/consent"]').count()).resolves.toBe(1);
        await at(page, 'consent');
        await backAtApp(page, () => page.locator('form[action$="/consent"] button').click());

        // An app that is not registered.
        await page.goto(`${server.issuer}/auth?client_id=unknown-app&response_type=code&scope=openid&ui_locales=${lang}`);
        await at(page, 'error');
        // A sign-in nobody knows (expired, or from another browser).
        const expired = await page.goto(`${server.issuer}/interaction/no-such-sign-in`);
        expect(expired?.status()).toBe(400);
        await at(page, 'expired');
        // Text the database cannot take (a NUL), refused at the edge.
        const refused = await page.goto(`${server.issuer}/auth?client_id=%00&ui_locales=${lang}`);
        expect(refused?.status()).toBe(400);
        await at(page, 'input-refused');
      } finally {
        await context.close();
      }
    }

    // A TV asks Dee to connect it: the code page, a wrong code, the check; she cancels. Again: her sign-in, the
    // reminder to enrol (skipped), done.
    {
      const { context, page } = await openProfile(lang);
      try {
        const enterCode = async (code: string) => {
          await page.locator('#user_code').fill(code);
          await next(page, () => page.locator('form:has(#user_code) button[type="submit"]').click());
        };
        const first = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
        await page.goto(first.verification_uri);
        await at(page, 'device-code');
        await enterCode('BBBB-BBBB');
        await expect(page.locator('p.alert[role="alert"]:not([hidden])').count()).resolves.toBe(1);
        await at(page, 'device-code-refused', ['BBBB-BBBB']);
        await enterCode(first.user_code);
        await expect(page.locator('button[name="confirm"][value="yes"]').count()).resolves.toBe(1);
        await at(page, 'device-confirm', [first.user_code]);
        await next(page, () => page.locator('button[name="abort"][value="yes"]').click());
        await expect(page.locator('#user_code').count()).resolves.toBe(1);
        await at(page, 'device-cancelled');

        const second = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
        await enterCode(second.user_code);
        await next(page, () => page.locator('button[name="confirm"][value="yes"]').click());
        await submitPassword(page, dee.username);
        await expect(page.locator('form[action$="/skip"]').count()).resolves.toBe(1);
        await at(page, 'enrol-reminder');
        await next(page, () => page.locator('form[action$="/skip"] button').click());
        await expect(page.locator('form').count()).resolves.toBe(0);
        await at(page, 'device-done');
      } finally {
        await context.close();
      }
    }
  }

  /** Where a page's screenshot goes. */
  function screenshotPath(lang: Language, name: string, width: number, scheme: string): string {
    return path.join(SCREENSHOT_DIR, lang, `${name}-${width}-${scheme}.png`);
  }

  /** `<html lang>`, when it is not the language asked for. */
  async function wrongLang(page: Page, lang: Language, name: string): Promise<string[]> {
    const found = await page.evaluate(() => document.documentElement.lang);
    return found === lang ? [] : [`${name}: <html lang="${found}">, not ${lang}`];
  }

  /** At both widths and in both schemes: a screenshot, axe, no horizontal scroll, no backup code over two lines. */
  function audit(lang: Language, problems: string[]): Look {
    return async (page, name) => {
      problems.push(...(await wrongLang(page, lang, name)));
      await page.evaluate(AXE_SOURCE);
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 800 });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 0) problems.push(`${name} ${width}px: the page is ${overflow}px wider than the screen`);
        // One box per code: a code that wraps at its hyphen has two.
        const broken = await page
          .locator('ol.codes code')
          .evaluateAll((els) => els.filter((el) => el.getClientRects().length !== 1).map((el) => el.textContent));
        problems.push(...broken.map((code) => `${name} ${width}px: the backup code ${code} breaks over two lines`));
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
          problems.push(...found.map((f) => `${name} ${colorScheme} ${width}px: ${f}`));
          await page.screenshot({ path: screenshotPath(lang, name, width, colorScheme), fullPage: true });
        }
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 1280, height: 800 });
    };
  }

  /** The pseudo-language: one screenshot, then every text a person can read on the page, checked for words no catalogue message produced. */
  function catalogueOnly(problems: string[]): Look {
    return async (page, name, data) => {
      await page.screenshot({ path: screenshotPath(PSEUDO_LANGUAGE, name, 1280, 'light'), fullPage: true });
      problems.push(...(await wrongLang(page, PSEUDO_LANGUAGE, name)));
      const texts = await page.evaluate((brand) => {
        // Folded-away text counts too (the TOTP key's "enter it by hand").
        for (const details of document.querySelectorAll('details')) details.open = true;
        // The brand in the layout's header is a name, not a text.
        for (const el of document.querySelectorAll<HTMLElement>('.card-head .brand')) if (el.textContent?.trim() === brand) el.style.display = 'none';
        const out = [
          { where: 'page', text: document.body.innerText },
          { where: 'title', text: document.title },
        ];
        for (const el of document.querySelectorAll('[title], [placeholder], [aria-label], [alt]')) {
          for (const attr of ['title', 'placeholder', 'aria-label', 'alt']) {
            const value = el.getAttribute(attr);
            if (value) out.push({ where: `${attr} of <${el.localName}>`, text: value });
          }
        }
        // An input button's value is its label; a <button>'s value is what it posts (its label is in the page's text).
        for (const el of document.querySelectorAll<HTMLInputElement>('input[type="submit"], input[type="button"], input[type="reset"]')) {
          if (el.value) out.push({ where: `value of <input type="${el.type}">`, text: el.value });
        }
        return out;
      }, BRAND);
      // A page with no catalogue text at all was not rendered in the pseudo-language (or not read): nothing above proves anything.
      if (!texts.some(({ text }) => text.includes('⟦'))) problems.push(`${name}: no text from the catalogue at all`);
      for (const { where, text } of texts) {
        const allowed = where === 'title' ? [...data, BRAND] : data;
        problems.push(...untranslated(text, allowed).map((line) => `${name}: ${where}: ${JSON.stringify(line)}`));
      }
    };
  }

  for (const lang of ['en', 'de'] as const) {
    test(
      `${lang}: every page passes axe (WCAG 2 AA) light and dark at 390 and 1280 px, fits the screen, speaks ${lang}; backup codes unbroken`,
      async () => {
        const problems: string[] = [];
        await tour(lang, audit(lang, problems));
        expect(problems).toEqual([]);
      },
      TOUR_TIMEOUT,
    );
  }

  test(
    'en-XA: every text on every page comes from the message catalogue',
    async () => {
      const problems: string[] = [];
      await tour(PSEUDO_LANGUAGE, catalogueOnly(problems));
      expect(problems).toEqual([]);
    },
    TOUR_TIMEOUT,
  );
});
