/** Starts a real provider on a free localhost port, on a given test database. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config.ts';
import { startServer, type RunningServer, type StartOptions } from '../../src/server.ts';
import type { DatabaseHandle } from '../../src/db/database.ts';
import { freePort } from './ports.ts';

export { freePort };

export const TEST_SECRET_KEY = crypto.randomBytes(32).toString('hex');

/**
 * FACTOR_SETTINGS as the test gave them, with backup codes not offered again at sign-in unless the test says so:
 * most tests seed an authenticator without codes and follow the sign-in to the app; the offer has tests of its own
 * (test/e2e/account-center.test.ts).
 */
export function factorSettings(given: string | undefined): string {
  const settings = given ? (JSON.parse(given) as Record<string, Record<string, unknown>>) : {};
  return JSON.stringify({ ...settings, 'backup-codes': { offerAgain: false, ...settings['backup-codes'] } });
}

export function testConfig(port: number, env: Record<string, string> = {}): Config {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-test-'));
  return loadConfig({
    PORT: String(port),
    SECRET_KEY: TEST_SECRET_KEY,
    DATA_DIR: dataDir,
    // Cheap hashes keep the suite fast; the parameters are tested on their own.
    ARGON2_MEMORY_KIB: '8192',
    ARGON2_ITERATIONS: '1',
    PURGE_INTERVAL: '0',
    ...env,
    FACTOR_SETTINGS: factorSettings(env.FACTOR_SETTINGS),
  });
}

export interface TestServer extends RunningServer {
  issuer: string;
  config: Config;
}

export async function startTestServer(
  handle: DatabaseHandle,
  env: Record<string, string> = {},
  options: Pick<StartOptions, 'clock' | 'backchannelPollMs' | 'httpTransport' | 'extraFactors'> = {},
): Promise<TestServer> {
  const port = await freePort();
  const config = testConfig(port, env);
  const running = await startServer(config, { ...options, handle, adminSocket: false, migrate: true });
  return { ...running, issuer: config.ISSUER, config };
}
