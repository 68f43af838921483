/**
 * Clearing a lockout: an admin deletes every throttle counter of one account
 * (passwords, each second factor, each known browser's, and each of its
 * passkeys' per-credential counters), so the account's owner can sign in at
 * once whatever was guessed before. Counters per client address are shared
 * by every account there and stay. Audited with the actor. The CLI's
 * `twofold user unlock` calls this; an admin API is to call the same.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.ts';
import { recordAudit } from '../security/audit.ts';
import { clearCounters } from '../security/rate-limit.ts';
import { ACCOUNT_SCOPED_PASSWORD_RULES } from '../security/password-throttle.ts';
import { ACCOUNT_SCOPED_MFA_RULES, FIRST_FACTOR_PER_CREDENTIAL } from '../mfa/throttle.ts';

export const unlockAccountInput = z
  .object({
    accountId: z.string().min(1).max(64),
    /** Recorded as the audit event's actor (`admin:cli`, an admin's account…). */
    actor: z.string().min(1).max(200),
  })
  .strict();
export type UnlockAccountInput = z.input<typeof unlockAccountInput>;

/** How many counters went (0: nothing was counted against the account, and nothing is audited). */
export async function unlockAccount(db: Kysely<Database>, input: UnlockAccountInput): Promise<{ cleared: number }> {
  const { accountId, actor } = unlockAccountInput.parse(input);
  const credentials = await db.selectFrom('credentials').select('id').where('account_id', '=', accountId).execute();
  const cleared = await clearCounters(db, [
    ...[...ACCOUNT_SCOPED_PASSWORD_RULES, ...ACCOUNT_SCOPED_MFA_RULES].map((name) => [name, accountId] as const),
    ...credentials.map((c) => [FIRST_FACTOR_PER_CREDENTIAL.name, c.id] as const),
  ]);
  if (cleared > 0) await recordAudit(db, 'account.unlocked', { accountId, actor }, { counters: cleared });
  return { cleared };
}
