/**
 * Loads the factors FACTORS lists, at boot: a built-in id (`totp`) is the
 * factor under factors/; anything else is a module whose default export is a
 * factor, either a path (`./my-factor`, `/opt/factors/push.js`, `file:…`),
 * relative to the working directory like every path in the configuration, or
 * an npm package name, found from Twofold's own folder (`npm install <name>`
 * there). A folder is read as a package: its package.json's `exports` or
 * `main`, else its index.js.
 *
 * `npm start` runs a bundle (src/build.ts); the module is imported at run time
 * all the same, by its own URL or name, so it need not be in the bundle. A
 * TypeScript module loads too: the first one registers tsx's loader.
 *
 * A failure is one line naming the entry: the module cannot be loaded, has no
 * default export, is not a factor, or shares its id with another entry. The
 * registry then checks each factor as it checks the built-in ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUILT_IN_FACTORS } from './registry.ts';
import type { Factor } from './types.ts';

export interface LoadedFactor {
  /** The FACTORS entry it came from, as written. */
  entry: string;
  factor: Factor<any>;
}

/** One line naming the FACTORS entry at fault. */
export class FactorLoadError extends Error {
  constructor(
    readonly entry: string,
    problem: string,
  ) {
    super(`FACTORS entry ${entry}: ${problem}`);
  }
}

/** Whether an entry names a file or folder rather than a package. */
export function isPathEntry(entry: string): boolean {
  return /^(\.{1,2}([\\/]|$)|[\\/]|file:)/.test(entry) || path.isAbsolute(entry);
}

/** The file a folder stands for, read as a package (exports, main, then index). */
function folderEntry(dir: string): string | undefined {
  const manifest = path.join(dir, 'package.json');
  if (fs.existsSync(manifest)) {
    let pkg: { exports?: unknown; main?: unknown };
    try {
      pkg = JSON.parse(fs.readFileSync(manifest, 'utf8')) as typeof pkg;
    } catch {
      return undefined;
    }
    const root = pkg.exports && typeof pkg.exports === 'object' && '.' in pkg.exports ? (pkg.exports as Record<string, unknown>)['.'] : pkg.exports;
    const conditional = root && typeof root === 'object' ? ((root as Record<string, unknown>).import ?? (root as Record<string, unknown>).default) : root;
    const target = typeof conditional === 'string' ? conditional : typeof pkg.main === 'string' ? pkg.main : undefined;
    if (target) return path.resolve(dir, target);
  }
  return ['index.js', 'index.mjs', 'index.ts'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
}

/** The module URL a path entry names, or why there is none. */
function fileOf(entry: string, cwd: string): { ok: true; url: string } | { ok: false; problem: string } {
  const file = entry.startsWith('file:') ? fileURLToPath(entry) : path.resolve(cwd, entry);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return { ok: false, problem: `no file or folder ${file}` };
  }
  if (!stat.isDirectory()) return { ok: true, url: pathToFileURL(file).href };
  const inside = folderEntry(file);
  if (!inside || !fs.existsSync(inside))
    return { ok: false, problem: `${file} is a folder without a package.json naming its module (exports or main) or an index.js` };
  return { ok: true, url: pathToFileURL(inside).href };
}

let typeScriptLoader: Promise<unknown> | undefined;

/** tsx's loader, registered once, for a factor written in TypeScript (the bundle has none of its own). */
function registerTypeScript(): Promise<unknown> {
  // A variable, so the bundler leaves tsx out and it is loaded only when a factor needs it.
  const api = 'tsx/esm/api';
  typeScriptLoader ??= import(api).then((tsx: { register(): unknown }) => tsx.register());
  return typeScriptLoader;
}

async function importModule(specifier: string): Promise<Record<string, unknown>> {
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !/\.[cm]?ts$/.test(specifier)) throw err;
    await registerTypeScript();
    // Node keeps the failed load under the module's URL: ask again under another one.
    return (await import(`${specifier}${specifier.includes('?') ? '&' : '?'}typescript`)) as Record<string, unknown>;
  }
}

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`). */
function packageName(entry: string): string {
  const parts = entry.split('/');
  return entry.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function loadProblem(entry: string, err: unknown): string {
  const message = ((err as Error)?.message ?? String(err)).split('\n')[0]!;
  const code = (err as { code?: string })?.code;
  // Node names the package it missed: this entry's own (not installed) or one the module imports.
  if (!isPathEntry(entry) && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${packageName(entry)}'`)) {
    const builtIn = BUILT_IN_FACTORS.map((f) => f.id).join(', ');
    return `not a built-in factor (${builtIn}), and no package of that name is installed beside Twofold (npm install ${packageName(entry)} in its folder; a path begins with ./ or /)`;
  }
  return `cannot be loaded: ${message}`;
}

/** The factors FACTORS lists, in its order; throws FactorLoadError naming the first entry that fails. */
export async function loadFactors(entries: readonly string[], options: { cwd?: string } = {}): Promise<LoadedFactor[]> {
  const cwd = options.cwd ?? process.cwd();
  const loaded: LoadedFactor[] = [];
  for (const entry of entries) {
    let factor: unknown = BUILT_IN_FACTORS.find((f) => f.id === entry);
    if (!factor) {
      let specifier = entry;
      if (isPathEntry(entry)) {
        const file = fileOf(entry, cwd);
        if (!file.ok) throw new FactorLoadError(entry, file.problem);
        specifier = file.url;
      }
      let module: Record<string, unknown>;
      try {
        module = await importModule(specifier);
      } catch (err) {
        throw new FactorLoadError(entry, loadProblem(entry, err));
      }
      if (!('default' in module) || module.default === undefined)
        throw new FactorLoadError(entry, 'its module has no default export (export default defineFactor({ … }))');
      factor = module.default;
      // A CommonJS module compiled from `export default` holds the factor one level down.
      if (factor && typeof factor === 'object' && !('id' in factor) && 'default' in factor) factor = (factor as { default: unknown }).default;
    }
    if (!factor || typeof factor !== 'object' || typeof (factor as { id?: unknown }).id !== 'string') {
      throw new FactorLoadError(entry, 'its default export is not a factor (an object with an id, see docs/writing-a-factor.md)');
    }
    const same = loaded.find((l) => l.factor.id === (factor as Factor<any>).id);
    if (same) throw new FactorLoadError(entry, `its factor id ${same.factor.id} is also that of entry ${same.entry}; each factor is listed once`);
    loaded.push({ entry, factor: factor as Factor<any> });
  }
  return loaded;
}
