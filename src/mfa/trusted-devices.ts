/**
 * Trusted devices ("don't ask again on this device"). The record lives
 * server-side; the browser holds an HttpOnly, signed cookie with the record's
 * id and a random token (stored only as a hash). A device stops counting when
 * it expires, is revoked, or the account's factors or password change (the
 * record is bound to a fingerprint of them). It also records which factor's
 * proof created it: it stands in only for that factor (src/policy/decide.ts),
 * so an app that does not accept that factor is not satisfied by it.
 */
import crypto from 'node:crypto';
import type { Context } from 'koa';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { constantTimeEqual } from '../security/keyed-hash.ts';

export const DEVICE_COOKIE = 'twofold.device';

const sha256 = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');

/**
 * A fingerprint of what the trust was granted on: the account's credentials
 * and when its password was last set (and whether it has one). Not the
 * password hash itself: a silent rehash at sign-in (new argon2 parameters)
 * changes the hash without any change a user made, and must not void devices.
 */
async function bindingFor(db: Kysely<Database>, accountId: string): Promise<string> {
  const [creds, account] = await Promise.all([
    db.selectFrom('credentials').select('id').where('account_id', '=', accountId).orderBy('id').execute(),
    db
      .selectFrom('accounts')
      .select(['password_changed_at', sql<boolean>`password_hash is not null`.as('has_password')])
      .where('id', '=', accountId)
      .executeTakeFirst(),
  ]);
  return sha256(JSON.stringify(['v2', creds.map((c) => c.id), account?.password_changed_at?.toISOString() ?? null, account?.has_password ?? false]));
}

/** A short label from the User-Agent, so a user can tell devices apart. */
export function deviceLabel(userAgent: string): string {
  const browser = /(Edg|Firefox|Chrome|Safari)\/[\d.]+/.exec(userAgent)?.[1]?.replace('Edg', 'Edge') ?? 'Browser';
  const os = /(Windows|Mac OS X|Android|iPhone|iPad|Linux)/.exec(userAgent)?.[1]?.replace('Mac OS X', 'macOS') ?? 'unknown system';
  return `${browser} on ${os}`;
}

/** Records a trusted device after a second factor was proved; `factorId` is the factor just proved, the one the device will stand in for. */
export async function trustDevice(
  db: Kysely<Database>,
  accountId: string,
  userAgent: string,
  days: number,
  factorId: string,
): Promise<{ id: string; cookie: string; expires: Date }> {
  const id = crypto.randomBytes(12).toString('base64url');
  const token = crypto.randomBytes(32).toString('base64url');
  const expires = new Date(Date.now() + days * 86400 * 1000);
  await db
    .insertInto('trusted_devices')
    .values({
      id,
      account_id: accountId,
      token_hash: sha256(token),
      label: deviceLabel(userAgent),
      binding: await bindingFor(db, accountId),
      expires_at: expires,
      factor_id: factorId,
    })
    .execute();
  return { id, cookie: `${id}.${token}`, expires };
}

/** A live trusted device the browser presented: its id, and the factor whose proof created it. */
export interface TrustedDevice {
  id: string;
  factor: string | null;
}

/**
 * The live trusted device of this account the cookie names, if any. Reading
 * it changes nothing: `last_used_at` moves only when the device actually
 * stood in for a factor (`markDeviceUsed`), not on every request carrying it.
 */
export async function isTrustedDevice(db: Kysely<Database>, accountId: string, cookie: string | undefined): Promise<TrustedDevice | undefined> {
  if (!cookie) return undefined;
  const [id, token] = cookie.split('.');
  if (!id || !token) return undefined;
  const row = await db
    .selectFrom('trusted_devices')
    .select(['token_hash', 'binding', 'factor_id'])
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  if (!row || !constantTimeEqual(row.token_hash, sha256(token))) return undefined;
  if (row.binding !== (await bindingFor(db, accountId))) return undefined;
  return { id, factor: row.factor_id };
}

/** The device stood in for the second factor of a sign-in. */
export async function markDeviceUsed(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('trusted_devices').set({ last_used_at: new Date() }).where('id', '=', id).execute();
}

export function readDeviceCookie(ctx: Context): string | undefined {
  return ctx.cookies.get(DEVICE_COOKIE, { signed: true }) ?? undefined;
}

export function setDeviceCookie(ctx: Context, value: string, expires: Date, secure: boolean): void {
  ctx.cookies.set(DEVICE_COOKIE, value, { signed: true, httpOnly: true, sameSite: 'lax', secure, expires, path: '/', overwrite: true });
}

/** `live`, or why a device no longer counts. */
export type DeviceState = 'live' | 'revoked' | 'expired' | 'void (factors or password changed)';

/** The account's devices with their real state: a device voided by a change of factors or password is not shown as live. */
export async function listDevices(db: Kysely<Database>, accountId: string) {
  const [rows, binding] = await Promise.all([
    db
      .selectFrom('trusted_devices')
      .select(['id', 'label', 'factor_id', 'created_at', 'last_used_at', 'expires_at', 'revoked_at', 'binding'])
      .where('account_id', '=', accountId)
      .orderBy('created_at', 'desc')
      .execute(),
    bindingFor(db, accountId),
  ]);
  const now = Date.now();
  return rows.map(({ binding: bound, ...r }) => {
    const state: DeviceState = r.revoked_at
      ? 'revoked'
      : r.expires_at.getTime() <= now
        ? 'expired'
        : bound !== binding
          ? 'void (factors or password changed)'
          : 'live';
    return { ...r, state };
  });
}

export async function revokeDevice(db: Kysely<Database>, accountId: string, id: string): Promise<boolean> {
  const r = await db
    .updateTable('trusted_devices')
    .set({ revoked_at: new Date() })
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function revokeAllDevices(db: Kysely<Database>, accountId: string): Promise<number> {
  const r = await db
    .updateTable('trusted_devices')
    .set({ revoked_at: new Date() })
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
