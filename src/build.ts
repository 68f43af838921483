/**
 * `npm run build`: bundles the provider and the `twofold` command, with the
 * packages they use, into one ES module each (.build/main.js, .build/cli.js),
 * with esbuild. Node 20 loads every ES module file
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
const ownLocation = (outDir: string): Plugin => ({
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.(ts|js|mjs|cjs)$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      const usesUrl = source.includes('import.meta.url');
      const usesDir = /\b__(dirname|filename)\b/.test(source);
      if (!usesUrl && !usesDir) return undefined;
      const fromBundle = (p: string) => JSON.stringify(path.relative(outDir, p).split(path.sep).join('/'));
      let contents = usesUrl ? source.replaceAll('import.meta.url', `new URL(${fromBundle(args.path)}, import.meta.url).href`) : source;
      if (usesDir && !args.path.endsWith('.ts')) {
        // Module-scoped in the function esbuild wraps each CommonJS file in.
        contents = `var __filename = __twofoldPath(${fromBundle(args.path)}), __dirname = __twofoldPath(${fromBundle(path.dirname(args.path))});\n${contents}`;
      }
      return { contents, loader: LOADERS[path.extname(args.path)]!, resolveDir: path.dirname(args.path) };
    });
  },
});

/** The programs bundled: `npm start`'s provider and the `twofold` command. */
export const ENTRIES = ['main', 'cli'] as const;
export type Entry = (typeof ENTRIES)[number];

/** Every input file of the bundles with its size and modification time: src/launch.js rebuilds only when one differs. */
export const MANIFEST = path.join(OUT_DIR, 'manifest.json');

export async function buildBundles(options: { verbose?: boolean } = {}): Promise<void> {
  const started = performance.now();
  // Built beside .build/ (the same depth, so the relative paths hold) and moved in file by file, the manifest
  // last: two processes starting at once (tests spawning the command) never load a half-written bundle.
  const staging = path.join(ROOT, `.build-${process.pid}-${Date.now()}`);
  try {
    await buildInto(staging);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    for (const file of fs.readdirSync(staging)) if (file !== 'manifest.json') fs.renameSync(path.join(staging, file), path.join(OUT_DIR, file));
    fs.renameSync(path.join(staging, 'manifest.json'), MANIFEST);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  if (options.verbose) console.log(`bundled ${ENTRIES.join(' and ')} into .build/ in ${Math.round(performance.now() - started)} ms`);
}

async function buildInto(outDir: string): Promise<void> {
  const result = await build({
    entryPoints: Object.fromEntries(ENTRIES.map((name) => [name, path.join(ROOT, `src/${name}.ts`)])),
    outdir: outDir,
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
    plugins: [ownLocation(outDir)],
    metafile: true,
    absWorkingDir: ROOT,
  });
  const inputs: Record<string, [number, number]> = {};
  for (const file of [...Object.keys(result.metafile.inputs), 'package-lock.json']) {
    const stat = fs.statSync(path.join(ROOT, file));
    inputs[file] = [stat.mtimeMs, stat.size];
  }
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({ node: process.versions.node, inputs }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildBundles({ verbose: process.argv.includes('--verbose') });
}
