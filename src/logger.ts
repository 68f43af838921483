/**
 * Structured JSON logs (pino). The level starts from the LOG_LEVEL environment
 * variable (so messages logged while the configuration loads are filtered too);
 * once it has loaded, `applyLogLevel(config.LOG_LEVEL)` sets the configured
 * level, which may come from the config file.
 *
 * The log must never stop the provider. pino's default destination flushes
 * synchronously when the process exits and, on a pipe nobody reads (a stuck
 * log shipper, a full container log pipe), retries that write for ever with
 * `Atomics.wait`: the process then ignores every further signal. So lines go
 * to `process.stdout`, which Node writes without blocking on a pipe (what the
 * pipe cannot take yet waits in memory, and is given up at exit), at most
 * MAX_PENDING_BYTES of them: past that, lines are dropped and counted, and the
 * count is logged once stdout moves again.
 */
import { pino, type DestinationStream } from 'pino';

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Log bytes allowed to wait for a slow stdout before lines are dropped. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

function stdoutDestination(): DestinationStream {
  const out = process.stdout;
  // A reader that went away (EPIPE): the log is lost, the provider carries on.
  out.on('error', () => {});
  let dropped = 0;
  return {
    write(line: string) {
      if (out.writableLength > MAX_PENDING_BYTES) {
        dropped += 1;
        return;
      }
      if (dropped) {
        out.write(`${JSON.stringify({ level: 40, time: Date.now(), service: 'twofold', msg: `stdout was blocked: ${dropped} log lines were dropped` })}\n`);
        dropped = 0;
      }
      out.write(line);
    },
  };
}

export const logger = pino(
  {
    // An unknown value is left for loadConfig to report in one line (pino would throw here, with a stack).
    level: LEVELS.has(process.env.LOG_LEVEL ?? '') ? process.env.LOG_LEVEL : 'info',
    base: { service: 'twofold' },
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password', 'secret', '*.client_secret'], censor: '[redacted]' },
  },
  stdoutDestination(),
);

export type Logger = typeof logger;

/** Sets the level; child loggers made afterwards (one per request) take it too. */
export function applyLogLevel(level: string): void {
  logger.level = level;
}

/**
 * Waits until stdout has taken every pending line, or `ms` passed (a blocked
 * pipe): a shutdown lets its last lines out when it can, never waits for them.
 */
export function flushLog(ms: number): Promise<void> {
  const out = process.stdout;
  if (!out.writableLength) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      out.off('drain', done);
      resolve();
    }
    out.once('drain', done);
  });
}
