/**
 * The benchmark still works: `npm run bench -- --quick` on PGlite exits 0 with
 * no errors and writes JSON with the stable keys, the durable floor's included. No figure is judged here: CI
 * proves the benchmark runs, never how fast.
 *
 * Skipped only when BENCH_SKIP=1 is set, and then it says so.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@jest/globals';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const skip = process.env.BENCH_SKIP === '1';
if (skip) process.stderr.write('Benchmark test skipped: BENCH_SKIP=1 is set\n');

(skip ? test.skip : test)(
  'npm run bench -- --quick runs on PGlite without errors and writes the stable keys',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-bench-test-'));
    const out = path.join(dir, 'bench.json');
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
    delete env.DATABASE_URL; // PGlite
    delete env.SECRET_KEY;
    const child = spawn('npm', ['run', 'bench', '--', '--quick', '--json', out], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      if (code !== 0) throw new Error(`npm run bench -- --quick exited ${code}:\n${output.slice(-4000)}`);
      const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, any>;
      for (const key of [
        'run',
        'signin_vs_ceiling',
        'refresh_vs_bare',
        'durable_signin_ceiling',
        'signin_vs_durable_ceiling',
        'durable_bare_refresh',
        'refresh_vs_durable_bare',
        'signin',
        'ceilings',
        'refresh',
        'totp_step',
        'memory',
        'ready_ms',
        'statements',
        'overload',
        'targets',
        'meets',
        'errors_total',
      ]) {
        expect(report).toHaveProperty(key);
      }
      expect(report.errors_total).toBe(0);
      expect(report.run).toMatchObject({ database: 'pglite', quick: true, cores: os.availableParallelism() });
      expect(typeof report.signin_vs_ceiling).toBe('number');
      expect(typeof report.refresh_vs_bare).toBe('number');
      expect(report.signin.errors).toBe(0);
      expect(report.overload.errors).toBe(0);
      expect(report.statements.per_signin).toBeGreaterThan(0);
      expect(report.statements.per_refresh).toBeGreaterThan(0);
      // The durable floor: the bare library on its own PGlite, its statements counted beside Twofold's.
      for (const key of ['durable_signin_ceiling', 'signin_vs_durable_ceiling', 'durable_bare_refresh', 'refresh_vs_durable_bare'])
        expect(typeof report[key]).toBe('number');
      expect(report.ceilings.durable_store).toBe('pglite');
      expect(report.statements.durable_bare.per_signin).toBeGreaterThan(0);
      expect(report.statements.durable_bare.per_refresh).toBeGreaterThan(0);
      for (const key of ['concurrency', 'duration_s', 'database', 'cores']) expect(report.signin).toHaveProperty(key);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  // Generous: on a loaded 2-core machine the quick run alone takes a minute or two.
  600_000,
);
