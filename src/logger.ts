/** Structured JSON logs (pino). The level comes from LOG_LEVEL. */
import { pino } from 'pino';

export const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'twofold' },
  redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password', 'secret', '*.client_secret'], censor: '[redacted]' },
});

export type Logger = typeof logger;
