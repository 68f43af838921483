/**
 * Signing keys and cookie keys, stored sealed in the database and shared by
 * every provider process. RS256 for interoperability and ES256 for compactness
 * are created on first run.
 *
 * A rotation publishes before it signs: it adds a `next` pair, in the JWKS at
 * once, that starts to sign only KEY_PUBLISH_DELAY later (`activates_at`), so
 * an app that cached the JWKS within that window already holds the new keys
 * when the switch comes. The switch is state in the database, not a timer: any
 * process that looks (activateDueKeys, on load and on every key poll) makes it,
 * once, under the signing-keys lock. The pair it replaces is retired and stays
 * published until KEY_RETIREMENT_TTL has passed, for the tokens it signed. An
 * emergency rotation (a compromised key) switches at once instead.
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
  /** Private JWKs: active keys first (the provider signs with the first match), then next and retired ones (published, never signing). */
  jwks: JWK[];
  /** Cookie signing keys, newest first. */
  cookieKeys: string[];
  /** Changes whenever the set changes, so processes can notice a rotation. */
  fingerprint: string;
}

export interface KeyInfo {
  kid: string;
  alg: string;
  status: 'next' | 'active' | 'retired';
  created_at: Date;
  activates_at: Date | null;
  retired_at: Date | null;
  expires_at: Date | null;
}

const sealContext = (kid: string) => `signing_key:${kid}`;
const cookieContext = (id: string) => `provider_secret:${id}`;

function generateJwk(alg: SigningAlg): { kid: string; jwk: JWK } {
  const kid = crypto.randomBytes(12).toString('base64url');
  const { privateKey } =
    alg === 'RS256' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, jwk };
}

async function insertPair(trx: Kysely<Database>, sealer: Sealer, status: 'next' | 'active', activatesAt: Date): Promise<string[]> {
  const kids: string[] = [];
  for (const alg of SIGNING_ALGS) {
    const { kid, jwk } = generateJwk(alg);
    await trx
      .insertInto('signing_keys')
      .values({ kid, alg, status, activates_at: activatesAt, jwk_sealed: sealer.seal(JSON.stringify(jwk), sealContext(kid)) })
      .execute();
    kids.push(kid);
  }
  return kids;
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
        .values({ kid, alg, status: 'active', activates_at: new Date(), jwk_sealed: sealer.seal(JSON.stringify(jwk), sealContext(kid)) })
        .execute();
      created = true;
    }
    const cookie = await trx.selectFrom('provider_secrets').select('id').where('purpose', '=', 'cookie').executeTakeFirst();
    if (!cookie) {
      const id = `cookie:${crypto.randomBytes(9).toString('base64url')}`;
      const value = crypto.randomBytes(32).toString('base64url');
      await trx
        .insertInto('provider_secrets')
        .values({ id, purpose: 'cookie', value_sealed: sealer.seal(value, cookieContext(id)) })
        .execute();
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
    .where((eb) => eb.or([eb('status', '!=', 'retired'), eb('expires_at', '>', now)]))
    .orderBy('status', 'asc') // 'active' sorts before 'next' and 'retired': the provider signs with the first key of an algorithm
    .orderBy('created_at', 'desc')
    .execute();
  const jwks = rows.map((row) => JSON.parse(sealer.openString(row.jwk_sealed, sealContext(row.kid))) as JWK);
  const secrets = await db.selectFrom('provider_secrets').selectAll().where('purpose', '=', 'cookie').orderBy('created_at', 'desc').execute();
  const cookieKeys = secrets.map((s) => sealer.openString(s.value_sealed, cookieContext(s.id)));
  const fingerprint = [...rows.map((r) => `${r.kid}:${r.status}`), ...secrets.map((s) => s.id)].join(',');
  return { jwks, cookieKeys, fingerprint };
}

/** A cheap query that changes when keys are rotated; processes poll it. */
export async function keyFingerprint(db: Kysely<Database>, now = new Date()): Promise<string> {
  const rows = await db
    .selectFrom('signing_keys')
    .select(['kid', 'status'])
    .where((eb) => eb.or([eb('status', '!=', 'retired'), eb('expires_at', '>', now)]))
    .orderBy('status', 'asc')
    .orderBy('created_at', 'desc')
    .execute();
  const secrets = await db.selectFrom('provider_secrets').select('id').where('purpose', '=', 'cookie').orderBy('created_at', 'desc').execute();
  return [...rows.map((r) => `${r.kid}:${r.status}`), ...secrets.map((s) => s.id)].join(',');
}

export interface RotationOptions {
  /** How long a replaced key stays published (KEY_RETIREMENT_TTL). */
  retirementTtlSeconds: number;
  /** How long the next pair is published before it signs (KEY_PUBLISH_DELAY); 0 switches at once. */
  publishDelaySeconds: number;
  /** Switch now (a compromised key): the new pair signs at once, a pending next pair is dropped. */
  immediate?: boolean;
  /** With `immediate`: take the replaced keys out of the JWKS at once, so nothing they sign is accepted any more. */
  withdraw?: boolean;
  now?: Date;
}

