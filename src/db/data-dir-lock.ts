/**
 * PGlite is single-process: two processes opening one data folder would
 * corrupt it. Whoever opens it (the provider or a CLI run) holds this lock
 * file; a stale lock (its process gone) is taken over.
 */
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

export function readLock(dataDir: string): LockInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
    return typeof info.pid === 'number' && alive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

export class DataDirLock {
  readonly #file: string;
  #held = false;

  private constructor(file: string) {
    this.#file = file;
  }

  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = lockPath(dataDir);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(file, JSON.stringify({ pid: process.pid }), { flag: 'wx', mode: 0o600 });
        const lock = new DataDirLock(file);
        lock.#held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = readLock(dataDir);
        if (holder && holder.pid !== process.pid) throw new DataDirBusyError(dataDir, holder.pid);
        // Stale: its process is gone. Remove and try again.
        fs.rmSync(file, { force: true });
      }
    }
    throw new Error(`could not lock ${dataDir}`);
  }

  /** Records the admin socket so CLI runs can reach this process. */
  advertise(socket: string): void {
    fs.writeFileSync(this.#file, JSON.stringify({ pid: process.pid, socket }), { mode: 0o600 });
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    fs.rmSync(this.#file, { force: true });
  }
}
