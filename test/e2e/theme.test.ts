/**
 * THEME_DIR over HTTP: a themed provider's sign-in pages use the theme's
 * layout, login view and factor view, link and serve theme.css and the logo
 * under the same CSP, still escape user input and still sign in; a provider
 * without a theme in the same process is untouched; the theme's messages add a
 * language (its keys in it, English for the rest); a bad theme or a message
 * with an unknown key stops the start with one line naming the file
 * (startServer, and `npm start` itself).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { refusedStart } from '../helpers/provider-process.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { StartupError } from '../../src/db/storage.ts';
import { removeThemeDirs, themeDir } from '../helpers/theme-dir.ts';

const REDIRECT = 'http://app.example.test/callback';
const CSS = 'body[data-theme="example"] { background-color: rgb(1, 2, 3) }\n';
const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n';

const LAYOUT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}} · Example ID</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/twofold.css">{{#if theme.stylesheet}}<link rel="stylesheet" href="{{theme.stylesheet}}">{{/if}}
<script src="/assets/twofold.js" defer></script></head>
<body data-theme="example"><header>{{#if theme.logo}}<img src="{{theme.logo}}" alt="Example">{{/if}}{{#if clientName}}<span class="for">for {{clientName}}</span>{{/if}}</header>
<h1>{{title}}</h1>{{{body}}}</body></html>
`;
const LOGIN = `<form method="post" action="/interaction/{{uid}}/login" class="example-login">
  {{#if error}}<p class="alert">{{error}}</p>{{/if}}
  <input name="login" value="{{login}}" data-hint="{{login}}">
  <input name="password" type="password">
  <button type="submit">Continue</button>
</form>
{{#each firstFactors}}{{> (lookup . "partial") view}}{{/each}}
<a class="example-cancel" href="/interaction/{{uid}}/abort">Back to {{clientName}}</a>
`;
const PASSKEY_LOGIN = '<p class="example-passkey" data-uid="{{@root.uid}}">Passkey sign-in is themed</p>\n';

if (!hasChromium) warnChromiumMissing();

afterAll(removeThemeDirs);

for (const kind of DIALECTS) {
  describe(`themed sign-in pages on ${kind}`, () => {
    let database: TestDatabase;
    let plainDatabase: TestDatabase;
    let themed: TestServer;
    let plain: TestServer;
    let themedRp: RelyingParty;
    let plainRp: RelyingParty;

    beforeAll(async () => {
      [database, plainDatabase] = await Promise.all([createTestDatabase(kind), createTestDatabase(kind)]);
      const messages = JSON.stringify({ 'email.code.subject': 'Your {issuer} code, from Example' });
      const theme = themeDir({
        'layout.hbs': LAYOUT,
        'login.hbs': LOGIN,
        'factors/passkey/login.hbs': PASSKEY_LOGIN,
        'theme.css': CSS,
        'logo.svg': LOGO,
        'messages/en.json': messages,
      });
      // Both at once, in one process: each app renders with its own views.
      [themed, plain] = await Promise.all([startTestServer(database, { THEME_DIR: theme }), startTestServer(plainDatabase)]);
      for (const [server, set] of [
        [themed, (rp: RelyingParty) => (themedRp = rp)],
        [plain, (rp: RelyingParty) => (plainRp = rp)],
      ] as const) {
        const { db, hasher, sealer } = server.opened.services;
        await createAccount(db, hasher, { username: 'alice', password: 'correct horse battery' });
        const app = await createClient(db, sealer, { name: 'Web <Shop>', redirectUris: [REDIRECT], firstParty: true });
        set(await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT));
      }
    });

    afterAll(async () => {
      await Promise.all([themed?.close(), plain?.close()]);
      await Promise.all([database?.close(), plainDatabase?.close()]);
    });

    test("the sign-in page uses the theme's layout, login view and passkey view, with the client name and cancel link, escaped", async () => {
      const agent = new UserAgent(themed.issuer);
      const hint = '"><script>alert(1)</script>';
      const page = await agent.follow((await themedRp.authorizationUrl({ login_hint: hint })).url);
      expect(page.status).toBe(200);
      const uid = /\/interaction\/([^/]+)\/login/.exec(page.body)![1]!;
      expect(page.body).toContain('<title>Sign in · Example ID</title>');
      expect(page.body).toContain('<body data-theme="example">');
      expect(page.body).toContain('<span class="for">for Web &lt;Shop&gt;</span>');
      expect(page.body).toContain(`<form method="post" action="/interaction/${uid}/login" class="example-login">`);
      expect(page.body).toContain(`<a class="example-cancel" href="/interaction/${uid}/abort">Back to Web &lt;Shop&gt;</a>`);
      expect(page.body).toContain(`<p class="example-passkey" data-uid="${uid}">Passkey sign-in is themed</p>`);
      expect(page.body).not.toContain('Sign in with a passkey');
      // The login hint is the user's (any app can put one in the URL): escaped in the theme's view too.
      expect(page.body).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
      expect(page.body).not.toContain('<script>alert(1)</script>');
      expect(page.headers.get('content-security-policy')).toContain("style-src 'self'");
      expect(page.headers.get('content-security-policy')).not.toContain('unsafe-inline');
      // A wrong password: the theme's view again, with the error.
      const wrong = await agent.submit(formAction(page.body), { login: 'alice', password: 'wrong password' });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('<body data-theme="example">');
      expect(wrong.body).toContain('<p class="alert">Incorrect username or password.</p>');
      expect(wrong.body).toContain('data-hint="alice"');
    });

    test("the theme's messages are the provider's: the messages carrying codes speak them as the pages do", () => {
      // One catalogue per provider, shared by its pages and its messaging (src/bootstrap.ts, src/app.ts).
      expect(themed.opened.services.catalogue.text('en', 'email.code.subject', { issuer: 'Shop' })).toBe('Your Shop code, from Example');
      expect(plain.opened.services.catalogue.text('en', 'email.code.subject', { issuer: 'Shop' })).toBe('Your sign-in code for Shop');
    });

    test("the theme's login form signs in", async () => {
      const agent = new UserAgent(themed.issuer);
      const auth = await themedRp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const result = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      expect(result.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      expect((await themedRp.redeem(result.location!, auth)).claims()!.amr).toEqual(['pwd']);
    });

    test('theme.css and the logo are linked after twofold.css and served with their content types', async () => {
      const page = await new UserAgent(themed.issuer).follow((await themedRp.authorizationUrl()).url);
      const css = /<link rel="stylesheet" href="(\/assets\/theme\.css\?[0-9a-f]+)">/.exec(page.body)![1]!;
      expect(page.body.indexOf(css)).toBeGreaterThan(page.body.indexOf('/assets/twofold.css'));
      const served = await fetch(new URL(css, themed.issuer));
      expect(served.status).toBe(200);
      expect(served.headers.get('content-type')).toBe('text/css; charset=utf-8');
      expect(await served.text()).toBe(CSS);
      const logo = /<img src="(\/assets\/theme-logo\.svg\?[0-9a-f]+)" alt="Example">/.exec(page.body)![1]!;
      const image = await fetch(new URL(logo, themed.issuer));
      expect(image.headers.get('content-type')).toBe('image/svg+xml');
      expect(image.headers.get('content-security-policy')).toBe('sandbox');
      expect(await image.text()).toBe(LOGO);
      // Only the named files: the theme's templates are not assets.
      expect((await fetch(new URL('/assets/login.hbs', themed.issuer))).status).toBe(404);
      expect((await fetch(new URL('/assets/logo.svg', themed.issuer))).status).toBe(404);
    });

    test('a provider without a theme, running in the same process, keeps the built-in pages and serves no theme.css', async () => {
      const page = await new UserAgent(plain.issuer).follow((await plainRp.authorizationUrl()).url);
      expect(page.status).toBe(200);
      expect(page.body).toContain('<span class="brand">Twofold</span>');
      expect(page.body).toContain('Sign in with a passkey');
      expect(page.body).not.toContain('data-theme');
      expect(page.body).not.toContain('theme.css');
      expect(page.body).not.toContain('theme-logo');
      expect((await fetch(new URL('/assets/theme.css', plain.issuer))).status).toBe(404);
      expect((await fetch(new URL('/assets/twofold.css', plain.issuer))).status).toBe(200);
    });

    // Once (the database plays no part): what only a browser can tell, that the CSP lets the theme's files apply.
    (hasChromium && kind === DIALECTS[0] ? test : test.skip)(
      'in Chromium, theme.css applies and the logo loads under the CSP, with no console error',
      async () => {
        const browser = await launchBrowser();
        try {
          const page = await browser.newPage();
          const errors: string[] = [];
          page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
          page.on('pageerror', (e) => errors.push(e.message));
          await page.goto((await themedRp.authorizationUrl()).url);
          await page.waitForSelector('form.example-login');
          await page.waitForFunction(() => (document.querySelector('header img') as HTMLImageElement | null)?.complete === true);
          const seen = await page.evaluate(() => ({
            background: getComputedStyle(document.body).backgroundColor,
            logoWidth: (document.querySelector('header img') as HTMLImageElement).naturalWidth,
          }));
          expect(seen).toEqual({ background: 'rgb(1, 2, 3)', logoWidth: 10 });
          expect(errors).toEqual([]);
        } finally {
          await browser.close();
        }
      },
      60_000,
    );

    test("a built-in view the theme leaves out (the expired sign-in page, the provider's error page) is rendered in the theme's layout", async () => {
      const page = await new UserAgent(themed.issuer).request('/interaction/not-a-real-one');
      expect(page.status).toBe(400);
      expect(page.body).toContain('<body data-theme="example">');
      expect(page.body).toContain('This sign-in has expired');
      // And the pages node-oidc-provider renders through Twofold's views (an unknown app at /auth).
      const unknownApp = await new UserAgent(themed.issuer).request(
        `/auth?client_id=nope&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}`,
      );
      expect(unknownApp.status).toBe(400);
      expect(unknownApp.body).toContain('<body data-theme="example">');
      expect(unknownApp.body).toContain('The app is not registered with Twofold.');
    });
  });
}

describe("a theme's messages add a language", () => {
  let database: TestDatabase;
  let server: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    const theme = themeDir({
      'messages/fr.json': JSON.stringify({
        'login.title': 'Se connecter',
        'login.username': "Nom d'utilisateur ou adresse e-mail",
        'common.cancel': '{app, select, none {Annuler} other {Annuler et revenir à {app}}}',
      }),
    });
    server = await startTestServer(database, { THEME_DIR: theme });
    const { db, sealer } = server.opened.services;
    const app = await createClient(db, sealer, { name: 'Boutique', redirectUris: [REDIRECT], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
  });

  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  test('ui_locales=fr: French for the keys the theme gives, English for the rest; discovery lists fr', async () => {
    const page = await new UserAgent(server.issuer).follow((await rp.authorizationUrl({ ui_locales: 'fr' })).url);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<html lang="fr">');
    expect(page.body).toContain('<title>Se connecter · Twofold</title>');
    expect(page.body).toContain('<label for="login">Nom d&#39;utilisateur ou adresse e-mail</label>');
    expect(page.body).toContain('Annuler et revenir à Boutique');
    expect(page.body).toContain('<label for="password">Password</label>');
    expect(page.body).toContain('to continue to <strong>Boutique</strong>');
    // Without ui_locales the default language, untouched by the theme.
    const english = await new UserAgent(server.issuer).follow((await rp.authorizationUrl()).url);
    expect(english.body).toContain('<title>Sign in · Twofold</title>');
    const metadata = (await (await fetch(new URL('/.well-known/openid-configuration', server.issuer))).json()) as { ui_locales_supported: string[] };
    expect(metadata.ui_locales_supported).toEqual(['en', 'de', 'fr']);
  });
});

describe('a bad theme stops the start with one line naming the file', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('pglite');
  });
  afterAll(async () => {
    await database?.close();
  });

  test.each([
    [
      'a missing folder',
      () => path.join(os.tmpdir(), `twofold-no-theme-${crypto.randomBytes(4).toString('hex')}`),
      (dir: string) => `THEME_DIR: ${dir} does not exist`,
    ],
    [
      'an unknown file name',
      () => themeDir({ 'signin.hbs': '<p></p>' }),
      (dir: string) => `THEME_DIR: ${path.join(dir, 'signin.hbs')} matches no page or theme file`,
    ],
    [
      'a template that does not compile',
      () => themeDir({ 'login.hbs': '{{#if error}}<p>{{error}}</p>' }),
      (dir: string) => `THEME_DIR: ${path.join(dir, 'login.hbs')}: Parse error on line 1:`,
    ],
    [
      'a message with a key Twofold does not have',
      () => themeDir({ 'messages/fr.json': JSON.stringify({ 'login.title': 'Se connecter', 'login.titel': 'Connexion' }) }),
      (dir: string) => `${path.join(dir, 'messages/fr.json')}: login.titel is not a message key`,
    ],
  ])('%s', async (_name, make, message) => {
    const dir = make();
    const start = startTestServer(database, { THEME_DIR: dir });
    await expect(start).rejects.toThrow(message(dir));
    await expect(start).rejects.toBeInstanceOf(StartupError);
  });

  test('npm start: exit 2, one line on stderr', async () => {
    const dir = themeDir({ 'factors/totp/challenge.hbs': '<p>{{#each}}</p>' });
    const { code, stderr } = await refusedStart({ THEME_DIR: dir });
    expect(code).toBe(2);
    expect(stderr).toMatch(
      new RegExp(
        `^twofold: THEME_DIR: ${path.join(dir, 'factors/totp/challenge.hbs').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: Parse error on line 1: Expecting .*\n$`,
      ),
    );
  }, 60_000);
});
