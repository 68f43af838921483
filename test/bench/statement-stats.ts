/**
 * The local-only window on the statement counter, for the benchmarks. A
 * provider started with count-statements.ts serves, on 127.0.0.1 only, at
 * BENCH_STATS_PORT (0 or unset: a free port, logged):
 *
 *   GET  /statements        → { counts, processes: [{ pid, rss, cpuUserUs, cpuSystemUs }] }
 *   POST /statements/reset  → 204
 *
 * Nothing else. It never listens beyond loopback. In a cluster (WORKERS > 1) the primary serves it and sums its workers'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StatementCounter, sumCounts, type StatementCounts } from './statement-counter.ts';

export interface ProcessSample {
  pid: number;
  rss: number;
  cpuUserUs: number;
  cpuSystemUs: number;
}

export interface StatsSource {
  read(): Promise<{ counts: StatementCounts; processes: ProcessSample[] }>;
  reset(): Promise<void>;
}

export function sampleProcess(): ProcessSample {
  const cpu = process.cpuUsage();
  return { pid: process.pid, rss: process.memoryUsage.rss(), cpuUserUs: cpu.user, cpuSystemUs: cpu.system };
}

/** A source over one in-process counter. */
export function localSource(counter: StatementCounter): StatsSource {
  return {
    read: async () => ({ counts: counter.snapshot(), processes: [sampleProcess()] }),
    reset: async () => counter.reset(),
  };
}

/** Sums several sources (the workers of a cluster, plus the primary's own process sample). */
export function combinedSource(parts: () => StatsSource[], own?: () => ProcessSample): StatsSource {
  return {
    async read() {
      const all = await Promise.all(parts().map((p) => p.read()));
      return { counts: sumCounts(all.map((a) => a.counts)), processes: [...(own ? [own()] : []), ...all.flatMap((a) => a.processes)] };
    },
    async reset() {
      await Promise.all(parts().map((p) => p.reset()));
    },
  };
}

function isLoopback(address: string | undefined): boolean {
  return !!address && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

/** Serves the counts on 127.0.0.1. Resolves with the port once listening. */
export async function serveStatementStats(source: StatsSource, port = 0): Promise<{ port: number; unref(): void; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const reply = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (!isLoopback(req.socket.remoteAddress)) return reply(403, { error: 'loopback only' });
    const path = (req.url ?? '').split('?')[0];
    const done = (p: Promise<unknown>, status: number) =>
      p.then(
        (body) => reply(status, body),
        (err: Error) => reply(500, { error: err.message }),
      );
    if (req.method === 'GET' && path === '/statements') return void done(source.read(), 200);
    if (req.method === 'POST' && path === '/statements/reset')
      return void done(
        source.reset().then(() => undefined),
        204,
      );
    reply(404, { error: 'not found' });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    unref: () => void server.unref(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
