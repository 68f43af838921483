/**
 * The durable floor's storage: the simplest node-oidc-provider adapter over
 * PostgreSQL (plain `pg`) or PGlite, one table for every model, one statement
 * per adapter call and nothing cached. With it, the bare library does what any
 * durable deployment of it must do, and its statements are counted, so the
 * benchmark can print that floor next to Twofold's.
 *
 * Only the bench uses it (bare-provider.ts with BARE_STORE=postgres|pglite).
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';

/** What both pg.Pool and PGlite offer: one parameterized statement. */
export interface Queryable {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

export interface Counts {
  total: number;
  reads: number;
  writes: number;
  /** `Model.method` → statements, e.g. `Interaction.find`. */
  byStatement: Record<string, number>;
}

export class StatementTally {
  counts: Counts = StatementTally.empty();
  static empty(): Counts {
    return { total: 0, reads: 0, writes: 0, byStatement: {} };
  }
  add(model: string, method: string, write: boolean): void {
    const c = this.counts;
    c.total += 1;
    if (write) c.writes += 1;
    else c.reads += 1;
    const key = `${model}.${method}`;
    c.byStatement[key] = (c.byStatement[key] ?? 0) + 1;
  }
  reset(): void {
    this.counts = StatementTally.empty();
  }
}

/** The table's name is the caller's (a run's own), checked since it is spliced into SQL. */
export async function createTable(db: Queryable, table: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new Error(`bad table name ${table}`);
  await db.query(`create table if not exists ${table} (
    model text not null,
    id text not null,
    payload jsonb not null,
    grant_id text,
    user_code text,
    uid text,
    expires_at timestamptz,
    consumed_at timestamptz,
    primary key (model, id)
  )`);
  await db.query(`create index if not exists ${table}_grant on ${table} (grant_id)`);
  await db.query(`create index if not exists ${table}_uid on ${table} (uid)`);
  await db.query(`create index if not exists ${table}_user_code on ${table} (user_code)`);
}

type Row = { payload: AdapterPayload; consumed: boolean };

/** node-oidc-provider's adapter factory: `new (adapterFor(db, table, tally))(modelName)`. */
export function adapterFor(db: Queryable, table: string, tally: StatementTally) {
  const live = `(expires_at is null or expires_at > now())`;
  const found = (rows: Row[]): AdapterPayload | undefined => {
    const row = rows[0];
    if (!row) return undefined;
    return row.consumed ? { ...row.payload, consumed: true } : row.payload;
  };
  return class DurableAdapter implements Adapter {
    constructor(readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      tally.add(this.model, 'upsert', true);
      await db.query(
        `insert into ${table} (model, id, payload, grant_id, user_code, uid, expires_at)
         values ($1, $2, $3::jsonb, $4, $5, $6, now() + make_interval(secs => $7::int))
         on conflict (model, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
        [this.model, id, JSON.stringify(payload), payload.grantId ?? null, payload.userCode ?? null, payload.uid ?? null, expiresIn ?? null],
      );
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      tally.add(this.model, 'find', false);
      return found(
        (await db.query<Row>(`select payload, consumed_at is not null as consumed from ${table} where model = $1 and id = $2 and ${live}`, [this.model, id]))
          .rows,
      );
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      tally.add(this.model, 'findByUid', false);
      return found(
        (await db.query<Row>(`select payload, consumed_at is not null as consumed from ${table} where model = $1 and uid = $2 and ${live}`, [this.model, uid]))
          .rows,
      );
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      tally.add(this.model, 'findByUserCode', false);
      return found(
        (
          await db.query<Row>(`select payload, consumed_at is not null as consumed from ${table} where model = $1 and user_code = $2 and ${live}`, [
            this.model,
            userCode,
          ])
        ).rows,
      );
    }

    async consume(id: string): Promise<void> {
      tally.add(this.model, 'consume', true);
      await db.query(`update ${table} set consumed_at = now() where model = $1 and id = $2`, [this.model, id]);
    }

    async destroy(id: string): Promise<void> {
      tally.add(this.model, 'destroy', true);
      await db.query(`delete from ${table} where model = $1 and id = $2`, [this.model, id]);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      tally.add(this.model, 'revokeByGrantId', true);
      await db.query(`delete from ${table} where model = $1 and grant_id = $2`, [this.model, grantId]);
    }
  };
}
