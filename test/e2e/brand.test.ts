/**
 * The brand over HTTP: a provider started with BRAND_NAME, BRAND_LOGO and
 * BRAND_COLOR shows the name and the logo, links and serves the colour
 * stylesheet from its own origin under the pages' CSP, and gives the name to
 * authenticator apps (the otpauth URI in the QR code) and to passkey prompts
 * (the WebAuthn RP name); one without them says Twofold there, not
 * `localhost:port`. In Chromium, the colours apply and every text stays at
 * WCAG AA, light and dark. With a theme, its logo and theme.css win. A
 * colour below AA or a missing logo stops the start with one line. The
 * database plays no part: PGlite only.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import QRCode from 'qrcode';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { refusedStart } from '../helpers/provider-process.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { optionsInPage } from '../helpers/webauthn.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { ConfigError } from '../../src/config.ts';
import { removeThemeDirs, themeDir } from '../helpers/theme-dir.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'correct horse battery';
const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"><rect width="64" height="32" fill="#1f6feb"/></svg>\n';
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** What the totp factor draws its QR code with: the same text gives the same image. */
const QR_OPTIONS = { margin: 1, width: 200, errorCorrectionLevel: 'M' } as const;

if (!hasChromium) warnChromiumMissing();

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-brand-e2e-'));
const logoFile = path.join(tmp, 'logo.svg');
fs.writeFileSync(logoFile, LOGO);
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  removeThemeDirs();
});

/** The enrolment page's QR code and key. */
function totpEnrolment(page: Hop): { qr: string; key: string } {
  // Handlebars writes base64's `=` padding as `&#x3D;`.
  const qr = /<img src="(data:image\/png;base64,[^"]+)"/.exec(page.body)?.[1]?.replace(/&#x3D;/g, '=');
  const key = /<code class="key">([^<]+)<\/code>/.exec(page.body)?.[1]?.replace(/\s/g, '');
  if (!qr || !key) throw new Error(`no TOTP enrolment on the page:\n${page.body.slice(0, 800)}`);
  return { qr, key };
}

