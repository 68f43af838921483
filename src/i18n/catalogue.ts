/**
 * The message catalogue: every text a person reads, by key, per language.
 *
 * Messages are ICU MessageFormat (`{name}` parameters, `{count, plural, …}`),
 * parsed when they are loaded, so a broken message stops the start instead of
 * a sign-in. Three layers, looked up in this order: the theme's overrides
 * (THEME_DIR/messages/<language>.json), the factors' own catalogues (each
 * factor's keys begin with its id), and the built-in messages in ./messages.
 * A key a language lacks falls back to the default language, then English,
 * then to the key itself (logged): a missing text never becomes a 500.
 *
 * A message may mark words with <b>, <strong>, <em> or <code>. As HTML the
 * literal text and every parameter are escaped and those tags become markup;
 * as text (emails, JSON, a page's title) the tags keep only their content.
 *
 * A sentence that changes when a value is missing (an app without a name)
 * selects on it with a `none` branch: `{app, select, none {the app} other
 * {{app}}}`. `none` is taken when the parameter is not given or empty, and
 * never by a value, so an app called "none" is still named.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IntlMessageFormat } from 'intl-messageformat';
import { parse, TYPE, type MessageFormatElement } from '@formatjs/icu-messageformat-parser';
import { mapLiterals } from './message-ast.ts';
import { pseudoElements } from './pseudo.ts';

export const MESSAGES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'messages');

/** Languages whose built-in messages ship with Twofold; the catalogue test holds each to every English key. */
export const BUILT_IN_LANGUAGES = ['en', 'de'] as const;

/** The pseudo-language (Windows' and Android's name for it): English with every letter marked, to find text no key produced. */
export const PSEUDO_LANGUAGE = 'en-XA';

/** A message's parameters: text, a number (plural), or a flag a `select` tests (`{optional, select, true {…} other {…}}`). */
export type Params = Record<string, string | number | boolean | undefined>;

/** A text a factor or a step names by key, rendered in the person's language where it is shown. */
export interface MessageRef {
  key: string;
  params?: Params;
}

export class CatalogueError extends Error {}

/** The tags a message may use, and the markup each becomes. */
const TAGS = new Set(['b', 'strong', 'em', 'code']);

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

interface Compiled {
  text: IntlMessageFormat;
  html: IntlMessageFormat;
  /** Parameter names the message uses, to check that a translation asks for the same ones. */
  params: Set<string>;
  /** Parameters a `select` with a `none` branch tests: absent or empty, they take that branch. */
  absent: Set<string>;
}

/**
 * What a `none` branch is keyed by once compiled: no text a parameter carries can equal it (a NUL
 * never reaches the pages: the input guard refuses it and PostgreSQL cannot store it).
 */
const NONE = '\u0000none';

type Layer = Map<string, Map<string, Compiled>>; // language → key → message

export interface CatalogueOptions {
  /** The language when neither ui_locales nor Accept-Language names one we have. */
  defaultLanguage?: string;
  /** Adds the pseudo-language (tests, translators). */
  pseudo?: boolean;
}

export class Catalogue {
  readonly #builtIn: Layer = new Map();
  readonly #factors = new Map<string, Layer>(); // factor id → its layer
  readonly #overrides: Layer = new Map();
  readonly #defaultLanguage: string;
  readonly #pseudo: boolean;
  readonly #warned = new Set<string>();

  constructor(options: CatalogueOptions = {}) {
    for (const language of BUILT_IN_LANGUAGES) {
      const dir = path.join(MESSAGES_DIR, language);
      const messages: Record<string, string> = {};
      for (const file of fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .sort()) {
        for (const [key, value] of Object.entries(readJson(path.join(dir, file)))) {
          if (Object.hasOwn(messages, key)) throw new CatalogueError(`${path.join(dir, file)}: ${key} is defined twice`);
          messages[key] = value;
        }
      }
      this.#builtIn.set(language, compileAll(language, messages, dir));
    }
    this.#pseudo = options.pseudo ?? false;
    this.#defaultLanguage = options.defaultLanguage ?? 'en';
  }

  /**
   * A factor's own messages, by language (every key begins with `<id>.`). Registering the same
   * factor again replaces its messages (tests build several providers in one process).
   */
  addFactor(id: string, messages: Record<string, Record<string, string>>, origin: string): void {
    const layer: Layer = new Map();
    for (const [language, entries] of Object.entries(messages)) {
      for (const key of Object.keys(entries)) {
        if (!key.startsWith(`${id}.`)) throw new CatalogueError(`${origin}: factor ${id}'s message ${key} must begin with "${id}."`);
      }
      layer.set(language, compileAll(language, entries, origin));
    }
    this.#factors.set(id, layer);
  }

  /** Every factor's messages folder, as `addFactor` (the built-in factors' and any registered). */
  addFactors(factors: Iterable<{ id: string; messagesDir: string }>): this {
    for (const f of factors) this.addFactor(f.id, Catalogue.readFolder(f.messagesDir), f.messagesDir);
    return this;
  }

