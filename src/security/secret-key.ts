/**
 * Finds the master key for encryption at rest and keyed hashes: SECRET_KEY
 * from configuration (the environment, the config file, or SECRET_KEY_FILE,
 * which loadConfig reads and checks), or, in development only, a key
 * generated once into the data folder.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeKey, type Config } from '../config.ts';

export interface MasterKey {
  key: Buffer;
  /** Where it came from, for the start-up log. */
  source: 'config' | 'file' | 'generated' | 'data-dir';
}

export function loadMasterKey(config: Pick<Config, 'SECRET_KEY' | 'SECRET_KEY_FILE' | 'dataDir' | 'production'>): MasterKey {
  if (config.SECRET_KEY) return { key: decodeKey(config.SECRET_KEY)!, source: config.SECRET_KEY_FILE ? 'file' : 'config' };
  if (config.production) throw new Error('SECRET_KEY is required in production');
  const file = path.join(config.dataDir, 'secret.key');
  fs.mkdirSync(config.dataDir, { recursive: true });
  try {
    const existing = decodeKey(fs.readFileSync(file, 'utf8'));
    if (!existing) throw new Error(`${file} does not hold a 32-byte key; fix or remove it`);
    return { key: existing, source: 'data-dir' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = crypto.randomBytes(32);
  try {
    // 'wx': if two processes race, exactly one writes and the other reads it.
    fs.writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return { key, source: 'generated' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { key: decodeKey(fs.readFileSync(file, 'utf8'))!, source: 'data-dir' };
  }
}
