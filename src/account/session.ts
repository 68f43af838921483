/**
 * The account center's own session: an HttpOnly, SameSite=Lax cookie holding,
 * sealed (AES-256-GCM under SECRET_KEY, src/security/sealer.ts), what the ID
 * token said (sub, sid, acr, amr, auth_time), its end, and the random value
 * its forms carry against cross-site requests (csrf.ts). Nothing in it is
 * trusted on its own: every request also finds the provider session it came
 * from, by the `sid` the provider gave the account center, in the provider's
 * store (migration 0014 indexes it). Signing out anywhere, an administrator
 * ending the account's sessions, a password change elsewhere, the provider
 * session's expiry: the account center session stops with it, on the next
 * request, in every process.
 *
 * A second cookie holds the round trip in progress through the sign-in pages
 * (PKCE verifier, state, nonce, where to return), for INTERACTION_TTL.
 */
import crypto from 'node:crypto';
import type { Context } from 'koa';
import { sql } from 'kysely';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { Account } from '../db/schema.ts';
import { findAccountById } from '../accounts/accounts.ts';
import { SealError } from '../security/sealer.ts';
import { epochSeconds } from '../clock.ts';
import { ACCOUNT_BASE, ACCOUNT_CLIENT_ID } from './client.ts';
import type { PendingSignIn } from './provider-link.ts';

export const SESSION_COOKIE = 'twofold.account';
export const PENDING_COOKIE = 'twofold.account-login';
const SESSION_CONTEXT = 'cookie:twofold.account';
const PENDING_CONTEXT = 'cookie:twofold.account-login';

const sessionSchema = z.object({
  sub: z.string().min(1),
  sid: z.string().min(1),
  acr: z.string().optional(),
  amr: z.array(z.string()),
  /** Epoch seconds, the services' clock (the ID token's auth_time). */
  authTime: z.number().int(),
  /** Epoch seconds, real time: the cookie's own end. */
  exp: z.number().int(),
  csrf: z.string().min(32),
});
export type AccountSession = z.infer<typeof sessionSchema>;

const pendingSchema = z.object({
  state: z.string(),
  nonce: z.string(),
  verifier: z.string(),
  returnTo: z.string(),
  purpose: z.enum(['sign-in', 'proof', 'add']),
  sub: z.string().optional(),
  startedAt: z.number().int(),
});

/** The person at the account center, as far as this request is concerned. */
export interface CurrentAccount {
  session: AccountSession;
  account: Account;
  /** The uid of the provider session behind it (to mark "this browser" in the list of sessions). */
  sessionUid: string;
}

function cookieOptions(services: Pick<Services, 'config'>, maxAgeSeconds: number) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: services.config.secureCookies,
    path: ACCOUNT_BASE,
    maxAge: maxAgeSeconds * 1000,
    overwrite: true,
    signed: false,
  };
}

