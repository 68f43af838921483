/**
 * Creating an account on an administrator's word, with the password rules
 * (src/accounts/password-rules.ts) applied to its password, which is then
 * its only factor: at least 15 characters, not common, not its username,
 * email or the product's name. The CLI's `twofold user add` calls this; an
 * admin API is to call the same. Audited with the actor.
 */
import { z } from 'zod';
import { createAccount, newAccountSchema, type NewAccountInput } from '../accounts/accounts.ts';
import { newAccountPassword } from '../accounts/new-password.ts';
import type { PasswordRefusal } from '../accounts/password-rules.ts';
import type { Account } from '../db/schema.ts';
import type { MessageRef } from '../i18n/catalogue.ts';
import type { Services } from '../services.ts';
import { recordAudit } from '../security/audit.ts';

export type AddAccountResult = { ok: true; account: Account } | { ok: false; reason: 'refused'; refusal: PasswordRefusal; message: MessageRef };

/** Throws ZodError for malformed input and AccountConflictError for a taken username or email, as createAccount does. */
export async function addAccount(services: Pick<Services, 'db' | 'hasher' | 'config'>, input: NewAccountInput, actor: string): Promise<AddAccountResult> {
  // The password is judged by the rules alone, whose words say more than a schema's bounds.
  const { password: raw, ...rest } = input;
  const data = newAccountSchema.parse(rest);
  let password: string | undefined;
  if (raw !== undefined) {
    const verdict = newAccountPassword(services, data, z.string().parse(raw));
    if (!verdict.ok) return { ok: false, reason: 'refused', refusal: verdict.reason, message: verdict.message };
    password = verdict.password;
  }
  const account = await createAccount(services.db, services.hasher, { ...data, password });
  await recordAudit(services.db, 'account.created', { accountId: account.id, actor });
  return { ok: true, account };
}
