/**
 * Transaction-scoped advisory locks, so that "create if missing" steps (first
 * signing keys, key rotation) run in one process at a time across a cluster.
 */
import { sql, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

export const LockIds = {
  signingKeys: 7_240_001,
  providerSecrets: 7_240_002,
} as const;

export async function advisoryXactLock(trx: Transaction<Database>, id: number): Promise<void> {
  await sql`select pg_advisory_xact_lock(${sql.lit(id)})`.execute(trx);
}
