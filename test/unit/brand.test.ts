/**
 * The brand settings: WCAG contrast against known pairs, the checks that stop
 * the start (a colour below AA, with the measured ratio and a shade that
 * passes; a logo that is missing, unreadable or not the image its name says;
 * two different names), what the pages get (name, logo, the colour
 * stylesheet) and the theme's precedence. Over HTTP: test/e2e/brand.test.ts.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { CARD, MAX_LOGO_BYTES } from '../../src/brand/brand.ts';
import { AA_TEXT, contrast, formatRatio, luminance, nearestPassing, parseHex, textOn, type Hex } from '../../src/brand/contrast.ts';
import { brandPages, brandStylesheet } from '../../interactions/brand.ts';
import { ASSETS_DIR, Views, themedViews } from '../../interactions/render.ts';
import { BUILT_IN_FACTORS } from '../../factors/registry.ts';
import { removeThemeDirs, themeDir } from '../helpers/theme-dir.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-brand-'));
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  removeThemeDirs();
});

const SVG = '<?xml version="1.0"?>\n<!-- Example -->\n<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>\n';
/** A 1×1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

function file(name: string, content: string | Buffer): string {
  const full = path.join(tmp, name);
  fs.writeFileSync(full, content);
  return full;
}

/** The one line a bad setting stops the start with. */
function refusal(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error(`accepted: ${JSON.stringify(env)}`);
}

