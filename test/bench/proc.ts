/** Reading a process tree's CPU time and resident memory from /proc (Linux), for the provider and its ceilings alike. */
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux
const PAGE = 4096;

function stat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

function rssBytes(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE;
  } catch {
    return 0;
  }
}

/** The process and all its descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(Number(entry));
    children.set(s.ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

export interface TreeSample {
  cpuSeconds: number;
  rssBytes: number;
  pids: number;
}

export function sampleTree(root: number): TreeSample {
  const pids = processTree(root);
  let ticks = 0;
  let rss = 0;
  for (const pid of pids) {
    ticks += stat(pid)?.ticks ?? 0;
    rss += rssBytes(pid);
  }
  return { cpuSeconds: ticks / TICKS_PER_SECOND, rssBytes: rss, pids: pids.length };
}

/** CPU seconds of given processes (e.g. PostgreSQL backends), by pid. */
export function cpuByPid(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) out.set(pid, s.ticks / TICKS_PER_SECOND);
  }
  return out;
}
