/**
 * PGlite is single-process: two processes opening one data folder would
 * corrupt it. Whoever opens it (the provider or a CLI run) holds this lock
 * file; a stale lock (its process gone) is taken over.
 *
 * Every step that decides who holds the folder is atomic on the filesystem:
 * - A lock is made complete in a temporary file and then hard-linked to
 *   `twofold.lock`, which fails if the name exists (exclusive create, and no
 *   reader ever sees half a lock). Rewrites (advertise) rename a complete file
 *   over it.
 * - Taking over a stale lock must not remove a lock someone else has just
 *   taken. Two processes that both saw the same stale lock would otherwise each
 *   delete "it" (the second deleting the first one's fresh lock) and both open
 *   the folder. So removing a stale lock needs a ticket, `twofold.lock.break-<h>`
 *   where h identifies that exact lock (a hash of its content, which carries a
 *   random nonce), created exclusively; under the ticket the lock is re-read and
 *   removed only if it is still that stale lock. One lock, one breaker at a
 *   time; a slow process holding an old view re-reads, sees the new lock, and
 *   backs off. A breaker that died holding its ticket leaves a stale ticket,
 *   taken over the same way.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export class DataDirBusyError extends Error {
  readonly pid: number;
  constructor(dir: string, pid: number) {
    super(`the data folder ${dir} is in use by process ${pid}`);
    this.pid = pid;
  }
}

export interface LockInfo {
  pid: number;
  /** The local admin socket, when the holder is a running provider. */
  socket?: string;
}

interface LockContent extends LockInfo {
  /** Makes each lock's content unique, so a stale one can be told from a fresh one of the same pid. */
  nonce?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockPath(dataDir: string): string {
  return path.join(dataDir, 'twofold.lock');
}

function readRaw(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parse(raw: string): LockContent | undefined {
  try {
    const info = JSON.parse(raw) as LockContent;
    return typeof info?.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the content names a live process other than this one (a lock of our own pid is from an earlier life, e.g. pid 1 in a container). */
function heldByOther(info: LockContent | undefined): info is LockContent {
  return !!info && info.pid !== process.pid && alive(info.pid);
}

export function readLock(dataDir: string): LockInfo | undefined {
  const raw = readRaw(lockPath(dataDir));
  const info = raw === undefined ? undefined : parse(raw);
  return info && alive(info.pid) ? { pid: info.pid, ...(info.socket ? { socket: info.socket } : {}) } : undefined;
}

function tempName(file: string): string {
  return `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
}

/** Creates `file` holding `content`, complete, only if no such name exists. */
function createExclusive(file: string, content: string): boolean {
  const temp = tempName(file);
  fs.writeFileSync(temp, content, { mode: 0o600 });
  try {
    fs.linkSync(temp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  // A filesystem without hard links: still exclusive, only the content lands a moment later.
  try {
    fs.writeFileSync(file, content, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Removes `file` if, and only if, it still holds `stale`, the content of a
 * lock whose process is gone (or a dead breaker's ticket). Safe to call with
 * an out-of-date view: it never removes anything else. Returns without
 * removing when another live process is breaking the same lock.
 */
export function breakStaleLock(file: string, stale: string, depth = 0): void {
  const ticket = `${file}.break-${crypto.createHash('sha256').update(stale).digest('hex').slice(0, 32)}`;
  const mine = JSON.stringify({ pid: process.pid, nonce: crypto.randomBytes(12).toString('base64url') } satisfies LockContent);
  if (!createExclusive(ticket, mine)) {
    const other = readRaw(ticket);
    if (other === undefined) return; // its breaker just finished
    if (heldByOther(parse(other))) {
      pause(20); // a live process is breaking this lock right now
      return;
    }
    // Its breaker died holding the ticket: break the ticket first, the same way (bounded, in case of a pathological pile).
    if (depth < 8) breakStaleLock(ticket, other, depth + 1);
    return;
  }
  try {
    if (readRaw(file) === stale) fs.rmSync(file, { force: true });
  } finally {
    // Conditional like everything else: only our own ticket.
    if (readRaw(ticket) === mine) fs.rmSync(ticket, { force: true });
  }
}

export class DataDirLock {
  readonly #file: string;
  #content: string;
  #held = false;

  private constructor(file: string, content: string) {
    this.#file = file;
    this.#content = content;
  }

  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = lockPath(dataDir);
    const content = JSON.stringify({ pid: process.pid, nonce: crypto.randomBytes(12).toString('base64url') } satisfies LockContent);
    for (let attempt = 0; attempt < 50; attempt++) {
      if (createExclusive(file, content)) {
        const lock = new DataDirLock(file, content);
        lock.#held = true;
        return lock;
      }
      const current = readRaw(file);
      if (current === undefined) continue; // released meanwhile: try again
      const info = parse(current);
      if (heldByOther(info)) throw new DataDirBusyError(dataDir, info.pid);
      // Stale (its process is gone) or unreadable (left half-written by an older version): take it over.
      breakStaleLock(file, current);
    }
    throw new Error(`could not lock ${dataDir}`);
  }

  /** Records the admin socket so CLI runs can reach this process. */
  advertise(socket: string): void {
    const info = JSON.parse(this.#content) as LockContent;
    const content = JSON.stringify({ ...info, socket } satisfies LockContent);
    // Complete or not at all: a reader never sees a half-written lock (it would look stale).
    const temp = tempName(this.#file);
    fs.writeFileSync(temp, content, { mode: 0o600 });
    fs.renameSync(temp, this.#file);
    this.#content = content;
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    // Only our own lock: never one that (against every rule above) replaced it.
    if (readRaw(this.#file) === this.#content) fs.rmSync(this.#file, { force: true });
  }
}
