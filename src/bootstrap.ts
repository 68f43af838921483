/**
 * Opens everything a provider process or a CLI run needs: the database (with
 * the data-folder lock for PGlite), migrations, the sealer and the hasher.
 */
import type { Config } from './config.ts';
import type { DatabaseHandle } from './db/database.ts';
import type { DataDirLock } from './db/data-dir-lock.ts';
import { openStorage, StartupError, type Storage } from './db/storage.ts';
import { migrateToLatest, pendingMigrations } from './db/migrate.ts';
import { PasswordHasher } from './accounts/password-hasher.ts';
import { loadMasterKey } from './security/secret-key.ts';
import { Sealer } from './security/sealer.ts';
import { KeyedHasher } from './security/keyed-hash.ts';
import { DeviceCookies } from './security/device-cookie.ts';
import { FactorEngine } from './mfa/engine.ts';
import { BUILT_IN_FACTORS, FactorRegistry, FactorRegistryError, knownFactors } from '../factors/registry.ts';
import { FactorLoadError, loadFactors, type LoadedFactor } from '../factors/load.ts';
import { createMessaging, deliveryChannels } from './messaging/index.ts';
import { Catalogue, CatalogueError } from './i18n/catalogue.ts';
import type { Services } from './services.ts';
import type { KyselyPlugin } from 'kysely';
import { systemClock, type Clock } from './clock.ts';
import type { SessionsEndedHook } from './accounts/end-sessions.ts';
import { backchannelSessionsEnded } from './oidc/backchannel-logout.ts';
import type { HttpTransport } from './mfa/factor-http.ts';
import type { Factor } from '../factors/types.ts';

export interface Opened {
  services: Services;
  handle: DatabaseHandle;
  lock?: DataDirLock;
  migrated: string[];
  keySource: string;
  close(): Promise<void>;
}

export interface OpenServicesOptions {
  /** Run pending migrations (default: config.MIGRATE_ON_START). */
  migrate?: boolean;
  /** Use this already-open database instead of opening one (tests); closing is the caller's business. */
  handle?: DatabaseHandle;
  /** Storage whose opening began earlier (npm start overlaps it with loading modules); closed with the services. */
  storage?: Promise<Storage>;
  plugins?: KyselyPlugin[];
  /** The clock Twofold's own rules read (tests move it); default: the system's. */
  clock?: Clock;
  /** Where factors' HTTP calls go (tests: a stand-in for a push relay or a vendor's API); default: the network, through fetch. */
  httpTransport?: HttpTransport;
  /**
   * Factors registered after the built-in ones (a test's own factor, the push example) until FACTORS
   * configuration names them; their settings come from FACTOR_SETTINGS like any other.
   */
  extraFactors?: Factor<any>[];
}

export { StartupError };

export async function openServices(config: Config, options: OpenServicesOptions = {}): Promise<Opened> {
  let lock: DataDirLock | undefined;
  let handle = options.handle;
  if (!handle) ({ handle, lock } = await (options.storage ?? openStorage(config, options)));
  const h = handle;
  const close = async () => {
    if (!options.handle) await h.close();
    lock?.release();
  };
  try {
    let migrated: string[] = [];
    if (options.migrate ?? config.MIGRATE_ON_START) {
      migrated = (await migrateToLatest(h.db)).applied;
    } else {
      const pending = await pendingMigrations(h.db);
      if (pending.length) throw new StartupError(`the database needs migrations (${pending.join(', ')}); run \`twofold migrate\` or set MIGRATE_ON_START=true`);
    }
    const masterKey = loadMasterKey(config);
    const registry = await loadRegistry(config, options.extraFactors ?? []);
    const services: Services = {
      config,
      db: h.db,
      dbKind: h.kind,
      clock: options.clock ?? systemClock,
      httpTransport: options.httpTransport,
      sessionsEnded: [] as SessionsEndedHook[],
      sealer: new Sealer(masterKey.key),
      codeHasher: new KeyedHasher(masterKey.key),
      deviceCookies: new DeviceCookies(masterKey.key),
      hasher: new PasswordHasher({
        memoryCost: config.ARGON2_MEMORY_KIB,
        timeCost: config.ARGON2_ITERATIONS,
        parallelism: config.ARGON2_PARALLELISM,
        concurrency: config.HASH_CONCURRENCY,
        queueLimit: config.HASH_QUEUE_LIMIT,
      }),
    } as Services;
    try {
      // Every known factor's messages, not only those on, so a theme's words for one that is off (or left out) still check.
      services.catalogue = new Catalogue({ defaultLanguage: config.DEFAULT_LANGUAGE, pseudo: config.PSEUDO_LANGUAGE }).addFactors(knownFactors(registry));
    } catch (err) {
      if (err instanceof CatalogueError) throw new StartupError(err.message);
      throw err;
    }
    try {
      services.messaging = createMessaging(config, { catalogue: services.catalogue });
    } catch (err) {
      throw new StartupError(`MESSAGE_TEMPLATES_DIR: ${(err as Error).message}`);
    }
    services.factors = new FactorEngine(services, registry);
    // Apps with a back-channel logout URI hear of every session ended outside /session/end (queued; a provider delivers).
    if (config.BACKCHANNEL_LOGOUT) services.sessionsEnded.push(backchannelSessionsEnded(services));
    return { services, handle: h, lock, migrated, keySource: masterKey.source, close };
  } catch (err) {
    await close();
    if (err instanceof StartupError) throw err;
    const message = (err as { code?: string }).code === 'ECONNREFUSED' ? 'the database refused the connection' : (err as Error).message;
    throw new StartupError(message);
  }
}

/**
 * The factors FACTORS lists, loaded and checked, each on or off as it says (`enabled`, told which
 * channels this deployment delivers codes over). A failure stops the start with one line naming the
 * FACTORS entry, or the FACTOR_SETTINGS entry, at fault.
 */
async function loadRegistry(config: Config, extra: Factor<any>[]): Promise<FactorRegistry> {
  let loaded: LoadedFactor[];
  try {
    loaded = await loadFactors(config.FACTORS);
  } catch (err) {
    if (err instanceof FactorLoadError) throw new StartupError(err.message);
    throw err;
  }
  const listed = new Set([...loaded.map((l) => l.factor.id), ...extra.map((f) => f.id)]);
  const builtIn = new Set(BUILT_IN_FACTORS.map((f) => f.id));
  // A built-in factor left out of FACTORS keeps its settings for when it is listed again; any other id is a typo.
  const settings = Object.fromEntries(Object.entries(config.FACTOR_SETTINGS).filter(([id]) => listed.has(id) || !builtIn.has(id)));
  try {
    return new FactorRegistry([...loaded.map((l) => l.factor), ...extra], settings, { channels: deliveryChannels(config) });
  } catch (err) {
    if (!(err instanceof FactorRegistryError)) throw err;
    if (err.settings) throw new StartupError(`FACTOR_SETTINGS: ${err.message}`);
    const entry = loaded.find((l) => l.factor.id === err.factorId)?.entry;
    throw new StartupError(entry === undefined ? `FACTORS: ${err.message}` : `FACTORS entry ${entry}: ${err.message}`);
  }
}
