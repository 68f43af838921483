/**
 * When PostgreSQL goes away (a restart, a failover, `pg_terminate_backend`,
 * `idle_in_transaction_session_timeout`, a network cut), every query in flight
 * fails and the pool's connections die. That is broken infrastructure, not a
 * bug: the request in flight answers 503 (a page, or `server_error` for the
 * protocol endpoints), the pool opens fresh connections as soon as the server
 * answers again, and /readyz says what happened. This module tells those
 * failures from the rest and keeps the record /readyz reports.
 */

/** SQLSTATE codes (and, below, class 08: connection exception) that mean "no usable server", not "this statement was wrong". */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown: pg_terminate_backend, or a fast shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P05', // idle_session_timeout
  '25P03', // idle_in_transaction_session_timeout
  '53300', // too_many_connections
]);

/** Socket-level errors of the driver (no server, or the connection cut). */
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

/** What `pg` says, without a code, when a connection ends under it. */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'timeout exceeded when trying to connect',
  'Client was closed and is not queryable',
];

/** Whether an error from the driver means the database cannot be reached (as opposed to a bad statement). */
export function isConnectionFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  if (err instanceof DatabaseUnavailableError) return true;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08') || UNAVAILABLE_ERRNOS.has(code))) return true;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.some((m) => message.startsWith(m));
}

/**
 * Thrown in place of the driver's error when the database cannot be reached.
 * `status`/`statusCode` 503 is what Koa and node-oidc-provider read: the
 * provider's own endpoints answer 503 `server_error` with it, and Twofold's
 * error boundary a 503 page or JSON. Not exposed: the cause stays in the log.
 */
export class DatabaseUnavailableError extends Error {
  readonly status = 503;
  readonly statusCode = 503;
  readonly expose = false;
  /** The driver's code (SQLSTATE or errno), for the log. */
  readonly code: string | undefined;
  constructor(cause: unknown) {
    super(`database unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'DatabaseUnavailableError';
    const code = (cause as { code?: unknown })?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** An outage as /readyz reports it: when the first failure was seen and, once over, when the database answered again. */
export interface Outage {
  began: Date;
  ended?: Date;
  /** The first failure's code or message. */
  cause: string;
}

/**
 * The database's availability as this process saw it: an outage begins at the
 * first statement or connect that fails for want of a server (or a /readyz
 * ping that does) and ends at the first statement that succeeds afterwards.
 */
export class DatabaseHealth {
  #current: Outage | undefined;
  #last: Outage | undefined;
  /** Told once when an outage begins and once when it ends (the log). */
  onChange?: (outage: Outage) => void;

  failed(err: unknown): void {
    if (this.#current) return;
    const code = (err as { code?: unknown })?.code;
    this.#current = { began: new Date(), cause: typeof code === 'string' ? code : String((err as Error)?.message ?? err).slice(0, 200) };
    this.onChange?.(this.#current);
  }

  succeeded(): void {
    if (!this.#current) return;
    const ended = { ...this.#current, ended: new Date() };
    this.#current = undefined;
    this.#last = ended;
    this.onChange?.(ended);
  }

  /** The outage under way, if any. */
  get current(): Outage | undefined {
    return this.#current;
  }

  /** The last outage that ended, if any. */
  get last(): Outage | undefined {
    return this.#last;
  }
}
