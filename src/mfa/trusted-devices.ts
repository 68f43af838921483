/**
 * Trusted devices ("don't ask again on this device"). The record lives
 * server-side; the browser holds an HttpOnly, signed cookie with the record's
 * id and a random token (stored only as a hash). A device stops counting when
 * it expires, is revoked, or the account's factors or password change (the
 * record is bound to a fingerprint of them).
 */
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { constantTimeEqual } from '../security/keyed-hash.ts';

export const DEVICE_COOKIE = 'twofold.device';

const sha256 = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');

/** A fingerprint of what the trust was granted on: the account's credentials and password. */
async function bindingFor(db: Kysely<Database>, accountId: string): Promise<string> {
  const [creds, account] = await Promise.all([
    db.selectFrom('credentials').select('id').where('account_id', '=', accountId).orderBy('id').execute(),
    db.selectFrom('accounts').select(['password_changed_at', 'password_hash']).where('id', '=', accountId).executeTakeFirst(),
  ]);
  return sha256(JSON.stringify([creds.map((c) => c.id), account?.password_changed_at?.toISOString() ?? null, account?.password_hash ?? null]));
}

/** A short label from the User-Agent, so a user can tell devices apart. */
export function deviceLabel(userAgent: string): string {
  const browser = /(Edg|Firefox|Chrome|Safari)\/[\d.]+/.exec(userAgent)?.[1]?.replace('Edg', 'Edge') ?? 'Browser';
  const os = /(Windows|Mac OS X|Android|iPhone|iPad|Linux)/.exec(userAgent)?.[1]?.replace('Mac OS X', 'macOS') ?? 'unknown system';
  return `${browser} on ${os}`;
}

export async function trustDevice(db: Kysely<Database>, accountId: string, userAgent: string, days: number): Promise<{ id: string; cookie: string; expires: Date }> {
  const id = crypto.randomBytes(12).toString('base64url');
  const token = crypto.randomBytes(32).toString('base64url');
  const expires = new Date(Date.now() + days * 86400 * 1000);
  await db
    .insertInto('trusted_devices')
    .values({ id, account_id: accountId, token_hash: sha256(token), label: deviceLabel(userAgent), binding: await bindingFor(db, accountId), expires_at: expires })
    .execute();
  return { id, cookie: `${id}.${token}`, expires };
}

/** Whether the cookie names a live trusted device of this account. */
export async function isTrustedDevice(db: Kysely<Database>, accountId: string, cookie: string | undefined): Promise<boolean> {
  if (!cookie) return false;
  const [id, token] = cookie.split('.');
  if (!id || !token) return false;
  const row = await db
    .selectFrom('trusted_devices')
    .select(['token_hash', 'binding'])
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  if (!row || !constantTimeEqual(row.token_hash, sha256(token))) return false;
  if (row.binding !== (await bindingFor(db, accountId))) return false;
  await db.updateTable('trusted_devices').set({ last_used_at: new Date() }).where('id', '=', id).execute();
  return true;
}

export function readDeviceCookie(ctx: Context): string | undefined {
  return ctx.cookies.get(DEVICE_COOKIE, { signed: true }) ?? undefined;
}

export function setDeviceCookie(ctx: Context, value: string, expires: Date, secure: boolean): void {
  ctx.cookies.set(DEVICE_COOKIE, value, { signed: true, httpOnly: true, sameSite: 'lax', secure, expires, path: '/', overwrite: true });
}

export async function listDevices(db: Kysely<Database>, accountId: string) {
  return db
    .selectFrom('trusted_devices')
    .select(['id', 'label', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'])
    .where('account_id', '=', accountId)
    .orderBy('created_at', 'desc')
    .execute();
}

export async function revokeDevice(db: Kysely<Database>, accountId: string, id: string): Promise<boolean> {
  const r = await db.updateTable('trusted_devices').set({ revoked_at: new Date() }).where('id', '=', id).where('account_id', '=', accountId).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function revokeAllDevices(db: Kysely<Database>, accountId: string): Promise<number> {
  const r = await db.updateTable('trusted_devices').set({ revoked_at: new Date() }).where('account_id', '=', accountId).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows);
}
