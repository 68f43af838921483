/** What the HTTP layer, the CLI and the provider share: built once at start. */
import type { Kysely } from 'kysely';
import type { Config } from './config.ts';
import type { Database } from './db/schema.ts';
import type { DatabaseKind } from './db/database.ts';
import type { PasswordHasher } from './accounts/password-hasher.ts';
import type { Sealer } from './security/sealer.ts';
import type { KeyedHasher } from './security/keyed-hash.ts';
import type { DeviceCookies } from './security/device-cookie.ts';
import type { FactorEngine } from './mfa/engine.ts';
import type { Messaging } from './messaging/index.ts';
import type { Catalogue } from './i18n/catalogue.ts';
import type { Clock } from './clock.ts';
import type { SessionsEndedHook } from './accounts/end-sessions.ts';
import type { Metrics } from './metrics/registry.ts';
import type { HttpTransport } from './mfa/factor-http.ts';

export interface Services {
  config: Config;
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  sealer: Sealer;
  hasher: PasswordHasher;
  /** Keyed hashes of one-time codes and of bearer values (tokens, codes, session and interaction ids). */
  codeHasher: KeyedHasher;
  /** Signs and reads the known-browser cookie the throttles give a counter of its own. */
  deviceCookies: DeviceCookies;
  /** The second-factor engine over the registered factors. */
  factors: FactorEngine;
  /** How codes reach people (email, SMS, voice); factors see it only through the engine's outOfBand service. */
  messaging: Messaging;
  /**
   * Every text a person reads, by key and language: the built-in messages and every known factor's; the app adds
   * THEME_DIR's when it is built (src/app.ts), before the first request, so pages and the messages carrying codes
   * speak alike.
   */
  catalogue: Catalogue;
  /** The time as Twofold's own rules see it (evidence ages, session idle, TOTP); tests move it. */
  clock: Clock;
  /**
   * Told after sessions of an account were ended (a password change, a disabled account), with what each session
   * held: the place for back-channel logout and similar notices. Runs in whichever process ended them.
   */
  sessionsEnded: SessionsEndedHook[];
  /** Back-channel logout delivery in a provider process (absent in a CLI run: its notices wait for a provider). */
  backchannel?: { kick(): void };
  /** This server's metrics registry and counters (METRICS not `off`; never in a CLI run). */
  metrics?: Metrics;
  /** What factors' HTTP calls go through (src/mfa/factor-http.ts): fetch, unless a test gives a stand-in. */
  httpTransport?: HttpTransport;
}
