/**
 * A running provider: services opened, keys ensured, the HTTP server
 * listening, background jobs scheduled. `main.ts` runs one for `npm start`;
 * tests run several in one process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.ts';
import { openServices, StartupError, type OpenServicesOptions, type Opened } from './bootstrap.ts';
import { ensureKeys } from './oidc/keys.ts';
import { ProviderHolder } from './oidc/provider-holder.ts';
import { purgeExpired } from './oidc/adapter.ts';
import { BackchannelDelivery } from './oidc/backchannel-logout.ts';
import { endExpiredSessions, notifySessionsEnded } from './accounts/end-sessions.ts';
import { buildApp } from './app.ts';
import { logger } from './logger.ts';
import { SealError } from './security/sealer.ts';
import { startAdminSocket, type AdminSocket } from './cli/admin-socket.ts';
import { startMetrics, type RunningMetrics } from './metrics/index.ts';
import { reportFactors } from './mfa/factor-report.ts';

/** The part of a shutdown's time that requests in flight may use: 80 %, so closing the database has the rest. */
export function drainMs(shutdownTimeoutSeconds: number): number {
  return Math.floor(shutdownTimeoutSeconds * 1000 * 0.8);
}

export interface RunningServer {
  url: string;
  port: number;
  opened: Opened;
  holder: ProviderHolder;
  /** The metrics listener's port (METRICS=listener, one process). */
  metricsPort?: number;
  close(): Promise<void>;
}

export interface StartOptions extends OpenServicesOptions {
  /** Serve CLI runs over a unix socket in the data folder (PGlite only). Default: true when this process holds the data folder. */
  adminSocket?: boolean;
  /** How often to look for rotated keys, in ms. */
  keyPollMs?: number;
  /** How often to look for due back-channel logout notices, in ms. */
  backchannelPollMs?: number;
}

/** Expired sessions first, so the apps they had signed in to hear of the ending (back-channel logout); then the rest. */
export async function purgeSessionsThenRest(services: RunningServer['opened']['services']): Promise<void> {
  for (const [accountId, ended] of await endExpiredSessions(services.db)) await notifySessionsEnded(services, accountId, ended, 'expired');
  await purgeExpired(services.db);
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const started = performance.now();
  const opened = await openServices(config, options);
  const { services } = opened;
  opened.handle.health.onChange = (outage) =>
    outage.ended
      ? logger.warn({ began: outage.began, ended: outage.ended, cause: outage.cause }, 'database reachable again')
      : logger.error({ began: outage.began, cause: outage.cause }, 'database unreachable: answering 503 until it is back');
  let server: http.Server | undefined;
  let admin: AdminSocket | undefined;
  let purgeTimer: NodeJS.Timeout | undefined;
  let holder: ProviderHolder | undefined;
  let backchannel: BackchannelDelivery | undefined;
  let metrics: RunningMetrics | undefined;
  try {
    await reportFactors(services.db, services.factors.registry, logger);
    // Before the app is built: it times requests into the registry and, with a token, serves it.
    metrics = await startMetrics(services, opened.handle);
    try {
      // The dummy hash first, so an unknown login costs one verification like any other, from the first request on.
      await Promise.all([ensureKeys(services.db, services.sealer), services.hasher.prepare()]);
      holder = await ProviderHolder.create(services);
    } catch (err) {
      if (err instanceof SealError) {
        throw new StartupError('SECRET_KEY does not match the key that encrypted the stored signing keys (was it changed?)');
      }
      throw err;
    }
    holder.startPolling(options.keyPollMs ?? 30_000);
    const h0 = holder;
    if (services.config.BACKCHANNEL_LOGOUT) {
      backchannel = new BackchannelDelivery(services, () => h0.current);
      services.backchannel = backchannel;
      // Retries, and notices queued where no provider runs (a CLI run), are found by looking every few seconds.
      backchannel.start(options.backchannelPollMs ?? 5_000);
    }
    const { app, setShuttingDown } = buildApp(services, holder);
    server = http.createServer(app.callback());
    // Slow clients must not hold sockets for ever.
    server.headersTimeout = 20_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
    const srv = server;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      if (config.HOST) srv.listen(config.PORT, config.HOST, resolve);
      else srv.listen(config.PORT, resolve);
    });
    const port = (srv.address() as AddressInfo).port;
    // Ready first; a moment later (so readiness probes are not kept waiting behind it) whatever a
    // factor loads lazily (the WebAuthn library), usually before the first sign-in needs it.
    setTimeout(() => {
      for (const { factor } of services.factors.registry.all()) {
        factor.warmUp?.().catch((err: unknown) => logger.warn({ err, factor: factor.id }, 'factor warm-up failed'));
      }
    }, 1000).unref();

    if (opened.lock && options.adminSocket !== false) {
      admin = await startAdminSocket(services, config.dataDir);
      if (admin) opened.lock.advertise(admin.path);
    }
    if (config.PURGE_INTERVAL > 0) {
      purgeTimer = setInterval(() => {
        purgeSessionsThenRest(services).catch((err) => logger.warn({ err }, 'purge failed'));
      }, config.PURGE_INTERVAL * 1000);
      purgeTimer.unref();
    }

    let closing: Promise<void> | undefined;
    const h = holder;
    const delivery = backchannel;
    const metricsRun = metrics;
    const close = () =>
      (closing ??= (async () => {
        setShuttingDown();
        h.stop();
        if (purgeTimer) clearInterval(purgeTimer);
        await delivery?.stop();
        await admin?.close();
        await metricsRun?.close();
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          // Idle keep-alive sockets would hold close() open.
          srv.closeIdleConnections();
          // Requests in flight get most of SHUTDOWN_TIMEOUT; then their connections are cut (a slow client, a
          // request waiting on a database that does not answer), leaving the rest to close the database.
          setTimeout(() => srv.closeAllConnections(), drainMs(config.SHUTDOWN_TIMEOUT)).unref();
        });
        await opened.close();
      })());
    logger.debug({ ms: Math.round(performance.now() - started) }, 'started');
    return { url: config.ISSUER, port, opened, holder: h, ...(metrics?.port !== undefined ? { metricsPort: metrics.port } : {}), close };
  } catch (err) {
    holder?.stop();
    await backchannel?.stop();
    if (purgeTimer) clearInterval(purgeTimer);
    await admin?.close();
    await metrics?.close();
    server?.close();
    await opened.close();
    throw err;
  }
}
