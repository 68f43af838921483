/** The account at a glance: who, the email and whether it is verified, the methods in use, and the state of the backup codes. */
import { z } from 'zod';
import type { Services } from '../services.ts';
import { findAccountById } from '../accounts/accounts.ts';
import { idSchema } from './acting.ts';
import { backupCodesStatus, type BackupCodesStatus } from './backup-codes.ts';

export interface AccountOverview {
  username: string;
  name: string | null;
  email: string | null;
  emailVerified: boolean;
  hasPassword: boolean;
  /** The factors in use (ids, registry order), with how many credentials of each. */
  methods: Array<{ factorId: string; count: number }>;
  backupCodes: BackupCodesStatus;
}

export const overviewInput = z.object({ accountId: idSchema }).strict();

export async function accountOverview(services: Services, input: z.input<typeof overviewInput>): Promise<AccountOverview | undefined> {
  const { accountId } = overviewInput.parse(input);
  const account = await findAccountById(services.db, accountId);
  if (!account) return undefined;
  const enrolled = await services.factors.enrolled(accountId);
  return {
    username: account.username,
    name: account.display_name,
    email: account.email,
    emailVerified: account.email_verified,
    hasPassword: account.password_hash !== null,
    methods: enrolled.map((r) => ({ factorId: r.factor.id, count: r.credentials.length })),
    backupCodes: await backupCodesStatus(services, { accountId }),
  };
}
