/**
 * Starts a bundled program (`npm start`'s provider, the `twofold` command) from
 * .build/, rebuilding the bundle first only when one of its input files changed
 * since it was built (src/build.ts records their sizes and modification times).
 * Plain JavaScript, so that the usual start loads neither tsx nor esbuild:
 * checking the manifest takes a few milliseconds, a rebuild a few seconds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = path.join(ROOT, '.build');

/** Whether .build/ holds bundles of exactly the files now on disk, made by this Node version. */
export function bundleIsFresh(entry) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(OUT_DIR, 'manifest.json'), 'utf8'));
    if (!fs.existsSync(path.join(OUT_DIR, `${entry}.js`))) return false;
  } catch {
    return false;
  }
  if (manifest.node !== process.versions.node) return false;
  for (const [file, [mtimeMs, size]] of Object.entries(manifest.inputs)) {
    try {
      const stat = fs.statSync(path.join(ROOT, file));
      if (stat.mtimeMs !== mtimeMs || stat.size !== size) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Runs .build/<entry>.js, building it first when it is missing or stale. */
export async function launch(entry) {
  if (process.env.TWOFOLD_NO_BUNDLE !== '1') {
    if (!bundleIsFresh(entry)) {
      const { register } = await import('tsx/esm/api');
      const unregister = register();
      const { buildBundles } = await import('./build.ts');
      await buildBundles();
      await unregister();
    }
    await import(pathToFileURL(path.join(OUT_DIR, `${entry}.js`)).href);
    return;
  }
  // From the sources (tsx), as `npm run dev` does.
  const { register } = await import('tsx/esm/api');
  register();
  await import(`./${entry}.ts`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await launch(process.argv[2] === 'cli' ? 'cli' : 'main');
}
