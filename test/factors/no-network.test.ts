/**
 * Factors reach the network only through the engine's `http` service (timeout,
 * size limit, audit): no factor, built in or the push example, calls fetch or
 * imports an HTTP client of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@jest/globals';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'assets' ? [] : sources(full);
    return /\.(ts|js|mjs)$/.test(e.name) ? [full] : [];
  });
}

test('no factor calls fetch or imports an HTTP client', () => {
  const files = [...sources(path.join(ROOT, 'factors')), ...sources(path.join(ROOT, 'examples'))];
  expect(files.length).toBeGreaterThan(10);
  const offenders = files.filter((file) => {
    const code = fs.readFileSync(file, 'utf8');
    return /\bfetch\s*\(|from ['"](node:)?(http|https|net|undici|axios|got|node-fetch)['"]|XMLHttpRequest/.test(code);
  });
  expect(offenders.map((f) => path.relative(ROOT, f))).toEqual([]);
});
