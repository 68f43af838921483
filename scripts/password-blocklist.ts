/**
 * Builds src/accounts/password-blocklist.txt.gz, the list of common and
 * breached passwords that new passwords are checked against
 * (src/accounts/password-rules.ts), from a frequency-ordered source list, one
 * password a line, most common first:
 *
 *   npm run blocklist -- SOURCE.txt [COUNT]
 *
 * The list shipped was made from "10-million-password-list-top-1000000.txt"
 * (Mark Burnett's ten million passwords from public breaches, released into
 * the public domain, as published by SecLists, MIT). Each entry is normalised
 * as a new password is (NFKC, lower case); entries shorter than the shortest
 * password Twofold accepts are left out (the length rule already refuses
 * them), and so are duplicates; the COUNT (default 200,000) most common that
 * remain are kept, sorted by their UTF-8 bytes so that the checker can
 * binary-search the file as it is, without a copy per entry in memory.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { blocklistForm, MIN_LENGTH } from '../src/accounts/password-rules.ts';

export const BLOCKLIST_PATH = fileURLToPath(new URL('../src/accounts/password-blocklist.txt.gz', import.meta.url));

export function buildBlocklist(source: string, count: number): Buffer {
  const kept = new Set<string>();
  for (const line of source.split(/\r?\n/)) {
    if (kept.size >= count) break;
    const entry = blocklistForm(line.trim());
    if ([...entry].length < MIN_LENGTH || entry.includes('\n')) continue;
    kept.add(entry);
  }
  const sorted = [...kept].map((e) => Buffer.from(e, 'utf8')).sort(Buffer.compare);
  return Buffer.concat(sorted.flatMap((b) => [b, Buffer.from('\n')]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [sourcePath, countArg] = process.argv.slice(2);
  if (!sourcePath) {
    console.error('usage: npm run blocklist -- SOURCE.txt [COUNT]');
    process.exit(2);
  }
  const list = buildBlocklist(fs.readFileSync(sourcePath, 'utf8'), Number(countArg ?? 200_000));
  fs.writeFileSync(BLOCKLIST_PATH, zlib.gzipSync(list, { level: 9 }));
  console.log(`wrote ${BLOCKLIST_PATH}: ${list.toString('utf8').split('\n').length - 1} entries`);
}
