/**
 * Structured JSON logs (pino). The level starts from the LOG_LEVEL environment
 * variable (so messages logged while the configuration loads are filtered too);
 * once it has loaded, `applyLogLevel(config.LOG_LEVEL)` sets the configured
 * level, which may come from the config file.
 */
import { pino } from 'pino';

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const logger = pino({
  // An unknown value is left for loadConfig to report in one line (pino would throw here, with a stack).
  level: LEVELS.has(process.env.LOG_LEVEL ?? '') ? process.env.LOG_LEVEL : 'info',
  base: { service: 'twofold' },
  redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password', 'secret', '*.client_secret'], censor: '[redacted]' },
});

export type Logger = typeof logger;

/** Sets the level; child loggers made afterwards (one per request) take it too. */
export function applyLogLevel(level: string): void {
  logger.level = level;
}
