/** What the HTTP layer, the CLI and the provider share: built once at start. */
import type { Kysely } from 'kysely';
import type { Config } from './config.ts';
import type { Database } from './db/schema.ts';
import type { DatabaseKind } from './db/database.ts';
import type { PasswordHasher } from './accounts/password-hasher.ts';
import type { Sealer } from './security/sealer.ts';

export interface Services {
  config: Config;
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  sealer: Sealer;
  hasher: PasswordHasher;
}
