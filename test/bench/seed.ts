/**
 * Seeds a benchmark database before the provider starts, with the project's
 * own modules: many accounts (one password hash, computed once with the
 * configured argon2id parameters, so each account costs what a real one
 * does to verify), a TOTP credential each (stored as enrolment stores it,
 * sealed), and one first-party confidential app.
 */
import type { Config } from '../../src/config.ts';
import { openServices } from '../../src/bootstrap.ts';
import { newAccountId } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { enrolTotp, newTotpSecret } from '../helpers/factors.ts';
import type { BenchAccount } from './protocol.ts';

export interface Seeded {
  accounts: BenchAccount[];
  clientId: string;
  clientSecret: string;
  ms: number;
}

/** 198.18.0.0/15 is set aside for benchmarks (RFC 2544): one address per simulated user, as a proxy would report it. */
export function benchAddress(i: number): string {
  const a = (i % 131_000) + 1;
  return `198.${18 + (a >> 16)}.${(a >> 8) & 255}.${a & 255}`;
}

export async function seed(config: Config, options: { accounts: number; prefix: string; password: string; redirectUri: string }): Promise<Seeded> {
  const t0 = performance.now();
  const opened = await openServices(config, { migrate: true });
  const { services } = opened;
  try {
    const { db } = services;
    if (config.DATABASE_URL) {
      const keys = await db.selectFrom('signing_keys').select('kid').limit(1).execute();
      if (keys.length && !process.env.SECRET_KEY) {
        throw new Error(
          'DATABASE_URL holds signing keys sealed with another SECRET_KEY: point it at a fresh database (createdb), or set SECRET_KEY to the one it was made with',
        );
      }
    }
    const passwordHash = await services.hasher.hash(options.password);
    const rows = Array.from({ length: options.accounts }, (_, i) => ({
      id: newAccountId(),
      username: `${options.prefix}${i}`,
      email: null,
      email_verified: false,
      display_name: `Bench user ${i}`,
      password_hash: passwordHash,
      password_changed_at: new Date(),
      // As enrolling TOTP through the pages leaves it (FactorEngine.finishEnrollment).
      last_factor_id: 'totp',
    }));
    for (let i = 0; i < rows.length; i += 500)
      await db
        .insertInto('accounts')
        .values(rows.slice(i, i + 500))
        .execute();

    const accounts: BenchAccount[] = new Array(rows.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: services.dbKind === 'postgres' ? 8 : 1 }, async () => {
        while (next < rows.length) {
          const i = next++;
          const secret = await enrolTotp(services, rows[i]!.id, newTotpSecret());
          accounts[i] = { username: rows[i]!.username, secret, ip: benchAddress(i) };
        }
      }),
    );
    const client = await createClient(db, services.sealer, { name: `${options.prefix}app`, redirectUris: [options.redirectUri], firstParty: true });
    return { accounts, clientId: client.clientId, clientSecret: client.clientSecret!, ms: Math.round(performance.now() - t0) };
  } finally {
    await opened.close();
  }
}
