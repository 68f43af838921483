/**
 * The PGlite data-folder lock: exclusive, a live holder refused, a stale one
 * taken over, and the takeover safe when several processes find the same
 * stale lock at once: exactly one of them ends up holding the folder, and a
 * process acting on an out-of-date view never removes a fresh lock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from '@jest/globals';
import { DataDirBusyError, DataDirLock, breakStaleLock, lockPath, readLock } from '../../src/db/data-dir-lock.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dirs: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-lock-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A pid that belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

/** The folder's files other than the lock (tickets and temporary files must not pile up). */
const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f !== 'twofold.lock');

describe('DataDirLock', () => {
  test('held: a second acquire by a live process is refused; released: the file is gone', async () => {
    const dir = tempDir();
    const lock = DataDirLock.acquire(dir);
    expect(readLock(dir)).toEqual({ pid: process.pid });
    lock.advertise(path.join(dir, 'twofold.sock'));
    expect(readLock(dir)).toEqual({ pid: process.pid, socket: path.join(dir, 'twofold.sock') });
    expect(leftovers(dir)).toEqual([]);
    lock.release();
    expect(fs.existsSync(lockPath(dir))).toBe(false);

    // A live process (our parent, the jest runner) holding it: refused, nothing touched.
    const held = JSON.stringify({ pid: process.ppid, nonce: 'theirs' });
    fs.writeFileSync(lockPath(dir), held);
    expect(() => DataDirLock.acquire(dir)).toThrow(DataDirBusyError);
    expect(fs.readFileSync(lockPath(dir), 'utf8')).toBe(held);
  });

  test('a stale lock, and an unreadable one, are taken over', async () => {
    const dir = tempDir();
    fs.writeFileSync(lockPath(dir), JSON.stringify({ pid: await deadPid(), socket: '/nowhere' }));
    const lock = DataDirLock.acquire(dir);
    expect(readLock(dir)).toEqual({ pid: process.pid });
    lock.release();
    fs.writeFileSync(lockPath(dir), '{"pid": 12');
    DataDirLock.acquire(dir).release();
    expect(leftovers(dir)).toEqual([]);
  });

  test('a breaker acting on an out-of-date view of a stale lock never removes the fresh lock that replaced it', async () => {
    const dir = tempDir();
    const stale = JSON.stringify({ pid: await deadPid() });
    fs.writeFileSync(lockPath(dir), stale);
    // A and B both read the stale lock; A takes over first…
    const a = DataDirLock.acquire(dir);
    const fresh = fs.readFileSync(lockPath(dir), 'utf8');
    // …then B, still holding its old view, tries to remove "the stale lock": it re-reads under its ticket and backs off.
    breakStaleLock(lockPath(dir), stale);
    expect(fs.readFileSync(lockPath(dir), 'utf8')).toBe(fresh);
    expect(leftovers(dir)).toEqual([]);
    a.release();
    expect(fs.existsSync(lockPath(dir))).toBe(false);
  });

  test('a breaker that died holding its ticket does not block the folder for ever', async () => {
    const dir = tempDir();
    const stale = JSON.stringify({ pid: await deadPid() });
    fs.writeFileSync(lockPath(dir), stale);
    // The ticket a breaker of this stale lock takes (named after the lock's content), left behind by a dead one.
    const ticket = `${lockPath(dir)}.break-${crypto.createHash('sha256').update(stale).digest('hex').slice(0, 32)}`;
    fs.writeFileSync(ticket, JSON.stringify({ pid: await deadPid(), nonce: 'dead-breaker' }));
    const lock = DataDirLock.acquire(dir);
    expect(readLock(dir)).toEqual({ pid: process.pid });
    expect(fs.existsSync(ticket)).toBe(false);
    lock.release();
    expect(leftovers(dir)).toEqual([]);
  });

  test('while a live process holds the ticket, nobody else removes the stale lock', async () => {
    const dir = tempDir();
    const stale = JSON.stringify({ pid: await deadPid() });
    fs.writeFileSync(lockPath(dir), stale);
    const ticket = `${lockPath(dir)}.break-${crypto.createHash('sha256').update(stale).digest('hex').slice(0, 32)}`;
    fs.writeFileSync(ticket, JSON.stringify({ pid: process.ppid, nonce: 'live-breaker' }));
    breakStaleLock(lockPath(dir), stale);
    expect(fs.readFileSync(lockPath(dir), 'utf8')).toBe(stale);
    expect(() => DataDirLock.acquire(dir)).toThrow(/could not lock/);
    expect(fs.readFileSync(lockPath(dir), 'utf8')).toBe(stale);
    fs.rmSync(ticket);
  });
});

describe('concurrent takeover of one stale lock', () => {
  const children: ChildProcess[] = [];
  afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

  /** A process that, on "go", tries to lock the folder, says held or busy, and keeps the lock until its stdin ends. */
  function contender(dir: string) {
    const script = `
      import { DataDirLock, DataDirBusyError } from ${JSON.stringify(path.join(ROOT, 'src/db/data-dir-lock.ts'))};
      process.stdin.once('data', () => {
        let lock;
        try { lock = DataDirLock.acquire(${JSON.stringify(dir)}); process.stdout.write('held\\n'); }
        catch (err) { process.stdout.write(err instanceof DataDirBusyError ? 'busy\\n' : 'error ' + err.message + '\\n'); }
        process.stdin.on('end', () => { lock?.release(); process.exit(0); });
        process.stdin.resume();
      });
      process.stdout.write('ready\\n');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
    const said = (word: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = word.exec(out);
          if (m) return resolve(m[0]);
          if (child.exitCode !== null) reject(new Error(`contender exited: ${out}`));
          else setTimeout(check, 10);
        };
        check();
      });
    return { child, said };
  }

  test.each([1, 2, 3])(
    'six processes find the same stale lock at once: exactly one holds the folder (round %i)',
    async () => {
      const dir = tempDir();
      const stale = JSON.stringify({ pid: await deadPid(), socket: path.join(dir, 'twofold.sock') });
      fs.writeFileSync(lockPath(dir), stale);
      const contenders = Array.from({ length: 6 }, () => contender(dir));
      await Promise.all(contenders.map((c) => c.said(/ready\n/)));
      for (const c of contenders) c.child.stdin!.write('go\n');
      const outcomes = await Promise.all(contenders.map((c) => c.said(/(held|busy|error [^\n]*)\n/)));
      expect(outcomes.filter((o) => o === 'held\n')).toHaveLength(1);
      expect(outcomes.filter((o) => o !== 'held\n' && o !== 'busy\n')).toEqual([]);
      const holder = contenders[outcomes.indexOf('held\n')]!;
      expect(readLock(dir)).toEqual({ pid: holder.child.pid });
      for (const c of contenders) c.child.stdin!.end();
      await Promise.all(contenders.map((c) => new Promise((resolve) => (c.child.exitCode !== null ? resolve(null) : c.child.on('exit', resolve)))));
      expect(fs.existsSync(lockPath(dir))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
    },
    60_000,
  );
});
