/**
 * Credentials of every factor, in one table. Secrets are sealed (bound to the
 * credential id), one-time codes stored as keyed hashes, and everything
 * single-use is consumed by one conditional UPDATE, so two provider processes
 * can never both accept the same code.
 */
import crypto from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { CredentialRow, Database } from '../db/schema.ts';
import type { Sealer } from '../security/sealer.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import type { Credential, NewCredential } from '../../factors/types.ts';
import { forget, memoized, remember, remembered } from '../db/request-memo.ts';

const secretContext = (id: string) => `credential:${id}`;
const codeContext = (credentialId: string) => `otc:${credentialId}`;
/** An account's credentials are read once per request (the policy input, then the factor's challenge or verification). */
const CREDENTIALS_MEMO = 'credentials:';

/** Codes are compared without spaces, dashes or case. */
export function normaliseCode(code: string): string {
  return code.replace(/[\s-]/g, '').toUpperCase();
}

export interface CredentialSummary {
  id: string;
  factorId: string;
  label: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** For factors with one-time codes: how many are left. */
  remaining?: number;
}

export class CredentialStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sealer: Sealer,
    private readonly codes: KeyedHasher,
  ) {}

  #open(row: CredentialRow): Credential {
    return {
      id: row.id,
      factorId: row.factor_id,
      label: row.label,
      secret: row.secret_sealed ? this.sealer.openString(row.secret_sealed, secretContext(row.id)) : undefined,
      ...(row.lookup_key ? { lookupKey: row.lookup_key } : {}),
      data: row.data,
      counter: row.counter === null ? null : Number(row.counter),
      createdAt: row.created_at,
      lastUsedAt: row.last_used_at,
    };
  }

  /** The account's credentials, of one factor or of several (a factor and those it shares credentials with). */
  async list(accountId: string, factorId?: string | string[]): Promise<Credential[]> {
    // All of the account's (a handful), filtered here, so that every caller in a request shares one read.
    const all = await memoized(`${CREDENTIALS_MEMO}${accountId}`, async () =>
      (await this.rowsQuery(accountId).orderBy('created_at').execute()).map((r) => this.#open(r)),
    );
    if (factorId === undefined) return all;
    const ids = typeof factorId === 'string' ? [factorId] : factorId;
    return all.filter((c) => ids.includes(c.factorId));
  }

  /** The rows `list` reads, for a statement that reads them with more (src/mfa/requirement.ts). */
  rowsQuery(accountId: string) {
    return this.db.selectFrom('credentials').selectAll().where('account_id', '=', accountId);
  }

  /** Whether this request already holds the account's credentials. */
  held(accountId: string): boolean {
    return remembered(`${CREDENTIALS_MEMO}${accountId}`);
  }

  /** The account's rows (in `created_at` order), read by another statement, answer this request's later `list`. */
  hold(accountId: string, rows: CredentialRow[]): void {
    remember(
      `${CREDENTIALS_MEMO}${accountId}`,
      rows.map((r) => this.#open(r)),
    );
  }

  /** After any write of credentials: later reads in this request see it. */
  #changed(): void {
    forget(CREDENTIALS_MEMO);
  }

  /** The credential with this public identifier (a WebAuthn credential ID), among the given factors, and its account. */
  async findByLookupKey(lookupKey: string, factorIds: string[]): Promise<{ accountId: string; credential: Credential } | undefined> {
    const row = await this.db
      .selectFrom('credentials')
      .selectAll()
      .where('lookup_key', '=', lookupKey)
      .where('factor_id', 'in', factorIds.length ? factorIds : [''])
      .executeTakeFirst();
    return row && { accountId: row.account_id, credential: this.#open(row) };
  }

  /** Whether any credential, of any account, already has this public identifier. */
  async lookupKeyTaken(lookupKey: string): Promise<boolean> {
    return (await this.db.selectFrom('credentials').select('id').where('lookup_key', '=', lookupKey).executeTakeFirst()) !== undefined;
  }

  /** Merges keys into a credential's non-secret data (one statement, so concurrent updates of other keys survive). */
  async updateData(credentialId: string, patch: Record<string, unknown>): Promise<void> {
    await this.db
      .updateTable('credentials')
      .set({ data: sql`data || ${JSON.stringify(patch)}::jsonb` })
      .where('id', '=', credentialId)
      .execute();
    this.#changed();
  }

  /** Without secrets, with remaining code counts: for listings. */
  async summaries(accountId: string): Promise<CredentialSummary[]> {
    const rows = await this.db
      .selectFrom('credentials')
      .leftJoin('one_time_codes', (j) => j.onRef('one_time_codes.credential_id', '=', 'credentials.id').on('one_time_codes.used_at', 'is', null))
      .select(['credentials.id', 'credentials.factor_id', 'credentials.label', 'credentials.created_at', 'credentials.last_used_at'])
      .select((eb) => eb.fn.count<string>('one_time_codes.code_hash').as('remaining'))
      .where('credentials.account_id', '=', accountId)
      .groupBy('credentials.id')
      .orderBy('credentials.created_at')
      .execute();
    const withCodes = new Set(
      (
        await this.db
          .selectFrom('one_time_codes')
          .select('credential_id')
          .distinct()
          .where('credential_id', 'in', rows.length ? rows.map((r) => r.id) : [''])
          .execute()
      ).map((r) => r.credential_id),
    );
    return rows.map((r) => ({
      id: r.id,
      factorId: r.factor_id,
      label: r.label,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
      ...(withCodes.has(r.id) ? { remaining: Number(r.remaining) } : {}),
    }));
  }

  /**
   * Stores a new credential (and its one-time codes) in one transaction.
   * `replaceFactor` removes the account's other credentials of that factor in
   * the same transaction (regenerating backup codes invalidates the old set).
   * Its label is text by now (a default named by key was rendered in the
   * enrolling person's language).
   */
  async insert(accountId: string, factorId: string, input: NewCredential & { label: string }, options: { replaceFactor?: boolean } = {}): Promise<string> {
    // Not starting with '-': the id is typed as an argument of `twofold user factor …`, where it would read as an option.
    let id: string;
    do id = crypto.randomBytes(12).toString('base64url');
    while (id.startsWith('-'));
    await this.db.transaction().execute(async (trx) => {
      if (options.replaceFactor) await trx.deleteFrom('credentials').where('account_id', '=', accountId).where('factor_id', '=', factorId).execute();
      await trx
        .insertInto('credentials')
        .values({
          id,
          account_id: accountId,
          factor_id: factorId,
          label: input.label,
          secret_sealed: input.secret ? this.sealer.seal(input.secret, secretContext(id)) : null,
          data: JSON.stringify(input.data ?? {}),
          counter: input.counter ?? null,
          lookup_key: input.lookupKey ?? null,
        })
        .execute();
      if (input.oneTimeCodes?.length) {
        await trx
          .insertInto('one_time_codes')
          .values(input.oneTimeCodes.map((code) => ({ credential_id: id, code_hash: this.codes.hash(normaliseCode(code), codeContext(id)) })))
          .execute();
      }
    });
    this.#changed();
    return id;
  }

  async rename(accountId: string, credentialId: string, label: string): Promise<boolean> {
    const r = await this.db.updateTable('credentials').set({ label }).where('id', '=', credentialId).where('account_id', '=', accountId).executeTakeFirst();
    this.#changed();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Removes one credential; answers its factor id (for the audit trail and the metrics), or undefined when there was none. */
  async remove(accountId: string, credentialId: string): Promise<string | undefined> {
    const r = await this.db
      .deleteFrom('credentials')
      .where('id', '=', credentialId)
      .where('account_id', '=', accountId)
      .returning('factor_id')
      .executeTakeFirst();
    this.#changed();
    return r?.factor_id;
  }

  async removeAll(accountId: string): Promise<number> {
    const r = await this.db.deleteFrom('credentials').where('account_id', '=', accountId).executeTakeFirst();
    this.#changed();
    return Number(r.numDeletedRows);
  }

  /** Advances the counter only upwards; exactly one concurrent caller wins a given value. */
  async advanceCounter(credentialId: string, value: number): Promise<boolean> {
    const r = await this.db
      .updateTable('credentials')
      .set({ counter: value, last_used_at: new Date() })
      .where('id', '=', credentialId)
      .where((eb) => eb.or([eb('counter', 'is', null), eb('counter', '<', sql<string>`${value}`)]))
      .executeTakeFirst();
    this.#changed();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Marks a one-time code used; true for exactly one caller, false for a wrong or spent code. */
  async consumeOneTimeCode(credentialId: string, code: string): Promise<boolean> {
    const hash = this.codes.hash(normaliseCode(code), codeContext(credentialId));
    const r = await this.db
      .updateTable('one_time_codes')
      .set({ used_at: new Date() })
      .where('credential_id', '=', credentialId)
      .where('code_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    await this.db.updateTable('credentials').set({ last_used_at: new Date() }).where('id', '=', credentialId).execute();
    this.#changed();
    return true;
  }

  async remainingOneTimeCodes(credentialId: string): Promise<number> {
    const row = await this.db
      .selectFrom('one_time_codes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('credential_id', '=', credentialId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async touch(credentialId: string): Promise<void> {
    await this.db.updateTable('credentials').set({ last_used_at: new Date() }).where('id', '=', credentialId).execute();
    this.#changed();
  }
}
