/**
 * Handlebars views. Templates are read at start and compiled on first use;
 * `{{value}}` escapes HTML, so user input can never become markup. A theme
 * (THEME_DIR, see theme.ts) replaces views by name; its templates were
 * checked at start.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'koa';
import Handlebars from 'handlebars';
import { Catalogue, type Params } from '../src/i18n/catalogue.ts';
import { BUILT_IN_FACTORS } from '../factors/registry.ts';
import { languageOf } from '../src/i18n/language.ts';
import { loadTheme, type Theme } from './theme.ts';
import { DEFAULT_PAGE_BRAND, type PageBrand } from './brand.ts';
import { ACCOUNT_VIEWS_DIR } from '../src/account/views-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VIEWS_DIR = path.join(HERE, 'views');
export const ASSETS_DIR = path.join(HERE, 'assets');

export class Views {
  readonly #hbs = Handlebars.create();
  readonly #templates = new Map<string, Handlebars.TemplateDelegate>();
  readonly #theme: Theme | undefined;
  readonly catalogue: Catalogue;
  readonly #brand: PageBrand;

  /** Helpers here are the only ones a theme may use (theme.ts VIEW_HELPERS). */
  constructor(dirs: string[] = [VIEWS_DIR], theme?: Theme, catalogue = builtInCatalogue(), brand: PageBrand = DEFAULT_PAGE_BRAND) {
    this.catalogue = catalogue;
    this.#hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
    this.#hbs.registerHelper('encodeURIComponent', (v: unknown) => encodeURIComponent(String(v ?? '')));
    // {{t "key" name=value}}: the message in the page's language, its parameters escaped.
    this.#hbs.registerHelper('t', (key: unknown, options: Handlebars.HelperOptions) => {
      const root = options.data?.root as { lang?: string } | undefined;
      return new Handlebars.SafeString(catalogue.html(root?.lang ?? catalogue.defaultLanguage, String(key), options.hash as Params));
    });
    this.#theme = theme;
    // The theme's logo wins over BRAND_LOGO.
    this.#brand = theme?.links.logo ? { ...brand, logo: theme.links.logo } : brand;
    for (const dir of dirs) this.addDirectory(dir);
    // Same compile options as the built-in views: `{{ }}` escapes in a theme too.
    for (const [name, template] of theme?.views ?? []) {
      if (!this.#templates.has(name)) throw new Error(`theme template ${template.file} replaces no view`);
      this.#templates.set(name, this.#hbs.compile(template.source, { strict: false }));
    }
  }

  /** Adds every `*.hbs` in `dir` as a view, and those in `dir/partials` as partials. Later directories may not shadow earlier names. */
  addDirectory(dir: string, prefix = ''): void {
    for (const file of fs.readdirSync(dir)) {
      const full = path.join(dir, file);
      if (file === 'partials' && fs.statSync(full).isDirectory()) {
        for (const partial of fs.readdirSync(full).filter((f) => f.endsWith('.hbs'))) {
          this.#hbs.registerPartial(prefix + partial.slice(0, -4), fs.readFileSync(path.join(full, partial), 'utf8'));
        }
      } else if (file.endsWith('.hbs')) {
        const name = prefix + file.slice(0, -4);
        if (this.#templates.has(name)) throw new Error(`view ${name} is defined twice`);
        this.#templates.set(name, this.#hbs.compile(fs.readFileSync(full, 'utf8'), { strict: false }));
      }
    }
  }

  /** Registers every `*.hbs` in `dir` as a partial named `<prefix><file>` (a factor's views), or the theme's file of that name. */
  addPartials(dir: string, prefix: string): void {
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.hbs'))) {
      const name = prefix + file.slice(0, -4);
      this.#hbs.registerPartial(name, this.#theme?.partials.get(name)?.source ?? fs.readFileSync(path.join(dir, file), 'utf8'));
    }
  }

  /** The brand the pages show (its name, for a message that names the service). */
  get brand(): PageBrand {
    return this.#brand;
  }

  has(name: string): boolean {
    return this.#templates.has(name);
  }

  /** Renders a view inside the layout, in `data.lang` (the default language when unset). */
  render(name: string, data: Record<string, unknown>): string {
    const view = this.#templates.get(name);
    const layout = this.#templates.get('layout');
    if (!view || !layout) throw new Error(`no view named ${name}`);
    // Every page gets `brand` and `lang`; `theme.stylesheet` and `theme.logo` are set only when the theme has those files.
    const page = { lang: this.catalogue.defaultLanguage, ...data, brand: this.#brand, ...(this.#theme ? { theme: this.#theme.links } : {}) };
    return layout({ ...page, body: view(page) });
  }
}

/** The built-in pages' names (the layout included): what a theme's top-level templates may replace. */
export function pageNames(): string[] {
  return fs
    .readdirSync(VIEWS_DIR)
    .filter((f) => f.endsWith('.hbs'))
    .map((f) => f.slice(0, -4));
}

/** A provider's views, themed when `dir` (THEME_DIR) is set, checked now; throws ThemeError naming the file at fault. */
export function providerViews(
  catalogue: Catalogue,
  dir: string | undefined,
  factorViews: Record<string, string>,
  brand?: PageBrand,
): { views: Views; theme?: Theme } {
  const theme = dir ? loadTheme(dir, pageNames(), factorViews) : undefined;
  for (const [language, { file, messages }] of theme?.messages ?? []) catalogue.addOverrides(language, messages, file);
  const views = new Views([VIEWS_DIR], theme, catalogue, brand);
  // The account center's pages (src/account/), in the same layout.
  views.addDirectory(ACCOUNT_VIEWS_DIR, 'account/');
  return { views, theme };
}

/** A theme's views with the built-in messages (tests of the theme alone). */
export function themedViews(dir: string, factorViews: Record<string, string>, brand?: PageBrand): { views: Views; theme: Theme } {
  return providerViews(builtInCatalogue(), dir, factorViews, brand) as { views: Views; theme: Theme };
}

/** The built-in messages and the built-in factors' (views outside a provider: tests, the shared fallback). */
function builtInCatalogue(): Catalogue {
  return new Catalogue().addFactors(BUILT_IN_FACTORS);
}

/** What a step needs to speak to the person: their language, and each message in it as text. */
export interface Speaker {
  lang: string;
  t(key: string, params?: Params): string;
}

export function speakerFor(ctx: Context): Speaker {
  const { catalogue } = views();
  const lang = languageOf(ctx, catalogue);
  return { lang, t: (key, params) => catalogue.text(lang, key, params) };
}

/** A factor's name in the person's language (every factor's catalogue has its `<id>.label`). */
export function factorLabel(speaker: Speaker, factorId: string): string {
  return speaker.t(`${factorId}.label`);
}

let shared: Views | undefined;
// A provider's requests (and the building of its routes) see its own views, with its theme and
// brand; tests run several providers, themed or not, in one process.
const scoped = new AsyncLocalStorage<Views>();

export function views(): Views {
  return scoped.getStore() ?? (shared ??= new Views());
}

/** Runs `fn` (a request, or building routes) with `own` as the views; without it, the shared built-in ones. */
export function withViews<T>(own: Views | undefined, fn: () => T): T {
  return own ? scoped.run(own, fn) : fn();
}
