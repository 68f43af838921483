/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof DIR`): where
 * the provider's main thread spent its time, by package or source file (self
 * time) and by function (self and inclusive).
 *
 * Usage: node --import tsx test/bench/profile-summary.ts FILE.cpuprofile [--per N] [--from S] [--to S] [--top 25]
 *   --per N: also divide by N operations (e.g. the sign-ins measured) to print ms per operation.
 *   --from S, --to S: only samples from S seconds after the profile began (skip start-up and warm-up), and up to S.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { per: { type: 'string' }, top: { type: 'string', default: '25' }, from: { type: 'string' }, to: { type: 'string' } },
});
const file = positionals[0];
if (!file) {
  process.stderr.write('usage: profile-summary.ts FILE.cpuprofile [--per N] [--top 25]\n');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const per = values.per ? Number(values.per) : undefined;
const top = Number(values.top);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const fromUs = Number(values.from ?? 0) * 1e6;
const toUs = values.to === undefined ? Infinity : Number(values.to) * 1e6;
const self = new Map<number, number>();
let at = 0;
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i] ?? 0;
  if (at < fromUs || at > toUs) continue;
  self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const totalUs = [...self.values()].reduce((a, b) => a + b, 0);

function category(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : `(native) ${functionName || 'anonymous'}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url;
  const rel = /\/work\/[^/]+\/(.*)$/.exec(url)?.[1] ?? url.replace(/^file:\/\//, '');
  return rel;
}

const key = (f: CallFrame) => `${f.functionName || '(anonymous)'} ${category(f)}:${f.lineNumber + 1}`;

const byCategory = new Map<string, number>();
const bySelf = new Map<string, number>();
for (const [id, us] of self) {
  const frame = byId.get(id)!.callFrame;
  byCategory.set(category(frame), (byCategory.get(category(frame)) ?? 0) + us);
  bySelf.set(key(frame), (bySelf.get(key(frame)) ?? 0) + us);
}

// Inclusive: each sample counts once for every distinct function on its stack.
const inclusive = new Map<string, number>();
const inclusiveCat = new Map<string, number>();
for (const [id, us] of self) {
  const seen = new Set<string>();
  const seenCat = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const frame = byId.get(cur)!.callFrame;
    const k = key(frame);
    if (!seen.has(k)) {
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
    const c = category(frame);
    if (!seenCat.has(c)) {
      seenCat.add(c);
      inclusiveCat.set(c, (inclusiveCat.get(c) ?? 0) + us);
    }
  }
}

const fmt = (us: number) => {
  const pct = ((us / totalUs) * 100).toFixed(1).padStart(5);
  const ms = (us / 1000).toFixed(0).padStart(7);
  return `${pct}% ${ms} ms${per ? ` ${(us / 1000 / per).toFixed(2).padStart(7)} ms/op` : ''}`;
};
const print = (title: string, map: Map<string, number>, n = top) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`  ${fmt(us)}  ${k}\n`);
};

const wall = (profile.endTime - profile.startTime) / 1000;
process.stdout.write(
  `${file}\nsampled ${(totalUs / 1000).toFixed(0)} ms over ${wall.toFixed(0)} ms of wall time (idle included as "(idle)")${per ? `, ${per} operations` : ''}\n`,
);
print('self time by package / file', byCategory);
print('inclusive time by package / file', inclusiveCat);
print('self time by function', bySelf);
print('inclusive time by function', inclusive, top * 2);
