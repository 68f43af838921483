/**
 * The common and breached passwords new passwords may not be (password-rules.ts):
 * password-blocklist.txt.gz beside this file, made by scripts/password-blocklist.ts
 * (where its source is named). One entry a line, in the form blocklistForm()
 * gives, sorted by UTF-8 bytes.
 *
 * Read on first use, not at start: only a process that sets a password pays
 * for it (a few tens of milliseconds). Kept as the file's bytes with an index
 * of where each line starts, and searched by bisection: about 2 MB for 200,000
 * entries, where a Set of as many strings would take several times that.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const BLOCKLIST_FILE = fileURLToPath(new URL('./password-blocklist.txt.gz', import.meta.url));

interface Loaded {
  data: Buffer;
  /** Where each entry starts; one more at the end (the length of the data). */
  starts: Uint32Array;
}

let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded) return loaded;
  const data = zlib.gunzipSync(fs.readFileSync(BLOCKLIST_FILE));
  let count = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0a) count++;
  const starts = new Uint32Array(count + 1);
  let entry = 1;
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0a && entry <= count) starts[entry++] = i + 1;
  loaded = { data, starts };
  return loaded;
}

/** How many entries the shipped list holds. */
export function blocklistSize(): number {
  return load().starts.length - 1;
}

/** Whether `entry` (already in blocklistForm) is on the list. */
export function isBlocklisted(entry: string): boolean {
  const { data, starts } = load();
  const needle = Buffer.from(entry, 'utf8');
  let lo = 0;
  let hi = starts.length - 2;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    // Each entry ends one byte before the next starts (its newline).
    const order = Buffer.compare(data.subarray(starts[mid]!, starts[mid + 1]! - 1), needle);
    if (order === 0) return true;
    if (order < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
