/**
 * Opens the database: embedded PGlite in the data folder by default, or
 * PostgreSQL through `pg` when a URL is given. Both speak the same SQL, so one
 * set of migrations and one set of queries serve both.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect, type KyselyPlugin, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import type { PGlite } from '@electric-sql/pglite';
import type { Database } from './schema.ts';
import { DatabaseHealth, DatabaseUnavailableError, isConnectionFailure } from './outage.ts';
import { databaseObserver } from './observer.ts';

/**
 * PGlite's shared buffers. Its default (128 MB) is PostgreSQL's server default;
 * inside one process, on files the OS caches anyway, 16 MB serves as well and
 * saves about 125 MB of resident memory and half a second of start-up.
 */
const PGLITE_SHARED_BUFFERS = '16MB';

// int8 (bigserial ids, counts) as strings is pg's default; keep it explicit so PGlite and pg agree.
pg.types.setTypeParser(20, (v) => v);

export type DatabaseKind = 'pglite' | 'postgres';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** The embedded engine, when kind is pglite. */
  pglite?: PGlite;
  /** Outages of the database as this process saw them (on PGlite, in-process, only a failing /readyz ping starts one). */
  health: DatabaseHealth;
  /** The PostgreSQL pool's connection counts (the metrics read them on each scrape); absent on PGlite. */
  poolStats?: () => { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

const healthByDb = new WeakMap<Kysely<Database>, DatabaseHealth>();

/** The availability record of a database opened here (what /readyz reports). */
export function databaseHealth(db: Kysely<Database>): DatabaseHealth | undefined {
  return healthByDb.get(db);
}

export interface OpenOptions {
  /** postgres:// URL; when absent PGlite is used. */
  url?: string;
  /** Folder for PGlite's files; absent means in memory (tests). */
  pgliteDir?: string;
  poolSize?: number;
  plugins?: KyselyPlugin[];
}

export async function openDatabase(options: OpenOptions): Promise<DatabaseHandle> {
  if (options.url) {
    // A server that silently drops packets must fail in seconds, not at the OS's TCP timeout.
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10, connectionTimeoutMillis: 10_000 });
    const health = new DatabaseHealth();
    // A connection that loses its server emits 'error' once, whether it is idle in the pool or checked out
    // between two statements of a request; an 'error' nobody listens to ends the process. pg-pool listens only
    // while a client is idle (and re-emits on the pool), so every client gets a listener of its own for life.
    // Either way the client is dropped: idle by pg-pool at once, checked out when released (it is no longer
    // queryable). The listeners only keep the process alive: a lost connection is not yet an outage (an
    // idle_session_timeout, one backend terminated); a statement or a connect that fails is, and preparingPool
    // records it.
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: preparingPool(pool, health) }),
      plugins: options.plugins ?? [],
      log: databaseObserver(),
    });
    healthByDb.set(db, health);
    const poolStats = () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount });
    return { db, kind: 'postgres', health, poolStats, close: () => db.destroy() };
  }
  if (options.pgliteDir) fs.mkdirSync(path.dirname(options.pgliteDir), { recursive: true });
  // Loaded only when used: the module alone costs about 40 MB of memory in a process on PostgreSQL.
  const { PGlite } = await import('@electric-sql/pglite');
  const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];
  const pglite = await PGlite.create(options.pgliteDir ? { dataDir: options.pgliteDir, startParams } : { startParams });
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }), plugins: options.plugins ?? [], log: databaseObserver() });
  const health = new DatabaseHealth();
  healthByDb.set(db, health);
  return {
    db,
    kind: 'pglite',
    pglite,
    health,
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

/**
 * Named (prepared) statements for PostgreSQL. kysely sends every query as an
 * unnamed statement, which the server parses and plans each time; the same few
 * dozen statements make up every sign-in and token request, so each is named
 * after a hash of its text and prepared once per connection. Only statements
 * with parameters (already sent with the extended protocol, so single
 * statements) are named, and at most MAX_NAMED distinct texts per process.
 *
 * Two failures fall back to unnamed statements: a schema change under a
 * prepared `select *` ("cached plan must not change result type", 0A000),
 * which renames that connection's statements; and a connection that does not
 * keep prepared statements (a transaction-pooling proxy: 26000 or 42P05),
 * which stops naming for good in this process.
 */
const MAX_NAMED = 2000;
const PREPARING = Symbol('twofold.preparing');

type QueryFn = (config: unknown, values?: unknown) => Promise<unknown>;

/**
 * The pool as kysely sees it, with two jobs besides pg's: naming statements
 * (below), and turning "the server is gone" into DatabaseUnavailableError
 * while keeping the health record (a failure starts an outage, the next
 * statement that succeeds ends it).
 */
function preparingPool(pool: pg.Pool, health: DatabaseHealth): PostgresPool {
  const unavailable = (err: unknown): never => {
    if (isConnectionFailure(err)) {
      health.failed(err);
      throw err instanceof DatabaseUnavailableError ? err : new DatabaseUnavailableError(err);
    }
    throw err;
  };
  const answered = <T>(result: T): T => {
    health.succeeded();
    return result;
  };
  const names = new Map<string, string>();
  let naming = true;
  const nameFor = (text: string): string | undefined => {
    let name = names.get(text);
    if (!name && names.size < MAX_NAMED) {
      name = `tf_${crypto.createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    // kysely reads these to open a side connection when it cancels a query.
    Client: (pool as unknown as { Client: PostgresPool['Client'] }).Client,
    options: pool.options,
    async connect() {
      const client = await pool.connect().catch(unavailable);
      const marked = client as pg.PoolClient & { [PREPARING]?: true };
      if (!marked[PREPARING]) {
        marked[PREPARING] = true;
        const query = client.query.bind(client) as QueryFn;
        let generation = 0;
        const run = (text: unknown, values?: unknown): Promise<unknown> => {
          const base = naming && typeof text === 'string' && Array.isArray(values) && values.length > 0 ? nameFor(text) : undefined;
          if (!base) return query(text, values);
          const name = generation ? `${base}_${generation}` : base;
          return query({ name, text, values }).catch((err: { code?: string }) => {
            if (err?.code === '0A000') generation += 1;
            else if (err?.code === '26000' || err?.code === '42P05') naming = false;
            else throw err;
            return query(text, values);
          });
        };
        (client as unknown as { query: QueryFn }).query = (text: unknown, values?: unknown) => run(text, values).then(answered, unavailable);
      }
      return client as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/** Checks that the database answers (used by /readyz). */
export async function ping(db: Kysely<Database>): Promise<void> {
  await db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
}
