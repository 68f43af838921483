/**
 * Server-side state of an interaction (the account that passed the password,
 * the evidence gathered, a TOTP secret being enrolled…), keyed by a keyed hash
 * of the interaction uid: the uid is a bearer value (with the interaction
 * cookie it continues the sign-in), so the table never holds it. Values are
 * sealed, since some are secrets. Shared through the database, so any provider
 * process can continue the sign-in.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Sealer } from '../security/sealer.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import type { StepState } from '../../factors/types.ts';

export class InteractionState {
  /** `uid`: what the rows are stored under (see `of`). */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    readonly uid: string,
  ) {}

  /** The state of the interaction `interactionUid`, stored under a keyed hash of it. */
  static of(services: { db: Kysely<Database>; sealer: Sealer; codeHasher: KeyedHasher }, interactionUid: string): InteractionState {
    return new InteractionState(services.db, services.sealer, services.codeHasher.hash(interactionUid, 'interaction_state.uid'));
  }

  #context(key: string) {
    return `interaction_state:${this.uid}:${key}`;
  }

  async get<T>(key: string): Promise<T | undefined> {
    const row = await this.db
      .selectFrom('interaction_state')
      .select('value_sealed')
      .where('uid', '=', this.uid)
      .where('key', '=', key)
      .where('expires_at', '>', new Date())
      .executeTakeFirst();
    return row ? (JSON.parse(this.sealer.openString(row.value_sealed, this.#context(key))) as T) : undefined;
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    const sealed = this.sealer.seal(JSON.stringify(value), this.#context(key));
    const expires = new Date(Date.now() + ttlSeconds * 1000);
    await this.db
      .insertInto('interaction_state')
      .values({ uid: this.uid, key, value_sealed: sealed, expires_at: expires })
      .onConflict((oc) => oc.columns(['uid', 'key']).doUpdateSet({ value_sealed: sealed, expires_at: expires }))
      .execute();
  }

  /** Reads and deletes in one statement, so a value is taken at most once. */
  async take<T>(key: string): Promise<T | undefined> {
    const row = await this.db
      .deleteFrom('interaction_state')
      .where('uid', '=', this.uid)
      .where('key', '=', key)
      .where('expires_at', '>', new Date())
      .returning('value_sealed')
      .executeTakeFirst();
    return row ? (JSON.parse(this.sealer.openString(row.value_sealed, this.#context(key))) as T) : undefined;
  }

  async clear(): Promise<void> {
    await this.db.deleteFrom('interaction_state').where('uid', '=', this.uid).execute();
  }

  /** The same store, with keys namespaced for one factor. */
  forFactor(factorId: string): StepState {
    return {
      get: (key) => this.get(`factor:${factorId}:${key}`),
      set: (key, value, ttl) => this.set(`factor:${factorId}:${key}`, value, ttl),
      take: (key) => this.take(`factor:${factorId}:${key}`),
    };
  }
}