describe('contrast (WCAG 2)', () => {
  test.each([
    ['#777777', '#ffffff', 4.48, false],
    ['#767676', '#ffffff', 4.54, true],
    ['#000000', '#ffffff', 21, true],
    ['#ffffff', '#ffffff', 1, false],
    ['#0000ff', '#ffffff', 8.59, true],
    ['#ff0000', '#ffffff', 4.0, false],
    ['#595959', '#ffffff', 7.0, true],
  ] as const)('%s on %s is %s:1', (fg, bg, ratio, passes) => {
    expect(contrast(fg, bg)).toBeCloseTo(ratio, 2);
    expect(contrast(bg, fg)).toBe(contrast(fg, bg));
    expect(contrast(fg, bg) >= AA_TEXT).toBe(passes);
  });

  test('relative luminance runs from black to white through the sRGB curve', () => {
    expect(luminance('#000000')).toBe(0);
    expect(luminance('#ffffff')).toBeCloseTo(1, 10);
    // Below the curve's knee a channel is linear: 10/255/12.92.
    expect(luminance('#0a0a0a')).toBeCloseTo(10 / 255 / 12.92, 10);
    expect(luminance('#808080')).toBeCloseTo(0.2159, 4);
  });

  test('a ratio reads to two decimals, never rounded across the AA line', () => {
    expect(formatRatio(contrast('#777777', '#ffffff'))).toBe('4.48:1');
    expect(formatRatio(21)).toBe('21.00:1');
    expect(formatRatio(4.4996)).toBe('4.499:1');
    expect(formatRatio(4.5)).toBe('4.50:1');
  });

  test('text on a fill is black or white, whichever reads better, and always reaches AA', () => {
    expect(textOn('#1f6feb')).toBe('#ffffff');
    expect(textOn('#ffd400')).toBe('#000000');
    expect(textOn('#777777')).toBe('#000000');
    // Every grey, and a sweep of hues: the better of the two is at least √21:1.
    for (let v = 0; v < 256; v += 5) {
      const grey = `#${v.toString(16).padStart(2, '0').repeat(3)}` as Hex;
      expect(contrast(grey, textOn(grey))).toBeGreaterThanOrEqual(Math.sqrt(21) - 1e-9);
    }
    for (let n = 0; n < 0xffffff; n += 0x0f0f0f) {
      const color = `#${n.toString(16).padStart(6, '0')}` as Hex;
      expect(contrast(color, textOn(color))).toBeGreaterThanOrEqual(AA_TEXT);
    }
  });

  test('the nearest passing shade: darker on a light card, lighter on a dark one, just past 4.5:1', () => {
    expect(nearestPassing('#777777', '#ffffff')).toBe('#767676');
    expect(nearestPassing('#3b5bdb', '#ffffff')).toBe('#3b5bdb');
    const light = nearestPassing('#ffd400', '#ffffff')!;
    expect(contrast(light, '#ffffff')).toBeGreaterThanOrEqual(AA_TEXT);
    expect(contrast(light, '#ffffff')).toBeLessThan(4.6);
    expect(luminance(light)).toBeLessThan(luminance('#ffd400'));
    const dark = nearestPassing('#1f6feb', CARD.dark)!;
    expect(dark).toBe('#4185ee');
    expect(contrast(dark, CARD.dark)).toBeGreaterThanOrEqual(AA_TEXT);
    expect(contrast(dark, CARD.dark)).toBeLessThan(4.6);
    // A ratio no shade that way reaches (white on #777777 is 4.48:1).
    expect(nearestPassing('#777777', '#777777', 7)).toBeUndefined();
  });

  test('colours: #rrggbb or #rgb, any case, the # optional', () => {
    expect(parseHex('#1F6FEB')).toBe('#1f6feb');
    expect(parseHex('1f6feb')).toBe('#1f6feb');
    expect(parseHex('#abc')).toBe('#aabbcc');
    expect(parseHex(' #abc ')).toBe('#aabbcc');
    for (const bad of ['', '#', '#12', '#1234', '#12345g', 'blue', 'rgb(1,2,3)', '#1f6feb80']) expect(parseHex(bad)).toBeUndefined();
  });

  test("the cards checked against are twofold.css's --card, light and dark", () => {
    const css = fs.readFileSync(path.join(ASSETS_DIR, 'twofold.css'), 'utf8');
    const [light, dark] = [...css.matchAll(/--card:\s*(#[0-9a-f]+)/gi)].map((m) => parseHex(m[1]!));
    expect({ light, dark }).toEqual(CARD);
    // And the built-in accents pass the same checks the brand colours must.
    const [accentLight, accentDark] = [...css.matchAll(/--accent:\s*(#[0-9a-f]+)/gi)].map((m) => parseHex(m[1]!)!);
    expect(contrast(accentLight!, CARD.light)).toBeGreaterThanOrEqual(AA_TEXT);
    expect(contrast(accentDark!, CARD.dark)).toBeGreaterThanOrEqual(AA_TEXT);
  });
});

describe('brand settings', () => {
  test('unset: the name Twofold, no logo, the built-in colours', () => {
    expect(loadConfig({}).brand).toEqual({ name: 'Twofold', logo: undefined, colors: undefined });
  });

  test('BRAND_NAME, or ISSUER_NAME (its older name); both only when they agree', () => {
    expect(loadConfig({ BRAND_NAME: ' Example ID ' }).brand.name).toBe('Example ID');
    expect(loadConfig({ ISSUER_NAME: 'Example ID' }).brand.name).toBe('Example ID');
    expect(loadConfig({ ISSUER_NAME: 'Example ID', BRAND_NAME: 'Example ID' }).brand.name).toBe('Example ID');
    expect(refusal({ ISSUER_NAME: 'Old ID', BRAND_NAME: 'Example ID' })).toBe(
      'Invalid configuration: ISSUER_NAME: the older name of BRAND_NAME; set only BRAND_NAME (got ISSUER_NAME "Old ID" and BRAND_NAME "Example ID")',
    );
  });

  test.each([
    [{ BRAND_NAME: 'Example: ID' }, 'BRAND_NAME: expected one line without a colon (authenticator apps split their label at a colon) (got "Example: ID")'],
    [{ ISSUER_NAME: 'Two\nlines' }, 'ISSUER_NAME: expected one line without a colon (authenticator apps split their label at a colon) (got "Two\\nlines")'],
    [{ BRAND_NAME: 'x'.repeat(65) }, `BRAND_NAME: expected 1–64 characters (got "${'x'.repeat(65)}")`],
    [{ BRAND_NAME: '   ' }, 'BRAND_NAME: expected 1–64 characters (got "   ")'],
    [{ BRAND_COLOR: 'blue' }, 'BRAND_COLOR: expected a colour as #rrggbb or #rgb (got "blue")'],
    [{ BRAND_COLOR_DARK: '#12345' }, 'BRAND_COLOR_DARK: expected a colour as #rrggbb or #rgb (got "#12345")'],
  ])('a malformed value names the key and what is allowed: %j', (env, expected) => {
    expect(refusal(env)).toBe(`Invalid configuration: ${expected}`);
  });

  test('an unquoted colour in YAML (read as a comment) gets a hint', () => {
    const config = file('brand.yaml', 'BRAND_COLOR: #1f6feb\n');
    expect(refusal({ TWOFOLD_CONFIG: config })).toBe(
      'Invalid configuration: BRAND_COLOR: expected a colour as #rrggbb or #rgb (quote it in YAML: "#1f6feb") (got null)',
    );
    const quoted = file('brand-quoted.yaml', 'BRAND_COLOR: "#1f6feb"\n');
    expect(loadConfig({ TWOFOLD_CONFIG: quoted }).brand.colors?.light.accent).toBe('#1f6feb');
  });

  test('a colour that reads at AA on both cards is used in both schemes, with the text colour that reads on it', () => {
    const { colors } = loadConfig({ BRAND_COLOR: '#7048e8' }).brand;
    expect(contrast('#7048e8', CARD.light)).toBeGreaterThanOrEqual(AA_TEXT);
    expect(colors!.light).toEqual({ accent: '#7048e8', onAccent: '#ffffff' });
    // Too dark for the dark card: its nearest lighter shade, with black text on it.
    expect(contrast('#7048e8', CARD.dark)).toBeLessThan(AA_TEXT);
    expect(colors!.dark.accent).toBe(nearestPassing('#7048e8', CARD.dark));
    expect(colors!.dark.onAccent).toBe(textOn(colors!.dark.accent));
    for (const scheme of ['light', 'dark'] as const) {
      const { accent, onAccent } = colors![scheme];
      expect(contrast(accent, CARD[scheme])).toBeGreaterThanOrEqual(AA_TEXT);
      expect(contrast(accent, onAccent)).toBeGreaterThanOrEqual(AA_TEXT);
    }
  });

  test('BRAND_COLOR_DARK is used as given when it passes on the dark card', () => {
    const { colors } = loadConfig({ BRAND_COLOR: '#1f6feb', BRAND_COLOR_DARK: '#58a6ff' }).brand;
    expect(colors).toEqual({ light: { accent: '#1f6feb', onAccent: '#ffffff' }, dark: { accent: '#58a6ff', onAccent: '#000000' } });
  });

  test('a colour below AA stops the start with the measured ratio and the nearest shade that passes', () => {
    expect(refusal({ BRAND_COLOR: '#777777' })).toBe(
      "Invalid configuration: BRAND_COLOR: #777777 has a contrast of 4.48:1 on the light scheme's card (#ffffff), where links and buttons are written in it; WCAG AA asks for at least 4.5:1; the nearest darker shade that passes is #767676",
    );
    expect(refusal({ BRAND_COLOR: '#FFD400' })).toMatch(
      /^Invalid configuration: BRAND_COLOR: #ffd400 has a contrast of 1\.\d\d:1 .* the nearest darker shade that passes is #[0-9a-f]{6}$/,
    );
    expect(refusal({ BRAND_COLOR: '#1f6feb', BRAND_COLOR_DARK: '#1f6feb' })).toBe(
      "Invalid configuration: BRAND_COLOR_DARK: #1f6feb has a contrast of 3.52:1 on the dark scheme's card (#1d2026), where links and buttons are written in it; WCAG AA asks for at least 4.5:1; the nearest lighter shade that passes is #4185ee",
    );
    // The suggestion passes when given back.
    expect(loadConfig({ BRAND_COLOR: '#767676', BRAND_COLOR_DARK: '#4185ee' }).brand.colors!.dark.accent).toBe('#4185ee');
  });

  test('BRAND_COLOR_DARK alone is refused', () => {
    expect(refusal({ BRAND_COLOR_DARK: '#58a6ff' })).toBe("Invalid configuration: BRAND_COLOR_DARK: needs BRAND_COLOR (the light scheme's colour) as well");
  });

  test('an SVG or PNG logo is read once, with its type', () => {
    const svg = file('logo.svg', SVG);
    expect(loadConfig({ BRAND_LOGO: svg }).brand.logo).toEqual({ file: svg, type: 'svg', body: Buffer.from(SVG) });
    const png = file('Logo.PNG', PNG);
    expect(loadConfig({ BRAND_LOGO: png }).brand.logo).toEqual({ file: png, type: 'png', body: PNG });
  });

  test('a missing, unreadable, oversized or mistyped logo stops the start, naming the file', () => {
    const missing = path.join(tmp, 'missing.svg');
    expect(refusal({ BRAND_LOGO: missing })).toBe(`Invalid configuration: BRAND_LOGO: cannot read ${missing} (ENOENT)`);
    const folder = path.join(tmp, 'folder.svg');
    fs.mkdirSync(folder);
    expect(refusal({ BRAND_LOGO: folder })).toBe(`Invalid configuration: BRAND_LOGO: ${folder} is not a file`);
    const jpeg = file('logo.jpg', Buffer.from([0xff, 0xd8, 0xff]));
    expect(refusal({ BRAND_LOGO: jpeg })).toBe(`Invalid configuration: BRAND_LOGO: ${jpeg} is not an .svg or .png file`);
    const fakePng = file('fake.png', SVG);
    expect(refusal({ BRAND_LOGO: fakePng })).toBe(`Invalid configuration: BRAND_LOGO: ${fakePng} is not a PNG image`);
    const fakeSvg = file('fake.svg', PNG);
    expect(refusal({ BRAND_LOGO: fakeSvg })).toBe(
      `Invalid configuration: BRAND_LOGO: ${fakeSvg} is not an SVG image (expected an <svg> element, uncompressed)`,
    );
    const html = file('page.svg', '<html><svg></svg></html>');
    expect(refusal({ BRAND_LOGO: html })).toContain('is not an SVG image');
    const huge = file('huge.svg', `<svg xmlns="http://www.w3.org/2000/svg"><!--${'x'.repeat(MAX_LOGO_BYTES)}--></svg>`);
    expect(refusal({ BRAND_LOGO: huge })).toMatch(
      new RegExp(`^Invalid configuration: BRAND_LOGO: ${huge} is \\d+ bytes; a logo may be at most 1048576 \\(1 MiB\\)$`),
    );
    // Relative to the working directory, reported as the absolute path it resolved to.
    expect(refusal({ BRAND_LOGO: 'no-such-logo.png' })).toBe(`Invalid configuration: BRAND_LOGO: cannot read ${path.resolve('no-such-logo.png')} (ENOENT)`);
    if (process.getuid?.() !== 0) {
      const locked = file('locked.svg', SVG);
      fs.chmodSync(locked, 0o000);
      expect(refusal({ BRAND_LOGO: locked })).toBe(`Invalid configuration: BRAND_LOGO: cannot read ${locked} (EACCES)`);
    }
  });
});

describe('the brand on the pages', () => {
  const FACTOR_VIEWS = Object.fromEntries(BUILT_IN_FACTORS.map((f) => [f.id, f.viewsDir]));
  const ERROR = { title: 'Oops', message: 'm' };

  test("the stylesheet sets both schemes' variables, the dark ones under the media query", () => {
    const css = brandStylesheet({ light: { accent: '#1f6feb', onAccent: '#ffffff' }, dark: { accent: '#4185ee', onAccent: '#000000' } });
    expect(css).toContain(
      ':root { --accent: #1f6feb; --on-accent: #ffffff; }\n@media (prefers-color-scheme: dark) { :root { --accent: #4185ee; --on-accent: #000000; } }',
    );
  });

  test('name, logo and stylesheet in the layout, the links carrying a hash of the content', () => {
    const { page, assets } = brandPages(loadConfig({ BRAND_NAME: 'Example <ID>', BRAND_LOGO: file('page-logo.svg', SVG), BRAND_COLOR: '#1f6feb' }).brand);
    expect(Object.keys(assets).sort()).toEqual(['brand-logo.svg', 'brand.css']);
    expect(page.logo).toMatch(/^\/assets\/brand-logo\.svg\?[0-9a-f]{12}$/);
    expect(page.stylesheet).toMatch(/^\/assets\/brand\.css\?[0-9a-f]{12}$/);
    const html = new Views(undefined, undefined, undefined, page).render('error', ERROR);
    expect(html).toContain('<title>Oops · Example &lt;ID&gt;</title>');
    expect(html).toContain(`<img class="brand-logo" src="${page.logo}" alt="" height="32"><span class="brand">Example &lt;ID&gt;</span>`);
    // After twofold.css, so its variables win.
    expect(html.indexOf(`<link rel="stylesheet" href="${page.stylesheet}">`)).toBeGreaterThan(html.indexOf('/assets/twofold.css'));
    const other = brandPages(loadConfig({ BRAND_COLOR: '#1f6feb', BRAND_COLOR_DARK: '#58a6ff' }).brand).page;
    expect(other.stylesheet).not.toBe(page.stylesheet);
  });

  test('without brand settings the pages are as before: Twofold, no logo, no brand stylesheet', () => {
    const { page, assets } = brandPages(loadConfig({}).brand);
    expect(assets).toEqual({});
    const html = new Views(undefined, undefined, undefined, page).render('error', ERROR);
    expect(html).toBe(new Views().render('error', ERROR));
    expect(html).toContain('<title>Oops · Twofold</title>');
    expect(html).toContain('<span class="brand">Twofold</span>');
    expect(html).not.toContain('brand-logo');
    expect(html).not.toContain('brand.css');
  });

  test("a theme's logo wins over BRAND_LOGO, its theme.css comes after the brand's stylesheet, and its layout gets `brand`", () => {
    const { page } = brandPages(loadConfig({ BRAND_NAME: 'Example ID', BRAND_LOGO: file('lost.svg', SVG), BRAND_COLOR: '#1f6feb' }).brand);
    const themed = themedViews(themeDir({ 'logo.png': 'png', 'theme.css': 'a { color: red }' }), FACTOR_VIEWS, page);
    const html = themed.views.render('error', ERROR);
    expect(html).toContain(`<img class="brand-logo" src="${themed.theme.links.logo}" alt="" height="32"><span class="brand">Example ID</span>`);
    expect(html).not.toContain(page.logo);
    expect(html.indexOf(themed.theme.links.stylesheet!)).toBeGreaterThan(html.indexOf(page.stylesheet!));

    const own = themedViews(themeDir({ 'layout.hbs': '<title>{{title}} – {{brand.name}}</title><img src="{{brand.logo}}">{{{body}}}' }), FACTOR_VIEWS, page);
    expect(own.views.render('error', ERROR)).toContain(`<title>Oops – Example ID</title><img src="${page.logo}">`);
  });
});
