/**
 * `npm start`: load configuration, open the database, migrate, build the
 * app, listen, and shut down gracefully on SIGTERM/SIGINT.
 *
 * With WORKERS > 1 (PostgreSQL only) this process becomes a node:cluster
 * primary that runs WORKERS provider processes sharing the port; every piece
 * of sign-in state is in the database, so any worker can serve any request.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { DataDirBusyError } from './db/data-dir-lock.ts';
import { openStorage, StartupError } from './db/storage.ts';
import { applyLogLevel, flushLog, logger } from './logger.ts';

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

  // PGlite boots (about half of start-up, much of it off the main thread) while the provider's modules load.
  const storage = openStorage(config);
  storage.catch(() => {}); // reported where startServer awaits it
  const { startServer } = await import('./server.ts');
  const running = await startServer(config, { storage });
  const { opened } = running;
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
    running
      .close()
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
    Promise.all([
      ...workers.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : (w.once('exit', () => resolve()), w.process.kill('SIGTERM'))))),
      metrics?.close(),
    ]).then(() => {
      clearTimeout(killTimer);
      process.exit(exitCode);
    });
  };
  process.on('SIGTERM', () => stopAll(0));
  process.on('SIGINT', () => stopAll(0));

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