  /** Reads a factor's messages folder (`<language>.json` files). */
  static readFolder(dir: string): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    if (!fs.existsSync(dir)) return out;
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) out[file.slice(0, -5)] = readJson(path.join(dir, file));
    return out;
  }

  /**
   * A theme's messages: each key must exist in English (a typo would otherwise be silently
   * ignored) and ask for the same parameters. A language we do not ship is added.
   */
  addOverrides(language: string, messages: Record<string, string>, origin: string): void {
    if (!/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(language)) throw new CatalogueError(`${origin}: ${language} is not a language tag such as de or pt-BR`);
    const compiled = compileAll(language, messages, origin);
    for (const [key, message] of compiled) {
      const english = this.#lookup('en', key, false);
      if (!english) throw new CatalogueError(`${origin}: ${key} is not a message key`);
      const extra = [...message.params].filter((p) => !english.params.has(p));
      if (extra.length) throw new CatalogueError(`${origin}: ${key} uses {${extra.join('}, {')}}, which the message is not given`);
    }
    this.#overrides.set(language, new Map([...(this.#overrides.get(language) ?? []), ...compiled]));
  }

  /** The languages a page can be shown in, the default first. */
  languages(): string[] {
    const all = new Set([this.#defaultLanguage, ...this.#builtIn.keys(), ...this.#overrides.keys()].filter((l) => this.offers(l)));
    if (this.#pseudo) all.add(PSEUDO_LANGUAGE);
    return [...all];
  }

  /** Whether the language has messages of its own (built in, or added by the theme). */
  offers(language: string): boolean {
    return this.#builtIn.has(language) || this.#overrides.has(language) || (this.#pseudo && language === PSEUDO_LANGUAGE);
  }

  get defaultLanguage(): string {
    return this.#defaultLanguage;
  }

  /** Every key of a language (built-in and factors'), for the completeness test. */
  keys(language: string): string[] {
    const keys = new Set(this.#builtIn.get(language)?.keys() ?? []);
    for (const layer of this.#factors.values()) for (const key of layer.get(language)?.keys() ?? []) keys.add(key);
    return [...keys].sort();
  }

  /** The parameter names a message uses, or undefined when the language lacks it. */
  paramsOf(language: string, key: string): string[] | undefined {
    const found = this.#lookup(language, key, false);
    return found && [...found.params].sort();
  }

  has(language: string, key: string): boolean {
    return this.#lookup(language, key, false) !== undefined;
  }

  /** The message as plain text. */
  text(language: string, key: string, params: Params = {}): string {
    const found = this.#find(language, key);
    return found ? String(found.text.format(withTags(this.#values(key, found, params), (chunks) => chunks.join('')))) : key;
  }

  /** The message as HTML: its text and parameters escaped, its tags as markup. */
  html(language: string, key: string, params: Params = {}): string {
    const found = this.#find(language, key);
    if (!found) return escapeHtml(key);
    const escaped = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? escapeHtml(v) : v]));
    return String(found.html.format(withTags(this.#values(key, found, escaped), (chunks, tag) => `<${tag}>${chunks.join('')}</${tag}>`)));
  }

  /**
   * The parameters a message uses that `params` does not give (a `none` branch's excepted). Rendering
   * gives those as empty; a check at start (a theme's template tried once) reports them instead.
   */
  missingParams(language: string, key: string, params: Params = {}): string[] {
    const found = this.#lookup(language, key, true);
    return found ? [...found.params].filter((name) => !Object.hasOwn(params, name) && !found.absent.has(name)) : [];
  }

  /** Picks the language: the first of `asked` (OIDC ui_locales, in order) we have, then Accept-Language's, then the default. */
  negotiate(asked: string | undefined, accepted: (languages: string[]) => string | false): string {
    const have = this.languages();
    for (const tag of (asked ?? '').split(' ').filter(Boolean)) {
      const match = matchLanguage(have, tag);
      if (match) return match;
    }
    const fromHeader = accepted([...have, ...have.filter((l) => l.includes('-')).map((l) => l.split('-')[0]!)]);
    return (fromHeader && matchLanguage(have, fromHeader)) || this.#defaultLanguage;
  }

  /**
   * The parameters as the message takes them: those a `none` branch tests marked when absent or
   * empty, and one the caller left out given as empty (logged), so a page is never a 500 for it.
   */
  #values(key: string, message: Compiled, params: Params): Params {
    const out = { ...params };
    for (const name of message.params) {
      if (Object.hasOwn(out, name)) continue;
      out[name] = undefined;
      if (!message.absent.has(name)) this.#warnOnce(`${key}:${name}`, `message ${key} was not given {${name}}`);
    }
    for (const name of message.absent) if (out[name] == null || out[name] === '') out[name] = NONE; // null: a view's value may be a database NULL
    return out;
  }

  #warnOnce(what: string, warning: string): void {
    if (this.#warned.has(what)) return;
    this.#warned.add(what);
    process.emitWarning(warning, 'TwofoldCatalogue');
  }

  #find(language: string, key: string): Compiled | undefined {
    const found = this.#lookup(language, key, true);
    if (!found) this.#warnOnce(key, `message ${key} is in no catalogue`);
    return found;
  }

  #lookup(language: string, key: string, fallBack: boolean): Compiled | undefined {
    if (language === PSEUDO_LANGUAGE && this.#pseudo) return this.#pseudoOf(key);
    const chain = fallBack ? [...new Set([language, language.split('-')[0]!, this.#defaultLanguage, 'en'])] : [language];
    for (const lang of chain) {
      const found = this.#overrides.get(lang)?.get(key) ?? this.#factorLayer(key)?.get(lang)?.get(key) ?? this.#builtIn.get(lang)?.get(key);
      if (found) return found;
    }
    return undefined;
  }

  #factorLayer(key: string): Layer | undefined {
    return this.#factors.get(key.slice(0, key.indexOf('.')));
  }

  readonly #pseudoCache = new Map<string, Compiled>();
  #pseudoOf(key: string): Compiled | undefined {
    const cached = this.#pseudoCache.get(key);
    if (cached) return cached;
    const english = this.#lookup('en', key, false);
    if (!english) return undefined;
    const compiled = compileElements(PSEUDO_LANGUAGE, pseudoElements(english.text.getAst()));
    this.#pseudoCache.set(key, compiled);
    return compiled;
  }
}

/** The languages a provider offers (discovery's ui_locales_supported), read from the same places the catalogue reads. */
export function offeredLanguages(themeDir: string | undefined, pseudo: boolean): string[] {
  const themed =
    themeDir && fs.existsSync(path.join(themeDir, 'messages'))
      ? fs
          .readdirSync(path.join(themeDir, 'messages'))
          .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
          .map((f) => f.slice(0, -5))
      : [];
  return [...new Set([...BUILT_IN_LANGUAGES, ...themed, ...(pseudo ? [PSEUDO_LANGUAGE] : [])])];
}

/** `de-AT` is served by `de`; `en-XA` only by itself. */
function matchLanguage(have: string[], tag: string): string | undefined {
  const lower = tag.toLowerCase();
  return have.find((l) => l.toLowerCase() === lower) ?? have.find((l) => l.toLowerCase() === lower.split('-')[0]);
}

function withTags(params: Params, tag: (chunks: string[], name: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...params };
  for (const name of TAGS) out[name] = (chunks: string[]) => tag(chunks, name);
  return out;
}

function readJson(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CatalogueError(`${file}: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CatalogueError(`${file}: expected an object of "key": "message"`);
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') throw new CatalogueError(`${file}: ${key} must be a string`);
  }
  return parsed as Record<string, string>;
}

function compileAll(language: string, messages: Record<string, string>, origin: string): Map<string, Compiled> {
  const out = new Map<string, Compiled>();
  for (const [key, source] of Object.entries(messages)) {
    if (!/^[a-z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+)+$/.test(key)) throw new CatalogueError(`${origin}: ${JSON.stringify(key)} is not a message key (area.name)`);
    try {
      out.set(key, compileElements(language, parse(source)));
    } catch (err) {
      throw new CatalogueError(`${origin} (${language}): ${key}: ${(err as Error).message}`);
    }
  }
  return out;
}

function compileElements(language: string, source: MessageFormatElement[]): Compiled {
  const params = new Set<string>();
  const absent = new Set<string>();
  const ast = keyNoneBranches(source);
  visit(ast, (el) => {
    if (el.type === TYPE.tag && !TAGS.has(el.value))
      throw new CatalogueError(`<${el.value}> is not one of the tags a message may use (${[...TAGS].join(', ')})`);
    if (el.type !== TYPE.literal && el.type !== TYPE.pound && el.type !== TYPE.tag) {
      // Tags and parameters share one namespace when formatted: a {code} would become the <code> tag's function.
      if (TAGS.has(el.value)) throw new CatalogueError(`{${el.value}} has the name of a tag (<${el.value}>); name the parameter otherwise`);
      params.add(el.value);
    }
    if (el.type === TYPE.select && Object.hasOwn(el.options, NONE)) absent.add(el.value);
  });
  const locale = language === PSEUDO_LANGUAGE ? 'en' : language;
  return { text: new IntlMessageFormat(ast, locale), html: new IntlMessageFormat(mapLiterals(ast, escapeHtml), locale), params, absent };
}

/** A copy of the message whose selects key their `none` branch by NONE (see values()). */
function keyNoneBranches(ast: MessageFormatElement[]): MessageFormatElement[] {
  return ast.map((el) => {
    if (el.type === TYPE.tag) return { ...el, children: keyNoneBranches(el.children) };
    if (el.type !== TYPE.plural && el.type !== TYPE.select) return el;
    const options = Object.entries(el.options).map(([k, o]) => [el.type === TYPE.select && k === 'none' ? NONE : k, { ...o, value: keyNoneBranches(o.value) }]);
    return { ...el, options: Object.fromEntries(options) } as MessageFormatElement;
  });
}

function visit(ast: MessageFormatElement[], fn: (el: MessageFormatElement) => void): void {
  for (const el of ast) {
    fn(el);
    if (el.type === TYPE.tag) visit(el.children, fn);
    if (el.type === TYPE.plural || el.type === TYPE.select) for (const option of Object.values(el.options)) visit(option.value, fn);
  }
}
