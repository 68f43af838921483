/**
 * The provider's metrics: one prom-client registry per running server (never
 * prom-client's global one, so several servers in one process, as in the tests,
 * keep their own counts). Labels are small fixed sets: never an account, a
 * login, a client id or an address (cardinality, and the privacy of the people
 * signing in).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the gauges read when Prometheus scrapes: current values, not counts kept by hand. */
export interface GaugeSources {
  /** The password hasher's limiter: hashes running and waiting for a slot. */
  hashQueue(): { active: number; waiting: number };
  /** The PostgreSQL pool; absent on PGlite (one in-process connection, nothing to pool). */
  pool?: () => { total: number; idle: number; waiting: number };
}

export interface Metrics {
  registry: Registry;
  signIns: Counter<'method' | 'result'>;
  factorVerifications: Counter<'factor' | 'result'>;
  lockouts: Counter<'kind'>;
  codesSent: Counter<'channel'>;
  deliveryFailures: Counter<'channel' | 'kind'>;
  enrollments: Counter<'factor'>;
  removals: Counter<'factor'>;
  httpDuration: Histogram<'route' | 'method' | 'status'>;
}

export function createMetrics(sources: GaugeSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics: Metrics = {
    registry,
    signIns: new Counter({
      name: 'twofold_sign_ins_total',
      help: 'First sign-in steps (a password, or a passkey used alone), by method and result (success, failure, throttled, not_allowed).',
      labelNames: ['method', 'result'],
      registers,
    }),
    factorVerifications: new Counter({
      name: 'twofold_factor_verifications_total',
      help: 'Second-factor verifications, by factor and result (success, or the failure reason).',
      labelNames: ['factor', 'result'],
      registers,
    }),
    lockouts: new Counter({
      name: 'twofold_lockouts_total',
      help: 'Attempts refused by a throttle, by kind (password, factor, code_send).',
      labelNames: ['kind'],
      registers,
    }),
    codesSent: new Counter({ name: 'twofold_codes_sent_total', help: 'One-time codes delivered, by channel.', labelNames: ['channel'], registers }),
    deliveryFailures: new Counter({
      name: 'twofold_code_delivery_failures_total',
      help: 'One-time codes that could not be delivered, by channel and kind (timeout, rejected, unreachable).',
      labelNames: ['channel', 'kind'],
      registers,
    }),
    enrollments: new Counter({ name: 'twofold_factor_enrollments_total', help: 'Second factors enrolled, by factor.', labelNames: ['factor'], registers }),
    removals: new Counter({
      name: 'twofold_factor_removals_total',
      help: 'Second-factor credentials removed, by factor (`all` for those removed by a reset of an account).',
      labelNames: ['factor'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'twofold_http_request_duration_seconds',
      help: 'HTTP request durations, by route name (never the raw path), method and status class.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
  new Gauge({
    name: 'twofold_password_hash_active',
    help: 'Password hashes running now.',
    registers,
    collect() {
      this.set(sources.hashQueue().active);
    },
  });
  new Gauge({
    name: 'twofold_password_hash_queue_depth',
    help: 'Password hashes waiting for a slot (beyond HASH_QUEUE_LIMIT the provider answers 503).',
    registers,
    collect() {
      this.set(sources.hashQueue().waiting);
    },
  });
  const pool = sources.pool;
  if (pool) {
    new Gauge({
      name: 'twofold_db_pool_connections',
      help: 'PostgreSQL pool connections, by state (total, idle).',
      labelNames: ['state'],
      registers,
      collect() {
        const p = pool();
        this.set({ state: 'total' }, p.total);
        this.set({ state: 'idle' }, p.idle);
      },
    });
    new Gauge({
      name: 'twofold_db_pool_waiting',
      help: 'Queries waiting for a free PostgreSQL pool connection.',
      registers,
      collect() {
        this.set(pool().waiting);
      },
    });
  }
  return metrics;
}