export type RotationResult =
  /** The next pair is published and signs from activatesAt. */
  | { outcome: 'scheduled'; created: string[]; activatesAt: Date }
  /** The new pair signs now; the replaced keys are published until retiredUntil (now, when withdrawn). */
  | { outcome: 'switched'; created: string[]; retired: string[]; dropped: string[]; retiredUntil: Date }
  /** A next pair is already waiting: nothing changed. */
  | { outcome: 'pending'; pending: string[]; activatesAt: Date };

/**
 * Rotates the signing keys: by default publishes a next pair that signs after
 * the publication delay; `immediate` switches at once. A rotation while a next
 * pair waits changes nothing (two admins, or two runs, never stack up pairs).
 */
export async function rotateKeys(db: Kysely<Database>, sealer: Sealer, options: RotationOptions): Promise<RotationResult> {
  return db.transaction().execute(async (trx) => {
    await advisoryXactLock(trx, LockIds.signingKeys);
    const now = options.now ?? new Date();
    // Keys whose publication window has passed are deleted for good.
    await trx.deleteFrom('signing_keys').where('status', '=', 'retired').where('expires_at', '<=', now).execute();
    const pending = await trx.selectFrom('signing_keys').select(['kid', 'activates_at']).where('status', '=', 'next').execute();
    if (!options.immediate && options.publishDelaySeconds > 0) {
      if (pending.length) return { outcome: 'pending', pending: pending.map((k) => k.kid), activatesAt: pending[0]!.activates_at! };
      const activatesAt = new Date(now.getTime() + options.publishDelaySeconds * 1000);
      return { outcome: 'scheduled', created: await insertPair(trx, sealer, 'next', activatesAt), activatesAt };
    }
    // At once: a pending pair never signed anything; it goes, in case whatever exposed the active key exposed it too.
    await trx.deleteFrom('signing_keys').where('status', '=', 'next').execute();
    const retiredUntil = options.withdraw ? now : new Date(now.getTime() + options.retirementTtlSeconds * 1000);
    const retired = await trx
      .updateTable('signing_keys')
      .set({ status: 'retired', retired_at: now, expires_at: retiredUntil })
      .where('status', '=', 'active')
      .returning('kid')
      .execute();
    if (options.withdraw) {
      // Keys retired earlier are withdrawn as well: an emergency leaves only the new pair published.
      await trx.updateTable('signing_keys').set({ expires_at: now }).where('status', '=', 'retired').where('expires_at', '>', now).execute();
    }
    const created = await insertPair(trx, sealer, 'active', now);
    return { outcome: 'switched', created, retired: retired.map((r) => r.kid), dropped: pending.map((k) => k.kid), retiredUntil };
  });
}

/**
 * Makes a due switch: the next keys whose time has come sign from now on, and
 * the active keys of their algorithms are retired (published for
 * `retirementTtlSeconds` more). Every process calls it when it loads keys and
 * on every poll; the lock makes exactly one of them do it. Returns the kids
 * that became active (empty when nothing was due).
 */
export async function activateDueKeys(db: Kysely<Database>, retirementTtlSeconds: number, now = new Date()): Promise<string[]> {
  const due = await db.selectFrom('signing_keys').select('kid').where('status', '=', 'next').where('activates_at', '<=', now).execute();
  if (!due.length) return [];
  return db.transaction().execute(async (trx) => {
    await advisoryXactLock(trx, LockIds.signingKeys);
    // Read again under the lock: another process may have switched meanwhile.
    const next = await trx.selectFrom('signing_keys').select(['kid', 'alg']).where('status', '=', 'next').where('activates_at', '<=', now).execute();
    if (!next.length) return [];
    const algs = [...new Set(next.map((k) => k.alg))];
    await trx
      .updateTable('signing_keys')
      .set({ status: 'retired', retired_at: now, expires_at: new Date(now.getTime() + retirementTtlSeconds * 1000) })
      .where('status', '=', 'active')
      .where('alg', 'in', algs)
      .execute();
    await trx
      .updateTable('signing_keys')
      .set({ status: 'active', activates_at: now })
      .where(
        'kid',
        'in',
        next.map((k) => k.kid),
      )
      .execute();
    return next.map((k) => k.kid);
  });
}

/** Every key, active first, then next, then retired (expired ones included until the next rotation deletes them). */
export async function listKeys(db: Kysely<Database>): Promise<KeyInfo[]> {
  return db
    .selectFrom('signing_keys')
    .select(['kid', 'alg', 'status', 'created_at', 'activates_at', 'retired_at', 'expires_at'])
    .orderBy('status', 'asc')
    .orderBy('created_at', 'desc')
    .execute();
}
