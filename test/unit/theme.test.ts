/**
 * THEME_DIR's loader and the themed views: what a theme may hold, what stops
 * the start (naming the file), and that overrides render with the built-in
 * views' data, helpers and escaping. Over HTTP: test/e2e/theme.test.ts.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUILT_IN_FACTORS } from '../../factors/registry.ts';
import { Views, VIEWS_DIR, pageNames, themedViews } from '../../interactions/render.ts';
import { loadTheme, ThemeError } from '../../interactions/theme.ts';
import { removeThemeDirs, themeDir } from '../helpers/theme-dir.ts';

const FACTOR_VIEWS = Object.fromEntries(BUILT_IN_FACTORS.map((f) => [f.id, f.viewsDir]));
afterAll(removeThemeDirs);

function load(files: Record<string, string>) {
  return loadTheme(themeDir(files), pageNames(), FACTOR_VIEWS);
}

/** The error a theme stops the start with. */
function refusal(files: Record<string, string>): string {
  try {
    load(files);
  } catch (err) {
    expect(err).toBeInstanceOf(ThemeError);
    return (err as Error).message;
  }
  throw new Error('the theme was accepted');
}

function withFactorPartials(views: Views): Views {
  for (const f of BUILT_IN_FACTORS) views.addPartials(f.viewsDir, `${f.id}/`);
  return views;
}

const LOGIN_DATA = {
  title: 'Sign in',
  uid: 'uid-1',
  clientName: 'Web <App>',
  login: '"><script>alert(1)</script>',
  error: 'Wrong <b>password</b>',
  firstFactors: [{ id: 'passkey', label: 'Passkey', partial: 'passkey/login', view: { options: '{"challenge":"x"}' } }],
};
const SECOND_FACTOR_DATA = {
  title: 'Two-step verification',
  uid: 'uid-2',
  clientName: 'Web',
  factorId: 'totp',
  factorLabel: 'Authenticator app',
  partial: 'totp/challenge',
  view: { digits: 6 },
  trustDays: 30,
  others: [{ id: 'webauthn', label: 'Security key' }],
  recovery: [{ id: 'backup-codes', label: 'backup codes' }],
};

describe('theme folder', () => {
  test('copies of every built-in page and factor view are accepted and render exactly as the built-in ones', () => {
    const files: Record<string, string> = {};
    for (const page of pageNames()) files[`${page}.hbs`] = fs.readFileSync(path.join(VIEWS_DIR, `${page}.hbs`), 'utf8');
    for (const f of BUILT_IN_FACTORS) {
      for (const view of fs.readdirSync(f.viewsDir).filter((v) => v.endsWith('.hbs')))
        files[`factors/${f.id}/${view}`] = fs.readFileSync(path.join(f.viewsDir, view), 'utf8');
    }
    const { views, theme } = themedViews(themeDir(files), FACTOR_VIEWS);
    expect([...theme.views.keys()].sort()).toEqual(pageNames().sort());
    expect(theme.partials.size).toBeGreaterThanOrEqual(BUILT_IN_FACTORS.length * 2);
    const builtIn = withFactorPartials(new Views());
    withFactorPartials(views);
    for (const [name, data] of [
      ['login', LOGIN_DATA],
      ['second-factor', SECOND_FACTOR_DATA],
      ['error', { title: 'Oops', message: 'm', uid: 'u' }],
    ] as const) {
      expect(views.render(name, data)).toBe(builtIn.render(name, data));
    }
  });

  test('an overridden layout and view replace the built-in ones and get the same data', () => {
    const { views } = themedViews(
      themeDir({
        'layout.hbs': '<html><title>{{title}}</title><h1 data-theme>{{clientName}}</h1>{{{body}}}</html>',
        'login.hbs':
          '<form action="/interaction/{{uid}}/login"><input name="login" value="{{login}}"></form><p>{{error}}</p><a href="/interaction/{{uid}}/abort">Cancel</a>',
      }),
      FACTOR_VIEWS,
    );
    const html = views.render('login', LOGIN_DATA);
    expect(html).toBe(
      '<html><title>Sign in</title><h1 data-theme>Web &lt;App&gt;</h1><form action="/interaction/uid-1/login"><input name="login" value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"></form><p>Wrong &lt;b&gt;password&lt;/b&gt;</p><a href="/interaction/uid-1/abort">Cancel</a></html>',
    );
    // Pages the theme leaves out keep the built-in view, inside the theme's layout.
    expect(views.render('error', { title: 'Oops', message: '<i>m</i>' })).toContain(
      '<h1 data-theme></h1><p class="alert" role="alert">&lt;i&gt;m&lt;/i&gt;</p>',
    );
  });

  test('{{{ }}} in an override outputs raw HTML: the operator chose it', () => {
    const { views } = themedViews(themeDir({ 'error.hbs': '<p>{{{message}}}</p>' }), FACTOR_VIEWS);
    expect(views.render('error', { title: 't', message: '<b>raw</b>' })).toContain('<p><b>raw</b></p>');
  });

  test('a factor view in factors/<id>/ replaces that partial wherever it is used', () => {
    const { views } = themedViews(
      themeDir({ 'factors/totp/challenge.hbs': '<input name="code" data-theme-totp="{{digits}}" value="{{@root.clientName}}">' }),
      FACTOR_VIEWS,
    );
    withFactorPartials(views);
    const html = views.render('second-factor', { ...SECOND_FACTOR_DATA, clientName: '<Web>' });
    expect(html).toContain('<input name="code" data-theme-totp="6" value="&lt;Web&gt;">');
    expect(html).not.toContain('from your authenticator app');
    // Other factors' views are the built-in ones.
    expect(views.render('login', LOGIN_DATA)).toContain('Sign in with a passkey');
  });

  test('theme.css and a logo are served by name and linked with their content hash; without them nothing is linked', () => {
    const dir = themeDir({ 'theme.css': 'body { color: red }', 'logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>' });
    const { views, theme } = themedViews(dir, FACTOR_VIEWS);
    expect(theme.assets).toEqual({ 'theme.css': path.join(dir, 'theme.css'), 'theme-logo.svg': path.join(dir, 'logo.svg') });
    expect(theme.links.stylesheet).toMatch(/^\/assets\/theme\.css\?[0-9a-f]{12}$/);
    const html = views.render('error', { title: 't', message: 'm' });
    expect(html.indexOf(`<link rel="stylesheet" href="${theme.links.stylesheet}">`)).toBeGreaterThan(
      html.indexOf('<link rel="stylesheet" href="/assets/twofold.css">'),
    );
    expect(html).toContain(`<img class="brand-logo" src="${theme.links.logo}" alt="" height="32">`);

    fs.writeFileSync(path.join(dir, 'theme.css'), 'body { color: blue }');
    expect(loadTheme(dir, pageNames(), FACTOR_VIEWS).links.stylesheet).not.toBe(theme.links.stylesheet);

    const plain = themedViews(themeDir({ 'login.hbs': '<p>{{uid}}</p>' }), FACTOR_VIEWS).views.render('error', { title: 't', message: 'm' });
    expect(plain).not.toContain('theme.css');
    expect(plain).not.toContain('brand-logo');
    expect(new Views().render('error', { title: 't', message: 'm' })).not.toContain('theme');
  });

  test('hidden files, other folders and files of other kinds are ignored', () => {
    const theme = load({
      'README.md': '# notes',
      '.login.hbs.swp': 'x',
      'src/anything.hbs': '{{#if}}',
      '..data/login.hbs': '{{#if}}',
      'factors/totp/NOTES.txt': 'x',
    });
    expect(theme.views.size + theme.partials.size + Object.keys(theme.assets).length).toBe(0);
  });
});

