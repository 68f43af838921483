/**
 * Answers that reach a factor outside the browser: a question put to a device
 * (approve this sign-in?) when a challenge begins, its answer recorded by the
 * factor's server-to-server callback, and taken by the waiting browser's next
 * check. Shared through the database, so the callback and the poll may land
 * in different provider processes. Each step is one conditional statement:
 * an answer is recorded at most once, while the question is open, and taken
 * at most once.
 *
 * Also the replay guard of callbacks: a nonce accepted once per factor within
 * its message's time window.
 *
 * Times are the services' clock (a test moves it to see a question expire);
 * the purge removes rows by real time, long after they stopped mattering.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import type { Clock } from '../clock.ts';
import type { AnswerDesk, Answers, AnswerState, Credential, Failure } from '../../factors/types.ts';
import type { CredentialStore } from './credential-store.ts';

const MIN_TTL = 30;
const MAX_TTL = 900;
const DEFAULT_WINDOW = 300;
const MAX_WINDOW = 900;

export class AnswerService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hasher: KeyedHasher,
    private readonly store: CredentialStore,
    private readonly clock: Clock,
  ) {}

  #key(factorId: string, id: string): string {
    return this.hasher.hash(`${factorId}:${id}`, 'factor_answers.id');
  }

  /** The browser's side, for one factor and account. */
  for(factorId: string, accountId: string): Answers {
    return {
      open: async ({ credentialId, ttlSeconds, data = {} }) => {
        if (!Number.isInteger(ttlSeconds) || ttlSeconds < MIN_TTL || ttlSeconds > MAX_TTL)
          throw new Error(`answers.open: ttlSeconds must be a whole number from ${MIN_TTL} to ${MAX_TTL}`);
        const credential = (await this.store.list(accountId, factorId)).find((c) => c.id === credentialId);
        if (!credential) throw new Error(`answers.open: ${credentialId} is not a ${factorId} credential of the account`);
        const id = crypto.randomBytes(18).toString('base64url');
        const expiresAt = new Date(this.clock.now().getTime() + ttlSeconds * 1000);
        await this.db
          .insertInto('factor_answers')
          .values({
            id: this.#key(factorId, id),
            factor_id: factorId,
            account_id: accountId,
            credential_id: credentialId,
            data: JSON.stringify(data),
            expires_at: expiresAt,
          })
          .execute();
        return { id, expiresAt };
      },
      take: async (id) => {
        if (typeof id !== 'string' || !id) return { status: 'expired' };
        const key = this.#key(factorId, id);
        const now = this.clock.now();
        // An answer recorded in time may be read a moment after the question closed: `answer` held the window.
        const taken = await this.db
          .updateTable('factor_answers')
          .set({ taken_at: now })
          .where('id', '=', key)
          .where('factor_id', '=', factorId)
          .where('account_id', '=', accountId)
          .where('answer', 'is not', null)
          .where('taken_at', 'is', null)
          .returning(['answer', 'credential_id'])
          .executeTakeFirst();
        if (taken?.answer) return { status: 'answered', credentialId: taken.credential_id, answer: taken.answer };
        const row = await this.db
          .selectFrom('factor_answers')
          .select(['expires_at', 'taken_at'])
          .where('id', '=', key)
          .where('factor_id', '=', factorId)
          .where('account_id', '=', accountId)
          .executeTakeFirst();
        if (!row) return { status: 'expired' };
        if (row.taken_at) return { status: 'taken' };
        const expiresAt = new Date(row.expires_at);
        return expiresAt > now ? ({ status: 'pending', expiresAt } satisfies AnswerState) : { status: 'expired' };
      },
    };
  }

  /**
   * The callback's side, for one factor. `seen` hears the account of each question found, so the
   * engine can audit the call under it.
   */
  desk(factorId: string, seen?: (accountId: string) => void): AnswerDesk {
    return {
      find: async (id) => {
        if (typeof id !== 'string' || !id || id.length > 128) return undefined;
        const row = await this.db
          .selectFrom('factor_answers')
          .select(['account_id', 'credential_id', 'data', 'expires_at', 'answered_at'])
          .where('id', '=', this.#key(factorId, id))
          .where('factor_id', '=', factorId)
          .where('expires_at', '>', this.clock.now())
          .executeTakeFirst();
        if (!row) return undefined;
        seen?.(row.account_id);
        const credential: Credential | undefined = (await this.store.list(row.account_id, factorId)).find((c) => c.id === row.credential_id);
        return credential && { credential, data: row.data, expiresAt: new Date(row.expires_at), answered: row.answered_at !== null };
      },
      answer: async (id, answer) => {
        if (typeof id !== 'string' || !id || id.length > 128) return false;
        const now = this.clock.now();
        const result = await this.db
          .updateTable('factor_answers')
          .set({ answer: JSON.stringify(answer), answered_at: now })
          .where('id', '=', this.#key(factorId, id))
          .where('factor_id', '=', factorId)
          .where('answer', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        return result.numUpdatedRows > 0n;
      },
    };
  }

  /** Replay protection for one factor's callbacks: see CallbackServices.acceptOnce. */
  async acceptOnce(factorId: string, nonce: string, sentAt: Date, windowSeconds = DEFAULT_WINDOW): Promise<{ ok: true } | Failure> {
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > MAX_WINDOW)
      throw new Error(`acceptOnce: windowSeconds must be a whole number from 1 to ${MAX_WINDOW}`);
    if (typeof nonce !== 'string' || nonce.length < 16 || nonce.length > 128) return { ok: false, reason: 'invalid_input' };
    const sent = sentAt instanceof Date ? sentAt.getTime() : NaN;
    const now = this.clock.now().getTime();
    if (!Number.isFinite(sent) || Math.abs(now - sent) > windowSeconds * 1000) return { ok: false, reason: 'expired' };
    // Kept until no message with this nonce could still be inside its window.
    const expiresAt = new Date(Math.max(now, sent) + windowSeconds * 1000);
    const inserted = await this.db
      .insertInto('factor_nonces')
      .values({ factor_id: factorId, nonce_hash: this.hasher.hash(nonce, `factor_nonces:${factorId}`), expires_at: expiresAt })
      .onConflict((oc) => oc.columns(['factor_id', 'nonce_hash']).doNothing())
      .returning('factor_id')
      .executeTakeFirst();
    return inserted ? { ok: true } : { ok: false, reason: 'already_used' };
  }
}
