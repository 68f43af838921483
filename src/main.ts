/**
 * `npm start`: load configuration, open the database, migrate, build the
 * app, listen, and shut down gracefully on SIGTERM/SIGINT.
 *
 * With WORKERS > 1 (PostgreSQL only) this process becomes a node:cluster
 * primary that runs WORKERS provider processes sharing the port; every piece
 * of sign-in state is in the database, so any worker can serve any request.
 *
 * With BENCH_COUNT_STATEMENTS=1 (benchmarks only; off by default) every SQL
 * statement is counted and the counts are served on 127.0.0.1 (see
 * src/db/statement-stats.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { DataDirBusyError } from './db/data-dir-lock.ts';
import { openStorage, StartupError } from './db/storage.ts';
import { applyLogLevel, flushLog, logger } from './logger.ts';
import { StatementCounter, type StatementCounts } from './db/statement-counter.ts';
import { combinedSource, countingRequested, localSource, sampleProcess, serveStatementStats, type ProcessSample, type StatsSource } from './db/statement-stats.ts';

const statsPort = () => Number(process.env.BENCH_STATS_PORT ?? 0) || 0;

interface StatsMessage {
  twofoldStats: 'read' | 'reset';
  id: number;
}
interface StatsReply {
  twofoldStatsReply: number;
  counts?: StatementCounts;
  process?: ProcessSample;
}

/** One provider process: the whole of `npm start`, or one worker of a cluster. */
async function runProvider(config: Config): Promise<void> {
  // Signals are heard from the first moment: the server answers /readyz before startServer has returned, so a
  // SIGTERM sent then must not meet Node's default (an abrupt exit with PGlite's files open). One that arrives
  // while starting is kept, and the provider shuts down gracefully as soon as it is up.
  let stopNow: ((signal: string) => void) | undefined;
  let stopAsked: string | undefined;
  let signalledAt: number | undefined;
  const onStop = (signal: string) => {
    if (signalledAt === undefined) {
      signalledAt = Date.now();
      // The hard deadline, from the first signal: whatever is still running then (a start-up waiting for the
      // database, a request on a database that does not answer, a client that never reads), the process exits.
      // Never unref'd: it is the last word.
      setTimeout(() => {
        logger.error({ timeoutSeconds: config.SHUTDOWN_TIMEOUT }, 'shutdown did not finish within SHUTDOWN_TIMEOUT; exiting anyway');
        process.exit(1);
      }, config.SHUTDOWN_TIMEOUT * 1000);
    }
    if (stopNow) return stopNow(signal);
    // A second signal while still starting: do not wait for the start.
    if (stopAsked) process.exit(1);
    stopAsked = signal;
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  // A worker whose primary went away stops too.
  if (cluster.isWorker) process.on('disconnect', () => onStop('disconnect'));

  const counter = countingRequested() ? new StatementCounter() : undefined;
  const log = counter ? { log: counter.log } : {};
  // PGlite boots (about half of start-up, much of it off the main thread) while the provider's modules load.
  const storage = openStorage(config, log);
  storage.catch(() => {}); // reported where startServer awaits it
  const { startServer } = await import('./server.ts');
  const running = await startServer(config, { ...log, storage });
  const { opened } = running;
  let stats: Awaited<ReturnType<typeof serveStatementStats>> | undefined;
  if (counter && cluster.isWorker) {
    // The primary serves the counts and asks each worker for its own.
    process.on('message', (msg: StatsMessage) => {
      if (!msg || typeof msg !== 'object' || !('twofoldStats' in msg)) return;
      if (msg.twofoldStats === 'reset') counter.reset();
      const reply: StatsReply = { twofoldStatsReply: msg.id, counts: counter.snapshot(), process: sampleProcess() };
      process.send?.(reply);
    });
  } else if (counter) {
    stats = await serveStatementStats(localSource(counter), statsPort());
    logger.warn({ port: stats.port }, 'BENCH_COUNT_STATEMENTS: counting SQL statements, served on 127.0.0.1 (benchmarks only)');
  }
  const db = config.DATABASE_URL ? 'PostgreSQL' : `PGlite in ${config.dataDir}`;
  logger.info(
    {
      issuer: config.ISSUER,
      // From process start: the figure to watch when start-up gets slower.
      startedInMs: Math.round(process.uptime() * 1000),
      discovery: `${config.ISSUER}/.well-known/openid-configuration`,
      database: db,
      port: running.port,
      migrated: opened.migrated,
      secretKey: opened.keySource,
      ...(cluster.isWorker ? { worker: cluster.worker?.id } : {}),
    },
    'Twofold is ready',
  );
  if (opened.keySource === 'generated') {
    logger.warn(`generated a development SECRET_KEY in ${config.dataDir}/secret.key; set SECRET_KEY in production`);
  }
  if (!cluster.isWorker) {
    logger.info(
      "next: add a user with `printf '%s' 'a long password' | npx twofold user add alice --email alice@example.com --password-stdin` " +
        'and an app with `npx twofold client add my-app --redirect-uri http://localhost:8080/callback`',
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // Asked again while draining: the operator (or the orchestrator) wants it gone now.
      logger.warn({ signal }, 'second stop signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    const deadline = (signalledAt ?? Date.now()) + config.SHUTDOWN_TIMEOUT * 1000;
    logger.info({ signal, timeoutSeconds: config.SHUTDOWN_TIMEOUT }, 'shutting down');
    Promise.all([running.close(), stats?.close()])
      .then(
        () => 0,
        (err) => {
          logger.error({ err }, 'unclean shutdown');
          return 1;
        },
      )
      // The last lines out if stdout takes them in the time left; a blocked log never holds the exit.
      .then((code) => flushLog(Math.max(0, deadline - Date.now() - 100)).then(() => process.exit(code)));
  };
  stopNow = stop;
  if (stopAsked) stop(stopAsked);
}

/** The cluster primary: forks the workers, replaces a crashed one, stops them all on SIGTERM. */
async function runPrimary(config: Config): Promise<void> {
  const count = config.WORKERS;
  const env: Record<string, string> = {};
  // The hashing budget is the machine's: share the default among the workers.
  if (process.env.HASH_CONCURRENCY === undefined && config.HASH_CONCURRENCY === Math.max(1, os.availableParallelism())) {
    env.HASH_CONCURRENCY = String(Math.max(1, Math.ceil(os.availableParallelism() / count)));
  }
  let stopping = false;
  let anyListening = false;
  const listening = new Set<Worker>();

  const fork = () => {
    const worker = cluster.fork(env);
    worker.on('listening', () => {
      anyListening = true;
      listening.add(worker);
    });
    worker.on('exit', (code, signal) => {
      listening.delete(worker);
      if (stopping) return;
      if (!anyListening) {
        // It could not even start (configuration, database): starting more would fail the same way.
        logger.fatal({ worker: worker.id, code, signal }, 'worker could not start');
        stopAll(code || 1);
        return;
      }
      logger.error({ worker: worker.id, code, signal }, 'worker exited; starting another');
      setTimeout(fork, 1000).unref();
    });
  };

  let stats: Awaited<ReturnType<typeof serveStatementStats>> | undefined;
  let metrics: { close(): Promise<void> } | undefined;
  const alive = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
  const stopAll = (exitCode = 0) => {
    if (stopping) {
      // A second signal: no more waiting for the workers.
      logger.warn('second stop signal: stopping the workers now');
      alive().forEach((w) => w.process.kill('SIGKILL'));
      process.exit(exitCode || 1);
    }
    stopping = true;
    logger.info({ workers: Object.keys(cluster.workers ?? {}).length }, 'shutting down workers');
    const workers = alive();
    // Each worker keeps its own SHUTDOWN_TIMEOUT; a second longer, and the primary stops waiting.
    const killTimer = setTimeout(() => workers.forEach((w) => w.process.kill('SIGKILL')), config.SHUTDOWN_TIMEOUT * 1000 + 1000);
    killTimer.unref();
    Promise.all([...workers.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : (w.once('exit', () => resolve()), w.process.kill('SIGTERM'))))), stats?.close(), metrics?.close()]).then(() => {
      clearTimeout(killTimer);
      process.exit(exitCode);
    });
  };
  process.on('SIGTERM', () => stopAll(0));
  process.on('SIGINT', () => stopAll(0));

  if (countingRequested()) {
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
        return { counts: r.counts!, processes: [r.process!] };
      },
      reset: async () => void (await ask(worker, 'reset')),
    });
    stats = await serveStatementStats(
      combinedSource(() => [...listening].map(workerSource), sampleProcess),
      statsPort(),
    );
    logger.warn({ port: stats.port }, 'BENCH_COUNT_STATEMENTS: counting SQL statements, served on 127.0.0.1 (benchmarks only)');
  }

  // METRICS=listener: a scrape of the primary asks every worker (prom-client's AggregatorRegistry) and gets the sums.
  if (config.METRICS === 'listener') {
    const { serveClusterMetrics } = await import('./metrics/index.ts');
    metrics = await serveClusterMetrics(config);
  }

  logger.info({ workers: count, hashConcurrencyPerWorker: Number(env.HASH_CONCURRENCY ?? config.HASH_CONCURRENCY) }, 'starting workers');
  for (let i = 0; i < count; i++) fork();
}

async function main(): Promise<void> {
  const config = loadConfig();
  // The configured level, which the config file may set (the logger started from the environment alone).
  applyLogLevel(config.LOG_LEVEL);
  if (config.WORKERS > 1) {
    if (!config.DATABASE_URL) {
      throw new ConfigError('Invalid configuration: WORKERS: more than one process needs DATABASE_URL (PGlite allows one process per data folder)');
    }
    if (cluster.isPrimary) return runPrimary(config);
  }
  return runProvider(config);
}

main().catch((err) => {
  if (err instanceof ConfigError || err instanceof StartupError || err instanceof DataDirBusyError) {
    process.stderr.write(`twofold: ${err.message}\n`);
    process.exit(2);
  }
  logger.fatal({ err }, 'could not start');
  process.exit(1);
});