describe('a theme that would break a page stops the start, naming the file', () => {
  test('a missing folder', () => {
    const dir = path.join(os.tmpdir(), 'twofold-theme-that-does-not-exist');
    expect(() => loadTheme(dir, pageNames(), FACTOR_VIEWS)).toThrow(`${dir} does not exist`);
    const file = path.join(themeDir({ 'a.txt': '' }), 'a.txt');
    expect(() => loadTheme(file, pageNames(), FACTOR_VIEWS)).toThrow(`${file} is not a folder`);
  });

  test.each([
    [
      'a page that does not exist',
      { 'signin.hbs': '<p></p>' },
      /signin\.hbs matches no page or theme file \(expected layout\.hbs, one of .*login\.hbs.*, factors\/<factor id>\/<view>\.hbs, theme\.css, logo\.svg or logo\.png\)$/,
    ],
    ['a stylesheet under another name', { 'style.css': 'body {}' }, /style\.css matches no page or theme file/],
    [
      'an unknown factor',
      { 'factors/nope/challenge.hbs': '<p></p>' },
      /factors\/nope matches no factor \(known: totp, webauthn, passkey, backup-codes, email-code, sms-code\)$/,
    ],
    [
      'a view a factor does not have',
      { 'factors/totp/login.hbs': '<p></p>' },
      /factors\/totp\/login\.hbs matches no view of factor totp \(its views: challenge\.hbs, enroll\.hbs\)$/,
    ],
    ['two logos', { 'logo.png': 'png', 'logo.svg': '<svg/>' }, /logo\.svg: the theme has both logo\.svg and logo\.png; keep one$/],
    ['an unclosed block', { 'login.hbs': '<p>{{#if error}}{{error}}</p>' }, /login\.hbs: Parse error on line 1: Expecting .*got 'EOF'$/],
    ['mismatched blocks', { 'enroll.hbs': '{{#if a}}x{{/unless}}' }, /enroll\.hbs: if doesn't match unless - 1:3$/],
    [
      'an unknown helper',
      { 'consent.hbs': '<p>{{uppercase clientName}}</p>' },
      /consent\.hbs: You specified knownHelpersOnly, but used the unknown helper uppercase - 1:3$/,
    ],
    ['a broken factor view', { 'factors/totp/challenge.hbs': '{{#each}}' }, /factors\/totp\/challenge\.hbs: Parse error on line 1/],
    [
      'a layout that escapes the page',
      { 'layout.hbs': '<main>{{body}}</main>' },
      /layout\.hbs: must output \{\{\{body\}\}\} \(three braces: it is HTML Twofold made\)$/,
    ],
    ['a logout page without its form', { 'logout.hbs': '<button form="op.logoutForm">Sign out</button>' }, /logout\.hbs: must output \{\{\{form\}\}\}/],
  ])('%s', (_name, files, message) => {
    const text = refusal(files);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  test('{{{body}}} may sit inside a block of the layout', () => {
    expect(
      load({ 'layout.hbs': '<html>{{#if title}}<h1>{{title}}</h1>{{/if}}<main>{{#with this}}{{{body}}}{{/with}}</main></html>' }).views.has('layout'),
    ).toBe(true);
  });
});
