/**
 * The hashing ceiling: raw argon2id verifications per second with
 * @node-rs/argon2 (what the provider uses), at the provider's parameters and
 * concurrency, in a process of its own. Bounded in time.
 *
 * Usage: node --import tsx test/bench/argon2-ceiling.ts MEMORY_KIB ITERATIONS PARALLELISM CONCURRENCY SECONDS
 * Prints one JSON line: {"per_s":…,"count":…,"concurrency":…,"duration_s":…,"cpu_s":…}.
 */
import { hash, verify } from '@node-rs/argon2';

const [memoryCost, timeCost, parallelism, concurrency, seconds] = process.argv.slice(2).map(Number) as [number, number, number, number, number];
const password = 'correct horse battery staple';
const stored = await hash(password, { memoryCost, timeCost, parallelism, algorithm: 2 });

// A short warm-up, then the measured run.
await Promise.all(Array.from({ length: concurrency }, () => verify(stored, password)));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
let count = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      if (!(await verify(stored, password))) throw new Error('verification failed');
      count += 1;
    }
  }),
);
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({ per_s: Math.round((count / elapsed) * 10) / 10, count, concurrency, duration_s: Math.round(elapsed * 100) / 100, cpu_s_per_hash: Math.round(((cpu.user + cpu.system) / 1e6 / count) * 100000) / 100000 })}\n`,
);