describe('a branded provider', () => {
  let database: TestDatabase;
  let plainDatabase: TestDatabase;
  let branded: TestServer;
  let plain: TestServer;
  let brandedRp: RelyingParty;
  let plainRp: RelyingParty;

  beforeAll(async () => {
    [database, plainDatabase] = await Promise.all([createTestDatabase('pglite'), createTestDatabase('pglite')]);
    // Both in one process: each app renders and serves its own brand.
    [branded, plain] = await Promise.all([
      startTestServer(database, { MFA: 'required', BRAND_NAME: 'Example ID', BRAND_LOGO: logoFile, BRAND_COLOR: '#1f6feb' }),
      startTestServer(plainDatabase, { MFA: 'required' }),
    ]);
    for (const [server, set] of [
      [branded, (rp: RelyingParty) => (brandedRp = rp)],
      [plain, (rp: RelyingParty) => (plainRp = rp)],
    ] as const) {
      const { db, hasher, sealer } = server.opened.services;
      for (const username of ['alice', 'bob', 'carol']) await createAccount(db, hasher, { username, password: PASSWORD });
      const app = await createClient(db, sealer, { name: 'Web Shop', redirectUris: [REDIRECT], firstParty: true });
      set(await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT));
    }
  });

  afterAll(async () => {
    await Promise.all([branded?.close(), plain?.close()]);
    await Promise.all([database?.close(), plainDatabase?.close()]);
  });

  /** Signs `username` in with the password, up to the enrolment the required second factor asks for. */
  async function enrolmentPage(server: TestServer, rp: RelyingParty, username: string): Promise<{ agent: UserAgent; page: Hop }> {
    const agent = new UserAgent(server.issuer);
    const login = await agent.follow((await rp.authorizationUrl()).url);
    const page = await agent.submit(formAction(login.body), { login: username, password: PASSWORD });
    expect(page.status).toBe(200);
    return { agent, page };
  }

  test('the pages show the name and the logo, and link the colour stylesheet under the same CSP', async () => {
    const page = await new UserAgent(branded.issuer).follow((await brandedRp.authorizationUrl()).url);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Sign in · Example ID</title>');
    expect(page.body).toContain('<span class="brand">Example ID</span>');
    expect(page.body).not.toContain('Twofold</span>');
    const logo = /<img class="brand-logo" src="(\/assets\/brand-logo\.svg\?[0-9a-f]{12})" alt="" height="32">/.exec(page.body)![1]!;
    const css = /<link rel="stylesheet" href="(\/assets\/brand\.css\?[0-9a-f]{12})">/.exec(page.body)![1]!;
    expect(page.body.indexOf(css)).toBeGreaterThan(page.body.indexOf('/assets/twofold.css'));
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("img-src 'self' data:");
    expect(csp).not.toContain('unsafe-inline');

    const stylesheet = await fetch(new URL(css, branded.issuer));
    expect(stylesheet.status).toBe(200);
    expect(stylesheet.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const text = await stylesheet.text();
    expect(text).toContain(':root { --accent: #1f6feb; --on-accent: #ffffff; }');
    // #1f6feb reads at 3.52:1 on the dark card: its nearest lighter shade that reaches 4.5:1, with black on it.
    expect(text).toContain('@media (prefers-color-scheme: dark) { :root { --accent: #4185ee; --on-accent: #000000; } }');

    const image = await fetch(new URL(logo, branded.issuer));
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/svg+xml');
    expect(image.headers.get('content-security-policy')).toBe('sandbox');
    expect(await image.text()).toBe(LOGO);
    // Served under its own name only: the logo's path is not an asset route.
    expect((await fetch(new URL('/assets/logo.svg', branded.issuer))).status).toBe(404);

    // Pages Twofold renders outside a sign-in carry the brand too (the expired sign-in).
    const expired = await new UserAgent(branded.issuer).request('/interaction/not-a-real-one');
    expect(expired.body).toContain('<span class="brand">Example ID</span>');
    expect(expired.body).toContain(css);
  });

  test('authenticator apps get the brand name as the issuer: the QR code holds otpauth://totp/Example%20ID:alice?issuer=Example%20ID…', async () => {
    const { agent, page } = await enrolmentPage(branded, brandedRp, 'alice');
    expect(page.body).toContain('<title>Set up two-step verification · Example ID</title>');
    const { qr, key } = totpEnrolment(page);
    const uri = `otpauth://totp/Example%20ID:alice?issuer=Example%20ID&secret=${key}&algorithm=SHA1&digits=6&period=30`;
    expect(qr).toBe(await QRCode.toDataURL(uri, QR_OPTIONS));
    // What it would hold with the issuer's host:port: another image, so the comparison above can tell them apart.
    const host = new URL(branded.issuer).host;
    expect(qr).not.toBe(await QRCode.toDataURL(uri.replaceAll('Example%20ID', encodeURIComponent(host)), QR_OPTIONS));

    // Passkey and security key prompts name it too (the WebAuthn relying party).
    const uid = /\/interaction\/([^/"?]+)\//.exec(page.body)![1]!;
    const key2 = await agent.follow(`/interaction/${uid}?factor=webauthn`);
    expect(optionsInPage(key2.body, 'register').rp).toEqual({ name: 'Example ID', id: 'localhost' });
  });

  test('without BRAND_NAME the label says Twofold, not localhost:port, and no brand stylesheet is linked or served', async () => {
    const { agent, page } = await enrolmentPage(plain, plainRp, 'alice');
    expect(page.body).toContain('<span class="brand">Twofold</span>');
    expect(page.body).not.toContain('brand.css');
    expect(page.body).not.toContain('brand-logo');
    const { qr, key } = totpEnrolment(page);
    expect(qr).toBe(await QRCode.toDataURL(`otpauth://totp/Twofold:alice?issuer=Twofold&secret=${key}&algorithm=SHA1&digits=6&period=30`, QR_OPTIONS));
    const uid = /\/interaction\/([^/"?]+)\//.exec(page.body)![1]!;
    expect(optionsInPage((await agent.follow(`/interaction/${uid}?factor=webauthn`)).body, 'register').rp).toEqual({ name: 'Twofold', id: 'localhost' });
    expect((await fetch(new URL('/assets/brand.css', plain.issuer))).status).toBe(404);
    expect((await fetch(new URL('/assets/brand-logo.svg', plain.issuer))).status).toBe(404);
  });

  (hasChromium ? test : test.skip)(
    'in Chromium the brand colours apply under the CSP, the logo loads unstretched, and axe finds every text at AA, light and dark',
    async () => {
      const browser = await launchBrowser();
      try {
        // First as served (CSP enforced): nothing is blocked, and the colours and the logo are there.
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto((await brandedRp.authorizationUrl()).url);
        await page.waitForFunction(() => (document.querySelector('img.brand-logo') as HTMLImageElement | null)?.complete === true);
        const look = () =>
          page.evaluate(() => {
            const button = getComputedStyle(document.querySelector('button.primary')!);
            const logo = document.querySelector('img.brand-logo') as HTMLImageElement;
            return {
              brand: getComputedStyle(document.querySelector('.brand')!).color,
              button: [button.backgroundColor, button.color],
              logo: [logo.naturalWidth, logo.getBoundingClientRect().width, logo.getBoundingClientRect().height],
            };
          });
        expect(await look()).toEqual({ brand: 'rgb(31, 111, 235)', button: ['rgb(31, 111, 235)', 'rgb(255, 255, 255)'], logo: [64, 64, 32] });
        await page.emulateMedia({ colorScheme: 'dark' });
        expect(await look()).toEqual({ brand: 'rgb(65, 133, 238)', button: ['rgb(65, 133, 238)', 'rgb(0, 0, 0)'], logo: [64, 64, 32] });
        expect(errors).toEqual([]);
        await page.close();

        // Then axe (its script needs the CSP bypassed) on the sign-in and the TOTP enrolment pages.
        const context = await browser.newContext({ bypassCSP: true });
        const audited = await context.newPage();
        const violations: string[] = [];
        const audit = async (name: string) => {
          await audited.evaluate(AXE_SOURCE);
          for (const colorScheme of ['light', 'dark'] as const) {
            await audited.emulateMedia({ colorScheme });
            const found = await audited.evaluate(async () => {
              const axe = (
                window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown[] }> }> }> } }
              ).axe;
              const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
              return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${JSON.stringify(n.target)}`));
            });
            violations.push(...found.map((f) => `${name} ${colorScheme}: ${f}`));
          }
        };
        await audited.goto((await brandedRp.authorizationUrl()).url);
        await audit('sign-in');
        await audited.getByLabel('Username or email').fill('bob');
        await audited.getByLabel('Password').fill(PASSWORD);
        await audited.getByRole('button', { name: 'Sign in', exact: true }).click();
        await audited.getByLabel('Code from the app').waitFor();
        // The link-like texts in the accent colour are on this page: "Can't scan?", "Use … instead".
        await audit('enrol-totp');
        await context.close();
        expect(violations).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    90_000,
  );
});

describe('a brand with a theme', () => {
  let database: TestDatabase;
  let server: TestServer;
  let rp: RelyingParty;
  const THEME_LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n';

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    const theme = themeDir({ 'logo.svg': THEME_LOGO, 'theme.css': ':root { --accent: #0b6e4f; }\n' });
    server = await startTestServer(database, { THEME_DIR: theme, BRAND_NAME: 'Example ID', BRAND_LOGO: logoFile, BRAND_COLOR: '#1f6feb' });
    const { db, sealer } = server.opened.services;
    const app = await createClient(db, sealer, { name: 'Web Shop', redirectUris: [REDIRECT], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
  });

  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  test("the theme's logo replaces BRAND_LOGO (then not served), and theme.css comes after the brand's stylesheet", async () => {
    const page = await new UserAgent(server.issuer).follow((await rp.authorizationUrl()).url);
    expect(page.body).toContain('<span class="brand">Example ID</span>');
    const logo = /<img class="brand-logo" src="(\/assets\/theme-logo\.svg\?[0-9a-f]{12})"/.exec(page.body)![1]!;
    expect(await (await fetch(new URL(logo, server.issuer))).text()).toBe(THEME_LOGO);
    expect(page.body).not.toContain('brand-logo.svg');
    expect((await fetch(new URL('/assets/brand-logo.svg', server.issuer))).status).toBe(404);
    const order = ['/assets/twofold.css', '/assets/brand.css?', '/assets/theme.css?'].map((href) => page.body.indexOf(href));
    expect(order.every((at) => at > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect((await fetch(new URL('/assets/brand.css', server.issuer))).status).toBe(200);
  });
});

describe('a brand that cannot be shown stops the start with one line', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('pglite');
  });
  afterAll(async () => {
    await database?.close();
  });

  test('a colour below AA: the measured ratio and the shade that would pass', async () => {
    const start = startTestServer(database, { BRAND_COLOR: '#777777' });
    await expect(start).rejects.toBeInstanceOf(ConfigError);
    await expect(start).rejects.toThrow(
      "Invalid configuration: BRAND_COLOR: #777777 has a contrast of 4.48:1 on the light scheme's card (#ffffff), where links and buttons are written in it; WCAG AA asks for at least 4.5:1; the nearest darker shade that passes is #767676",
    );
  });

  test('a missing logo, named', async () => {
    const missing = path.join(tmp, 'no-such-logo.png');
    const start = startTestServer(database, { BRAND_LOGO: missing });
    await expect(start).rejects.toBeInstanceOf(ConfigError);
    await expect(start).rejects.toThrow(`Invalid configuration: BRAND_LOGO: cannot read ${missing} (ENOENT)`);
  });

  test('npm start: exit 2, one line on stderr', async () => {
    const { code, stderr } = await refusedStart({ BRAND_COLOR: '#ffd400' });
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^twofold: Invalid configuration: BRAND_COLOR: #ffd400 has a contrast of 1\.\d\d:1 on the light scheme's card \(#ffffff\), .*; the nearest darker shade that passes is #[0-9a-f]{6}\n$/,
    );
  }, 60_000);
});
