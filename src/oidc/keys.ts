/**
 * Signing keys and cookie keys, stored sealed in the database and shared by
 * every provider process. RS256 for interoperability and ES256 for compactness
 * are created on first run; rotation retires the active pair, which stays
 * published (for verification) until KEY_RETIREMENT_TTL has passed.
 */
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { advisoryXactLock, LockIds } from '../db/locks.ts';
import type { Sealer } from '../security/sealer.ts';

/** A JSON Web Key, private parts included. */
export type JWK = Record<string, unknown> & { kid?: string; alg?: string };

export const SIGNING_ALGS = ['RS256', 'ES256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export interface KeyMaterial {
  /** Private JWKs: active keys first (the provider signs with the first match), then retired ones. */
  jwks: JWK[];
  /** Cookie signing keys, newest first. */
  cookieKeys: string[];
  /** Changes whenever the set changes, so processes can notice a rotation. */
  fingerprint: string;
}

export interface KeyInfo {
  kid: string;
  alg: string;
  status: 'active' | 'retired';
  created_at: Date;
  retired_at: Date | null;
  expires_at: Date | null;
}

const sealContext = (kid: string) => `signing_key:${kid}`;
const cookieContext = (id: string) => `provider_secret:${id}`;

function generateJwk(alg: SigningAlg): { kid: string; jwk: JWK } {
  const kid = crypto.randomBytes(12).toString('base64url');
  const { privateKey } =
    alg === 'RS256'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, jwk };
}

async function insertActivePair(trx: Kysely<Database>, sealer: Sealer): Promise<void> {
  for (const alg of SIGNING_ALGS) {
    const { kid, jwk } = generateJwk(alg);
    await trx
      .insertInto('signing_keys')
      .values({ kid, alg, status: 'active', jwk_sealed: sealer.seal(JSON.stringify(jwk), sealContext(kid)) })
      .execute();
  }
}

/** Creates the first signing keys and cookie key if there are none. Safe to call from many processes at once. */
export async function ensureKeys(db: Kysely<Database>, sealer: Sealer): Promise<{ created: boolean }> {
  return db.transaction().execute(async (trx) => {
    await advisoryXactLock(trx, LockIds.signingKeys);
    let created = false;
    const active = await trx.selectFrom('signing_keys').select('alg').where('status', '=', 'active').execute();
    const missing = SIGNING_ALGS.filter((alg) => !active.some((k) => k.alg === alg));
    for (const alg of missing) {
      const { kid, jwk } = generateJwk(alg);
      await trx
        .insertInto('signing_keys')
        .values({ kid, alg, status: 'active', jwk_sealed: sealer.seal(JSON.stringify(jwk), sealContext(kid)) })
        .execute();
      created = true;
    }
    const cookie = await trx.selectFrom('provider_secrets').select('id').where('purpose', '=', 'cookie').executeTakeFirst();
    if (!cookie) {
      const id = `cookie:${crypto.randomBytes(9).toString('base64url')}`;
      const value = crypto.randomBytes(32).toString('base64url');
      await trx.insertInto('provider_secrets').values({ id, purpose: 'cookie', value_sealed: sealer.seal(value, cookieContext(id)) }).execute();
      created = true;
    }
    return { created };
  });
}

/** Loads what the provider needs; retired keys past their expiry are left out. */
export async function loadKeyMaterial(db: Kysely<Database>, sealer: Sealer, now = new Date()): Promise<KeyMaterial> {
  const rows = await db
    .selectFrom('signing_keys')
    .selectAll()
    .where((eb) => eb.or([eb('status', '=', 'active'), eb('expires_at', '>', now)]))
    .orderBy('status', 'asc') // 'active' sorts before 'retired'
    .orderBy('created_at', 'desc')
    .execute();
  const jwks = rows.map((row) => JSON.parse(sealer.openString(row.jwk_sealed, sealContext(row.kid))) as JWK);
  const secrets = await db
    .selectFrom('provider_secrets')
    .selectAll()
    .where('purpose', '=', 'cookie')
    .orderBy('created_at', 'desc')
    .execute();
  const cookieKeys = secrets.map((s) => sealer.openString(s.value_sealed, cookieContext(s.id)));
  const fingerprint = [...rows.map((r) => `${r.kid}:${r.status}`), ...secrets.map((s) => s.id)].join(',');
  return { jwks, cookieKeys, fingerprint };
}

/** A cheap query that changes when keys are rotated; processes poll it. */
export async function keyFingerprint(db: Kysely<Database>, now = new Date()): Promise<string> {
  const rows = await db
    .selectFrom('signing_keys')
    .select(['kid', 'status'])
    .where((eb) => eb.or([eb('status', '=', 'active'), eb('expires_at', '>', now)]))
    .orderBy('status', 'asc')
    .orderBy('created_at', 'desc')
    .execute();
  const secrets = await db.selectFrom('provider_secrets').select('id').where('purpose', '=', 'cookie').orderBy('created_at', 'desc').execute();
  return [...rows.map((r) => `${r.kid}:${r.status}`), ...secrets.map((s) => s.id)].join(',');
}

/**
 * Retires the active keys (still published for `retirementTtlSeconds`, which
 * must outlive every token they signed) and creates a new active pair.
 */
export async function rotateKeys(db: Kysely<Database>, sealer: Sealer, retirementTtlSeconds: number): Promise<{ retired: string[]; created: string[] }> {
  return db.transaction().execute(async (trx) => {
    await advisoryXactLock(trx, LockIds.signingKeys);
    const now = new Date();
    const retired = await trx
      .updateTable('signing_keys')
      .set({ status: 'retired', retired_at: now, expires_at: new Date(now.getTime() + retirementTtlSeconds * 1000) })
      .where('status', '=', 'active')
      .returning('kid')
      .execute();
    await insertActivePair(trx, sealer);
    // Keys whose publication window has passed are deleted for good.
    await trx.deleteFrom('signing_keys').where('status', '=', 'retired').where('expires_at', '<=', now).execute();
    const created = await trx.selectFrom('signing_keys').select('kid').where('status', '=', 'active').execute();
    return { retired: retired.map((r) => r.kid), created: created.map((r) => r.kid) };
  });
}

export async function listKeys(db: Kysely<Database>): Promise<KeyInfo[]> {
  return db
    .selectFrom('signing_keys')
    .select(['kid', 'alg', 'status', 'created_at', 'retired_at', 'expires_at'])
    .orderBy('status', 'asc')
    .orderBy('created_at', 'desc')
    .execute();
}
