/**
 * The benchmarks' statement counter, loaded into a provider with
 * `node --import .build/bench-count-statements.mjs .build/main.js` (run.ts
 * bundles this file there first): it watches every SQL statement through
 * the database observer (src/db/observer.ts) and serves the counts on
 * 127.0.0.1:BENCH_STATS_PORT (see statement-stats.ts). Nothing of it is in
 * the provider itself.
 *
 * In a cluster (WORKERS > 1) the flag is inherited by every worker: each
 * counts its own statements and answers the primary over the cluster's IPC,
 * and the primary serves the sums.
 */
import cluster, { type Worker } from 'node:cluster';
import { observeDatabase } from '../../src/db/observer.ts';
import { StatementCounter, type StatementCounts } from './statement-counter.ts';
import { combinedSource, localSource, sampleProcess, serveStatementStats, type ProcessSample, type StatsSource } from './statement-stats.ts';

interface StatsMessage {
  twofoldStats: 'read' | 'reset';
  id: number;
}
interface StatsReply {
  twofoldStatsReply: number;
  counts: StatementCounts;
  process: ProcessSample;
}

const counter = new StatementCounter();
observeDatabase(counter.log);

if (cluster.isWorker) {
  process.on('message', (msg: StatsMessage) => {
    if (!msg || typeof msg !== 'object' || !('twofoldStats' in msg)) return;
    if (msg.twofoldStats === 'reset') counter.reset();
    process.send?.({ twofoldStatsReply: msg.id, counts: counter.snapshot(), process: sampleProcess() } satisfies StatsReply);
  });
} else {
  // Workers that serve requests; none when the provider is a single process.
  const listening = new Set<Worker>();
  cluster.on('listening', (worker) => listening.add(worker));
  cluster.on('exit', (worker) => listening.delete(worker));
  let nextId = 0;
  const ask = (worker: Worker, what: 'read' | 'reset') =>
    new Promise<StatsReply>((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        worker.off('message', onMessage);
        reject(new Error(`worker ${worker.id} did not answer`));
      }, 5000);
      const onMessage = (msg: StatsReply) => {
        if (msg?.twofoldStatsReply !== id) return;
        clearTimeout(timer);
        worker.off('message', onMessage);
        resolve(msg);
      };
      worker.on('message', onMessage);
      worker.send({ twofoldStats: what, id } satisfies StatsMessage);
    });
  const workerSource = (worker: Worker): StatsSource => ({
    read: async () => {
      const r = await ask(worker, 'read');
      return { counts: r.counts, processes: [r.process] };
    },
    reset: async () => void (await ask(worker, 'reset')),
  });
  const own = localSource(counter);
  const source: StatsSource = {
    read: () => (listening.size ? combinedSource(() => [...listening].map(workerSource), sampleProcess).read() : own.read()),
    reset: () => (listening.size ? combinedSource(() => [...listening].map(workerSource)).reset() : own.reset()),
  };
  const stats = await serveStatementStats(source, Number(process.env.BENCH_STATS_PORT ?? 0) || 0);
  // Never what keeps the provider running, nor what delays its exit.
  stats.unref();
  process.stderr.write(`bench: counting SQL statements, served on 127.0.0.1:${stats.port}\n`);
}
