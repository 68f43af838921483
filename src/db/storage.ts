/**
 * Opens the storage a process runs on: PostgreSQL at DATABASE_URL, or PGlite
 * in the data folder under its lock. Kept apart from the rest of start-up (and
 * light to import) so that `npm start` can begin booting PGlite, about half
 * its start-up, while the provider's modules are still loading.
 */
import path from 'node:path';
import type { KyselyPlugin } from 'kysely';
import type { Config } from '../config.ts';
import { openDatabase, type DatabaseHandle } from './database.ts';
import { DataDirLock } from './data-dir-lock.ts';

export class StartupError extends Error {}

export interface Storage {
  handle: DatabaseHandle;
  /** Held while PGlite uses the data folder. */
  lock?: DataDirLock;
}

export async function openStorage(config: Config, options: { plugins?: KyselyPlugin[] } = {}): Promise<Storage> {
  const lock = config.DATABASE_URL ? undefined : DataDirLock.acquire(config.dataDir);
  try {
    const handle = await openDatabase({
      url: config.DATABASE_URL,
      pgliteDir: config.DATABASE_URL ? undefined : path.join(config.dataDir, 'pgdata'),
      poolSize: config.DATABASE_POOL_SIZE,
      plugins: options.plugins,
    });
    return { handle, lock };
  } catch (err) {
    lock?.release();
    throw new StartupError(`cannot open the database: ${(err as Error).message}`);
  }
}
