/**
 * `npm run build`: bundles the provider, with the packages it uses, into one
 * ES module, .build/main.js, with esbuild. Node 20 loads every ES module file
 * with its own resolve, read and compile steps: the provider and its packages
 * are about 1,100 files, and loading them was most of start-up. One file
 * halves the time to /readyz.
 *
 * Left out, loaded from node_modules as they are: PGlite (it finds its
 * WebAssembly and data files next to itself), the argon2 native binding, and
 * the WebAuthn server library (loaded on first use, see
 * factors/webauthn/ceremony.ts).
 *
 * Nothing is copied: every `import.meta.url`, `__dirname` and `__filename` in
 * a bundled file becomes that file's own location, relative to the bundle, so
 * views, templates and assets are found where they are (and the bundle keeps
 * working when the whole folder moves).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Loader, type Plugin } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = path.join(ROOT, '.build');

const EXTERNAL = ['@electric-sql/pglite', '@node-rs/argon2', '@simplewebauthn/server', 'pg-native'];

// CommonJS packages call require(); in an ES module it comes from createRequire.
const BANNER = [
  "import { createRequire as __twofoldCreateRequire } from 'node:module';",
  "import { fileURLToPath as __twofoldFileURLToPath } from 'node:url';",
  'const require = __twofoldCreateRequire(import.meta.url);',
  'const __twofoldPath = (relative) => __twofoldFileURLToPath(new URL(relative, import.meta.url));',
].join('\n');

const LOADERS: Record<string, Loader> = { '.ts': 'ts', '.js': 'js', '.mjs': 'js', '.cjs': 'js' };

/** Rewrites a file's references to its own location so that they still point at it from the bundle. */
const ownLocation: Plugin = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.(ts|js|mjs|cjs)$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      const usesUrl = source.includes('import.meta.url');
      const usesDir = /\b__(dirname|filename)\b/.test(source);
      if (!usesUrl && !usesDir) return undefined;
      const fromBundle = (p: string) => JSON.stringify(path.relative(OUT_DIR, p).split(path.sep).join('/'));
      let contents = usesUrl ? source.replaceAll('import.meta.url', `new URL(${fromBundle(args.path)}, import.meta.url).href`) : source;
      if (usesDir && !args.path.endsWith('.ts')) {
        // Module-scoped in the function esbuild wraps each CommonJS file in.
        contents = `var __filename = __twofoldPath(${fromBundle(args.path)}), __dirname = __twofoldPath(${fromBundle(path.dirname(args.path))});\n${contents}`;
      }
      return { contents, loader: LOADERS[path.extname(args.path)]!, resolveDir: path.dirname(args.path) };
    });
  },
};

const started = performance.now();
const result = await build({
  entryPoints: [path.join(ROOT, 'src/main.ts')],
  outfile: path.join(OUT_DIR, 'main.js'),
  bundle: true,
  external: EXTERNAL,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: BANNER },
  sourcemap: 'linked',
  // Stack traces and logs keep the sources' function and class names.
  keepNames: true,
  // Smaller to read and parse at every start; names are kept (no identifier mangling) for stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [ownLocation],
  metafile: true,
});
if (process.argv.includes('--verbose')) {
  const inputs = Object.keys(result.metafile.inputs).length;
  console.log(`bundled ${inputs} modules into .build/main.js in ${Math.round(performance.now() - started)} ms`);
}
