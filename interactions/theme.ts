/**
 * A deployment's theme (THEME_DIR): templates that replace built-in pages or
 * factor views by file name, a stylesheet and a logo. Everything is read and
 * checked here, once, at start: a file that matches nothing, a template that
 * does not compile or a layout that would drop the page stops the start
 * (naming the file) instead of breaking a sign-in. The theme only adds files
 * served from this origin, so the pages' CSP (style-src 'self') still holds.
 */
import fs from 'node:fs';
import path from 'node:path';
import Handlebars from 'handlebars';
import { assetVersion } from '../src/http/assets.ts';

export class ThemeError extends Error {}

/** A template the theme provides, with where it came from (for error messages). */
export interface ThemeTemplate {
  file: string;
  source: string;
}

export interface Theme {
  /** Page views and the layout, by view name (`login`, `layout`). */
  views: Map<string, ThemeTemplate>;
  /** Factor views, by partial name (`totp/challenge`). */
  partials: Map<string, ThemeTemplate>;
  /** Files to serve under /assets/, by served name. */
  assets: Record<string, string>;
  /** What the layout links (`theme.stylesheet`, `theme.logo`): URLs carrying the file's hash, so a changed file is fetched again. */
  links: { stylesheet?: string; logo?: string };
  /** Messages that replace built-in ones or add a language (`messages/<language>.json`), checked against the catalogue when it is built. */
  messages: Map<string, { file: string; messages: Record<string, string> }>;
}

/** The helpers the views may use (registered in render.ts); any other helper is a typo the start should catch. */
export const VIEW_HELPERS = ['eq', 'encodeURIComponent', 't'] as const;

/** Variables that must be output unescaped (`{{{ }}}`), or the page loses its content or a working form. */
const RAW_OUTPUTS: Record<string, string> = { layout: 'body', logout: 'form' };

const STYLESHEET = 'theme.css';
const MESSAGES = 'messages';
const LOGOS: Record<string, string> = { 'logo.svg': 'theme-logo.svg', 'logo.png': 'theme-logo.png' };
/** File kinds a theme is made of: one of these that matches nothing is a mistake, not a file to ignore. */
const THEME_EXTENSIONS = new Set(['.hbs', '.css', '.js', '.svg', '.png']);

/**
 * Reads and checks a theme folder.
 * @param pages the built-in page views by name (layout included)
 * @param factorViews every known factor's views folder, by factor id (all of them, so turning a factor off does not break a theme)
 */
export function loadTheme(dir: string, pages: readonly string[], factorViews: Record<string, string>): Theme {
  const root = path.resolve(dir);
  if (!fs.existsSync(root)) throw new ThemeError(`${root} does not exist`);
  if (!isDirectory(root)) throw new ThemeError(`${root} is not a folder`);
  const theme: Theme = { views: new Map(), partials: new Map(), assets: {}, links: {}, messages: new Map() };
  const expected = `expected layout.hbs, one of ${pages
    .filter((p) => p !== 'layout')
    .map((p) => `${p}.hbs`)
    .join(', ')}, factors/<factor id>/<view>.hbs, ${STYLESHEET}, ${Object.keys(LOGOS).join(' or ')}`;

  for (const name of visible(root)) {
    const full = path.join(root, name);
    if (isDirectory(full)) {
      if (name === 'factors') readFactorViews(full, factorViews, theme);
      if (name === MESSAGES) readMessages(full, theme);
      continue; // other folders (sources, notes) are not part of the theme
    }
    const ext = path.extname(name);
    if (ext === '.hbs' && pages.includes(name.slice(0, -4))) {
      const view = name.slice(0, -4);
      theme.views.set(view, checkedTemplate(full, RAW_OUTPUTS[view]));
    } else if (name === STYLESHEET) {
      theme.assets[STYLESHEET] = full;
      theme.links.stylesheet = `/assets/${STYLESHEET}?${assetVersion(fs.readFileSync(full))}`;
    } else if (LOGOS[name]) {
      if (theme.links.logo) throw new ThemeError(`${full}: the theme has both logo.svg and logo.png; keep one`);
      theme.assets[LOGOS[name]] = full;
      theme.links.logo = `/assets/${LOGOS[name]}?${assetVersion(fs.readFileSync(full))}`;
    } else if (THEME_EXTENSIONS.has(ext)) {
      throw new ThemeError(`${full} matches no page or theme file (${expected})`);
    }
  }
  return theme;
}

