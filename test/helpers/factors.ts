/** Seeds factor credentials directly and computes codes, for sign-in tests. */
import { Secret, TOTP } from 'otpauth';
import type { Services } from '../../src/services.ts';

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The code for the time step `offset` steps from now. */
export function totpCode(secret: string, offset = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: Date.now() + offset * 30_000 });
}

export async function enrolTotp(services: Services, accountId: string, secret = newTotpSecret()): Promise<string> {
  await services.factors.store.insert(accountId, 'totp', { label: 'Test phone', secret, data: { algorithm: 'SHA1', digits: 6, period: 30 }, counter: null });
  return secret;
}

export async function enrolBackupCodes(services: Services, accountId: string, codes: string[]): Promise<string> {
  return services.factors.store.insert(accountId, 'backup-codes', { label: 'Backup codes', oneTimeCodes: codes }, { replaceFactor: true });
}
