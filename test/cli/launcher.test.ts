/**
 * `npm start` and the `twofold` bin run bundles from .build/ (src/launch.js):
 * built once, reused while no input file changes, rebuilt when one does.
 */
import { describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MANIFEST = path.join(ROOT, '.build', 'manifest.json');
const run = promisify(execFile);

async function help(): Promise<string> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn' };
  const { stdout } = await run(process.execPath, ['src/twofold.js', '--help'], { cwd: ROOT, env, timeout: 60_000 });
  return stdout;
}

describe('the bundle launcher', () => {
  test('builds when needed, reuses a fresh bundle, rebuilds after a source changes', async () => {
    expect(await help()).toContain('Usage: twofold');
    const built = fs.readFileSync(MANIFEST, 'utf8');
    const builtAt = fs.statSync(MANIFEST).mtimeMs;

    // Nothing changed: the same manifest, not written again.
    expect(await help()).toContain('Usage: twofold');
    expect(fs.statSync(MANIFEST).mtimeMs).toBe(builtAt);

    // A bundled source file changes (its modification time, as an edit would): the next start rebuilds.
    const source = path.join(ROOT, 'src/cli/io.ts');
    const later = new Date(Math.max(Date.now(), fs.statSync(source).mtimeMs + 1000));
    fs.utimesSync(source, later, later);
    expect(await help()).toContain('Usage: twofold');
    const rebuilt = JSON.parse(fs.readFileSync(MANIFEST, 'utf8')) as { inputs: Record<string, [number, number]> };
    expect(fs.readFileSync(MANIFEST, 'utf8')).not.toBe(built);
    expect(rebuilt.inputs['src/cli/io.ts']![0]).toBe(fs.statSync(source).mtimeMs);
  });
});