function readFactorViews(dir: string, factorViews: Record<string, string>, theme: Theme): void {
  for (const id of visible(dir)) {
    const full = path.join(dir, id);
    const viewsDir = Object.hasOwn(factorViews, id) ? factorViews[id] : undefined;
    if (!viewsDir) throw new ThemeError(`${full} matches no factor (known: ${Object.keys(factorViews).join(', ')})`);
    if (!isDirectory(full)) throw new ThemeError(`${full} should be a folder of that factor's views`);
    const known = fs
      .readdirSync(viewsDir)
      .filter((f) => f.endsWith('.hbs'))
      .sort();
    for (const file of visible(full)) {
      if (!THEME_EXTENSIONS.has(path.extname(file))) continue;
      const template = path.join(full, file);
      if (!known.includes(file)) throw new ThemeError(`${template} matches no view of factor ${id} (its views: ${known.join(', ')})`);
      theme.partials.set(`${id}/${file.slice(0, -4)}`, checkedTemplate(template));
    }
  }
}

function readMessages(dir: string, theme: Theme): void {
  for (const file of visible(dir)) {
    const full = path.join(dir, file);
    if (!file.endsWith('.json')) throw new ThemeError(`${full}: the messages folder holds <language>.json files (de.json, pt-BR.json)`);
    let messages: unknown;
    try {
      messages = JSON.parse(fs.readFileSync(full, 'utf8'));
    } catch (err) {
      throw new ThemeError(`${full}: ${(err as Error).message}`);
    }
    if (!messages || typeof messages !== 'object' || Array.isArray(messages) || Object.values(messages).some((v) => typeof v !== 'string')) {
      throw new ThemeError(`${full}: expected an object of "message key": "text"`);
    }
    theme.messages.set(file.slice(0, -5), { file: full, messages: messages as Record<string, string> });
  }
}

/**
 * Compiles a template fully (Handlebars' compile is lazy, so a syntax error would otherwise
 * surface at the first sign-in), allowing only the views' helpers, and checks that a page's
 * content is output unescaped where it must be.
 */
function checkedTemplate(file: string, rawOutput?: string): ThemeTemplate {
  const source = fs.readFileSync(file, 'utf8');
  try {
    Handlebars.precompile(source, { knownHelpers: Object.fromEntries(VIEW_HELPERS.map((h) => [h, true])), knownHelpersOnly: true });
  } catch (err) {
    throw new ThemeError(`${file}: ${oneLine((err as Error).message)}`);
  }
  if (rawOutput && !outputsRaw(Handlebars.parse(source), rawOutput)) {
    throw new ThemeError(`${file}: must output {{{${rawOutput}}}} (three braces: it is HTML Twofold made)`);
  }
  return { file, source };
}

/** Handlebars' parse errors span four lines (message, excerpt, caret, expectation); keep the first and the last. */
function oneLine(message: string): string {
  const lines = message.split('\n').filter((l) => l.trim());
  return lines.length > 2 && lines[0]!.startsWith('Parse error') ? `${lines[0]} ${lines.at(-1)}` : (lines[0] ?? message);
}

/** Whether the template outputs `name` unescaped somewhere (inside any block). */
function outputsRaw(node: unknown, name: string): boolean {
  if (!node || typeof node !== 'object') return false;
  const n = node as { type?: string; escaped?: boolean; path?: { original?: unknown }; params?: unknown[] };
  if (n.type === 'MustacheStatement' && n.escaped === false && n.path?.original === name && !n.params?.length) return true;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'loc') continue;
    if (Array.isArray(value) ? value.some((v) => outputsRaw(v, name)) : outputsRaw(value, name)) return true;
  }
  return false;
}

/** Entries of a folder without hidden ones (editor files; Kubernetes' `..data` links in a mounted ConfigMap). */
function visible(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .sort();
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory(); // follows links, as mounted config folders use them
  } catch {
    return false;
  }
}
