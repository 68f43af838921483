/**
 * `npm start`: load configuration, open the database, migrate, build the
 * app, listen, and shut down gracefully on SIGTERM/SIGINT.
 */
import { ConfigError, loadConfig } from './config.ts';
import { DataDirBusyError } from './db/data-dir-lock.ts';
import { StartupError } from './bootstrap.ts';
import { startServer } from './server.ts';
import { logger } from './logger.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const running = await startServer(config);
  const { opened } = running;
  const db = config.DATABASE_URL ? 'PostgreSQL' : `PGlite in ${config.dataDir}`;
  logger.info(
    {
      issuer: config.ISSUER,
      discovery: `${config.ISSUER}/.well-known/openid-configuration`,
      database: db,
      port: running.port,
      migrated: opened.migrated,
      secretKey: opened.keySource,
    },
    'Twofold is ready',
  );
  if (opened.keySource === 'generated') {
    logger.warn(`generated a development SECRET_KEY in ${config.dataDir}/secret.key; set SECRET_KEY in production`);
  }
  logger.info(
    'next: add a user with `npx twofold user add alice --email alice@example.com --password-stdin` ' +
      'and an app with `npx twofold client add my-app --redirect-uri http://localhost:8080/callback`',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    running
      .close()
      .then(() => process.exit(0))
      .catch((err) => {
        logger.error({ err }, 'unclean shutdown');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  if (err instanceof ConfigError || err instanceof StartupError || err instanceof DataDirBusyError) {
    process.stderr.write(`twofold: ${err.message}\n`);
    process.exit(2);
  }
  logger.fatal({ err }, 'could not start');
  process.exit(1);
});