function readSealed<T>(ctx: Context, services: Pick<Services, 'sealer'>, name: string, context: string, schema: z.ZodType<T>): T | undefined {
  const value = ctx.cookies.get(name, { signed: false });
  if (!value) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(services.sealer.openString(value, context)));
    return parsed.success ? parsed.data : undefined;
  } catch (err) {
    // Tampered with, from another SECRET_KEY, or not ours: no session.
    if (err instanceof SealError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** Starts (or replaces) the session from a redeemed ID token's claims. */
export function startAccountSession(
  ctx: Context,
  services: Pick<Services, 'sealer' | 'config' | 'clock'>,
  claims: { sub: string; sid?: unknown; acr?: unknown; amr?: unknown; auth_time?: unknown },
): AccountSession | undefined {
  if (typeof claims.sid !== 'string' || typeof claims.auth_time !== 'number') return undefined;
  const lifetime = services.config.SESSION_TTL;
  const session: AccountSession = {
    sub: claims.sub,
    sid: claims.sid,
    ...(typeof claims.acr === 'string' ? { acr: claims.acr } : {}),
    amr: Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === 'string') : [],
    authTime: claims.auth_time,
    exp: Math.floor(Date.now() / 1000) + lifetime,
    csrf: crypto.randomBytes(32).toString('base64url'),
  };
  ctx.cookies.set(SESSION_COOKIE, services.sealer.seal(JSON.stringify(session), SESSION_CONTEXT), cookieOptions(services, lifetime));
  return session;
}

/**
 * A proof came back for the same session: what it proved replaces what the session held, and the form token stays
 * (a form open in another tab still works).
 */
export function refreshAccountSession(ctx: Context, services: Pick<Services, 'sealer' | 'config'>, session: AccountSession): void {
  const left = Math.max(1, session.exp - Math.floor(Date.now() / 1000));
  ctx.cookies.set(SESSION_COOKIE, services.sealer.seal(JSON.stringify(session), SESSION_CONTEXT), cookieOptions(services, left));
}

export function endAccountSession(ctx: Context, services: Pick<Services, 'config'>): void {
  ctx.cookies.set(SESSION_COOKIE, '', { ...cookieOptions(services, 0), maxAge: undefined, expires: new Date(0) });
}

/** The session cookie's content, unchecked against the provider (for the sign-out that ends it). */
export function readAccountSession(ctx: Context, services: Pick<Services, 'sealer'>): AccountSession | undefined {
  const session = readSealed(ctx, services, SESSION_COOKIE, SESSION_CONTEXT, sessionSchema);
  return session && session.exp > Math.floor(Date.now() / 1000) ? session : undefined;
}

/**
 * The live provider session the account center was given `sid` in, for this account: its uid, or undefined when it
 * ended. One indexed read (migration 0014).
 */
export async function providerSessionUid(services: Pick<Services, 'db'>, sub: string, sid: string): Promise<string | undefined> {
  const row = await services.db
    .selectFrom('oidc_payloads')
    .select(sql<string | null>`jsonb_extract_path_text(payload, 'uid')`.as('uid'))
    .where('kind', '=', 'Session')
    .where(sql<string>`jsonb_extract_path_text(payload, 'authorizations', ${sql.lit(ACCOUNT_CLIENT_ID)}, 'sid')`, '=', sid)
    .where(sql<string>`jsonb_extract_path_text(payload, 'accountId')`, '=', sub)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .executeTakeFirst();
  return row?.uid ?? undefined;
}

/**
 * The signed-in person, when the cookie is ours, unexpired, its provider session still there and the account still
 * enabled; otherwise undefined (and the cookie is cleared, so the next page starts a sign-in).
 */
export async function loadAccountSession(ctx: Context, services: Services): Promise<CurrentAccount | undefined> {
  const session = readAccountSession(ctx, services);
  if (!session) return undefined;
  const [sessionUid, account] = await Promise.all([providerSessionUid(services, session.sub, session.sid), findAccountById(services.db, session.sub)]);
  if (!sessionUid || !account || account.disabled) {
    endAccountSession(ctx, services);
    return undefined;
  }
  return { session, account, sessionUid };
}

export function savePendingSignIn(ctx: Context, services: Pick<Services, 'sealer' | 'config'>, pending: PendingSignIn): void {
  ctx.cookies.set(PENDING_COOKIE, services.sealer.seal(JSON.stringify(pending), PENDING_CONTEXT), cookieOptions(services, services.config.INTERACTION_TTL));
}

/** The round trip in progress, taken: the cookie is cleared, so a callback is redeemed at most once. */
export function takePendingSignIn(ctx: Context, services: Pick<Services, 'sealer' | 'config' | 'clock'>): PendingSignIn | undefined {
  const pending = readSealed(ctx, services, PENDING_COOKIE, PENDING_CONTEXT, pendingSchema);
  ctx.cookies.set(PENDING_COOKIE, '', { ...cookieOptions(services, 0), maxAge: undefined, expires: new Date(0) });
  if (!pending || epochSeconds(services.clock) - pending.startedAt > services.config.INTERACTION_TTL) return undefined;
  return pending;
}
