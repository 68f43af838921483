/**
 * Handlebars views. Templates are compiled once at start; `{{value}}` escapes
 * HTML, so user input can never become markup.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VIEWS_DIR = path.join(HERE, 'views');
export const ASSETS_DIR = path.join(HERE, 'assets');

export class Views {
  readonly #hbs = Handlebars.create();
  readonly #templates = new Map<string, Handlebars.TemplateDelegate>();

  constructor(dirs: string[] = [VIEWS_DIR]) {
    this.#hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
    this.#hbs.registerHelper('encodeURIComponent', (v: unknown) => encodeURIComponent(String(v ?? '')));
    for (const dir of dirs) this.addDirectory(dir);
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

  /** Registers every `*.hbs` in `dir` as a partial named `<prefix><file>` (a factor's views). */
  addPartials(dir: string, prefix: string): void {
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.hbs'))) {
      this.#hbs.registerPartial(prefix + file.slice(0, -4), fs.readFileSync(path.join(dir, file), 'utf8'));
    }
  }

  has(name: string): boolean {
    return this.#templates.has(name);
  }

  /** Renders a view inside the layout. */
  render(name: string, data: Record<string, unknown>): string {
    const view = this.#templates.get(name);
    const layout = this.#templates.get('layout');
    if (!view || !layout) throw new Error(`no view named ${name}`);
    return layout({ ...data, body: view(data) });
  }
}

let shared: Views | undefined;
export function views(): Views {
  shared ??= new Views();
  return shared;
}
