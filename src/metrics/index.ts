/**
 * Metrics for a running server (METRICS): the registry, the audit trail's
 * counts, the gauges, and where a scrape is answered. Nothing is built when
 * METRICS is off.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Services } from '../services.ts';
import type { DatabaseHandle } from '../db/database.ts';
import { observeAudit } from '../security/audit.ts';
import { createMetrics, type Metrics } from './registry.ts';
import { auditCounter } from './audit-counts.ts';
import { fromRegistry, startMetricsListener, type MetricsSource } from './access.ts';

export type { Metrics } from './registry.ts';
export { httpDuration } from './http-duration.ts';
export { metricsRoute, fromRegistry, startMetricsListener } from './access.ts';

export interface RunningMetrics {
  metrics: Metrics;
  /** The metrics listener's port (METRICS=listener in a single process). */
  port?: number;
  close(): Promise<void>;
}

export async function startMetrics(services: Services, handle: DatabaseHandle): Promise<RunningMetrics | undefined> {
  const { config } = services;
  if (config.METRICS === 'off') return undefined;
  const metrics = createMetrics({ hashQueue: () => services.hasher.stats, pool: handle.poolStats });
  const factorIds = new Set(services.factors.registry.all().map((r) => r.factor.id));
  const stopObserving = observeAudit(services.db, auditCounter(metrics, factorIds));
  services.metrics = metrics;
  if (cluster.isWorker) {
    // The primary asks every worker over IPC and serves the sum on its own listener (see serveClusterMetrics).
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry(); // installs the worker's answer to the primary's requests
    return { metrics, close: async () => stopObserving() };
  }
  if (config.METRICS === 'listener') {
    const listener = await startMetricsListener(fromRegistry(metrics.registry), {
      host: config.METRICS_HOST,
      port: config.METRICS_PORT,
      token: config.metricsToken,
    });
    return {
      metrics,
      port: listener.port,
      close: async () => {
        stopObserving();
        await listener.close();
      },
    };
  }
  return { metrics, close: async () => stopObserving() };
}

/** In a cluster primary (WORKERS > 1, METRICS=listener): the metrics listener, answering with every worker's metrics summed. */
export async function serveClusterMetrics(config: Services['config']): Promise<{ close(): Promise<void> } | undefined> {
  if (config.METRICS !== 'listener') return undefined;
  const aggregator = new AggregatorRegistry();
  const source: MetricsSource = { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() };
  return startMetricsListener(source, { host: config.METRICS_HOST, port: config.METRICS_PORT, token: config.metricsToken });
}
