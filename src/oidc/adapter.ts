/**
 * node-oidc-provider's storage adapter over kysely: every model the provider
 * stores (sessions, interactions, codes, tokens, grants…) lives in one table,
 * oidc_payloads, keyed by (kind, id). Clients come from the clients table.
 * Nothing is kept in process memory, so any process can continue any flow.
 *
 * A model's id is its bearer value (the refresh token, the code, the session
 * cookie, the interaction id), so a row is stored and found under a keyed hash
 * of it (HMAC-SHA256 under a key derived from SECRET_KEY), never the value;
 * so is a device flow's user code. The bearer values inside payloads are
 * sealed (bearer-fields.ts). A dump, a backup or a replica hands no one a
 * usable token; docs/security.md says what it does hold.
 */
import { sql, type Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { clientToProviderMetadata, findClientById } from './clients.ts';
import { SealError, type Sealer } from '../security/sealer.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import { forget, memoized } from '../db/request-memo.ts';
import { logger } from '../logger.ts';
import { openBearerFields, sealBearerFields } from './bearer-fields.ts';

/**
 * Provider rows found by id are read once per request (src/db/request-memo.ts):
 * an interaction page loads its interaction, and finishing it loads it again.
 * Any write of a provider row in the request forgets them all.
 */
const PAYLOAD_MEMO = 'oidc_payload:';

type AdapterConstructor = new (name: string) => Adapter;

/**
 * ReplayDetection's id is already a SHA-256 digest of a used client assertion's
 * issuer and jti, not a bearer value; kept as it is, so the upgrade that began
 * hashing ids (migration 0007) could keep those rows and no assertion seen
 * before it can be replayed after it.
 */
const UNHASHED_MODELS: ReadonlySet<string> = new Set(['ReplayDetection']);

/**
 * Marks a stored keyed hash. The library's ids and user codes never contain a
 * dot, so the database can check that no row is stored under a value in clear
 * (constraints of migration 0007), and a later key can get a prefix of its own.
 */
const HASHED = 'h1.';

/** The value oidc_payloads.id holds for the model `kind` whose id is `id`. */
export function storedPayloadId(hasher: KeyedHasher, kind: string, id: string): string {
  return UNHASHED_MODELS.has(kind) ? id : HASHED + hasher.hash(id, `oidc_payloads.id:${kind}`);
}

/** The value oidc_payloads.user_code holds for a device flow's user code. */
export function storedUserCode(hasher: KeyedHasher, userCode: string): string {
  return HASHED + hasher.hash(userCode, 'oidc_payloads.user_code');
}

/** `issuer`: what a client's path redirect URIs are resolved against (src/oidc/clients.ts resolveAgainstIssuer). */
export function createAdapter(db: Kysely<Database>, sealer: Sealer, hasher: KeyedHasher, issuer?: string): AdapterConstructor {
  class ClientAdapter implements Adapter {
    async find(id: string): Promise<AdapterPayload | undefined> {
      // The protocol knows clients by client_id only (findClientRow also matches names, for the CLI).
      const row = await findClientById(db, id);
      return row ? (clientToProviderMetadata(row, sealer, issuer) as AdapterPayload) : undefined;
    }
    async upsert(): Promise<void> {
      throw new Error('clients are managed with `twofold client`, not by the provider');
    }
    async findByUid(): Promise<undefined> {
      return undefined;
    }
    async findByUserCode(): Promise<undefined> {
      return undefined;
    }
    async consume(): Promise<void> {}
    async destroy(): Promise<void> {}
    async revokeByGrantId(): Promise<void> {}
  }

  class KyselyAdapter implements Adapter {
    readonly kind: string;

    constructor(kind: string) {
      this.kind = kind;
    }

    #id(id: string): string {
      return storedPayloadId(hasher, this.kind, id);
    }

    /** Binds a row's sealed bearer values to the row: copied to another row, they do not open. */
    #context(storedId: string): string {
      return `oidc_payloads:${this.kind}:${storedId}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const storedId = this.#id(id);
      const userCode = payload.userCode as string | undefined;
      const row = {
        kind: this.kind,
        id: storedId,
        payload: JSON.stringify(sealBearerFields(sealer, this.kind, payload, this.#context(storedId))),
        grant_id: (payload.grantId as string | undefined) ?? null,
        user_code: userCode ? storedUserCode(hasher, userCode) : null,
        // A session's uid is not a bearer value: nothing outside the database ever presents one (docs/security.md).
        uid: (payload.uid as string | undefined) ?? null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await db
        .insertInto('oidc_payloads')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['kind', 'id']).doUpdateSet({
            payload: row.payload,
            grant_id: row.grant_id,
            user_code: row.user_code,
            uid: row.uid,
            expires_at: row.expires_at,
          }),
        )
        .execute();
      forget(PAYLOAD_MEMO);
    }

    async #findWhere(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
      const row = await db
        .selectFrom('oidc_payloads')
        .select(['id', 'payload', 'consumed_at'])
        .where('kind', '=', this.kind)
        .where(column, '=', value)
        // An expired device code is still found until the purge: the device is told expired_token (RFC 8628 §3.5) and
        // the person that the code expired; the library checks expiry itself.
        .$if(this.kind !== 'DeviceCode', (qb) => qb.where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())])))
        .executeTakeFirst();
      if (!row) return undefined;
      let payload: AdapterPayload;
      try {
        payload = openBearerFields(sealer, row.payload, this.#context(row.id)) as AdapterPayload;
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
        // Altered or copied from another row: it is refused like an unknown token, and someone should look.
        logger.error({ kind: this.kind }, 'a stored provider payload does not open; it was altered in the database');
        return undefined;
      }
      return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
    }

    find(id: string) {
      return memoized(`${PAYLOAD_MEMO}${this.kind}:${id}`, () => this.#findWhere('id', this.#id(id)));
    }

    findByUid(uid: string) {
      return this.#findWhere('uid', uid);
    }

    findByUserCode(userCode: string) {
      return this.#findWhere('user_code', storedUserCode(hasher, userCode));
    }

    async consume(id: string): Promise<void> {
      await db
        .updateTable('oidc_payloads')
        .set({ consumed_at: new Date() })
        .where('kind', '=', this.kind)
        .where('id', '=', this.#id(id))
        .where('consumed_at', 'is', null)
        .execute();
      forget(PAYLOAD_MEMO);
    }

    async destroy(id: string): Promise<void> {
      await db.deleteFrom('oidc_payloads').where('kind', '=', this.kind).where('id', '=', this.#id(id)).execute();
      forget(PAYLOAD_MEMO);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      // Every token of the grant goes, whatever its kind.
      await db.deleteFrom('oidc_payloads').where('grant_id', '=', grantId).execute();
      forget(PAYLOAD_MEMO);
    }
  }

  return class Adapter {
    constructor(name: string) {
      return name === 'Client' ? new ClientAdapter() : new KyselyAdapter(name);
    }
  } as unknown as AdapterConstructor;
}

/** Deletes provider rows that expired more than `graceSeconds` ago, in batches. */
export async function purgeExpired(db: Kysely<Database>, graceSeconds = 60, batch = 5000): Promise<number> {
  const cutoff = new Date(Date.now() - graceSeconds * 1000);
  let total = 0;
  for (;;) {
    const result = await sql`
      delete from oidc_payloads where ctid in (
        select ctid from oidc_payloads where expires_at < ${cutoff} limit ${batch}
      )`.execute(db);
    const n = Number(result.numAffectedRows ?? 0);
    total += n;
    if (n < batch) break;
  }
  await db.deleteFrom('rate_limits').where('expires_at', '<', cutoff).execute();
  await db.deleteFrom('challenge_codes').where('expires_at', '<', cutoff).execute();
  // A day late, so that an expired reset link is still told apart from a forged one.
  await db
    .deleteFrom('password_resets')
    .where('expires_at', '<', new Date(cutoff.getTime() - 86400_000))
    .execute();
  await db.deleteFrom('factor_answers').where('expires_at', '<', cutoff).execute();
  await db.deleteFrom('factor_nonces').where('expires_at', '<', cutoff).execute();
  await db
    .deleteFrom('email_verifications')
    .where('expires_at', '<', new Date(cutoff.getTime() - 86400_000))
    .execute();
  return total;
}

/**
 * The client an interaction was started for, found by its id even after it expired (until the purge
 * removes the row): the "sign-in expired" page offers the way back to that app. client_id is not a
 * bearer value, so it is read without opening the sealed part.
 */
export async function interactionClientId(db: Kysely<Database>, hasher: KeyedHasher, uid: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('oidc_payloads')
    .select('payload')
    .where('kind', '=', 'Interaction')
    .where('id', '=', storedPayloadId(hasher, 'Interaction', uid))
    .executeTakeFirst();
  const clientId = (row?.payload as { params?: { client_id?: unknown } } | undefined)?.params?.client_id;
  return typeof clientId === 'string' ? clientId : undefined;
}
