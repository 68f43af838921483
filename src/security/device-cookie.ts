/**
 * Device cookies (OWASP's "slow down online guessing with device cookies"):
 * a browser that completed a sign-in to an account carries a cookie naming
 * that account and a random device id, signed with HMAC-SHA256 under a key
 * derived from SECRET_KEY. Throttles give such a known browser a counter of
 * its own, so failures from everywhere else (an attacker's) cannot lock it.
 *
 * The cookie holds no secret and grants nothing: it only chooses which
 * counters a guess is charged to. Forging one needs the key; a stolen one
 * shares its counter with the browser it was stolen from, and lapses with
 * the account's next password change (an entry counts only if it was issued
 * after the password was last set), so a former holder of the password does
 * not keep a counter of its own. Nothing is stored server-side.
 */
import crypto from 'node:crypto';
import { z } from 'zod';

export const KNOWN_BROWSER_COOKIE = 'twofold.known';
/** How long a browser stays known after its last completed sign-in. */
export const KNOWN_BROWSER_DAYS = 180;
/** Accounts one browser is remembered for, the most recent kept. */
const MAX_ACCOUNTS = 8;
const VERSION = 'v1';

/** A browser's signed record: its id, and the accounts it signed in to (with when, in ms). */
export interface KnownBrowser {
  deviceId: string;
  accounts: Array<{ accountId: string; since: number }>;
}

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const payloadSchema = z
  .object({
    d: id,
    a: z.array(z.tuple([id, z.number().int().nonnegative()])).max(MAX_ACCOUNTS),
  })
  .strict();

export class DeviceCookies {
  readonly #key: Buffer;

  constructor(masterKey: Buffer) {
    this.#key = Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), 'twofold/device-cookie/v1', 32));
  }

  #mac(payload: string): string {
    return crypto.createHmac('sha256', this.#key).update(`${VERSION}.${payload}`).digest('base64url');
  }

  seal(browser: KnownBrowser): string {
    const payload = Buffer.from(JSON.stringify({ d: browser.deviceId, a: browser.accounts.map((a) => [a.accountId, a.since]) })).toString('base64url');
    return `${VERSION}.${payload}.${this.#mac(payload)}`;
  }

  /** The browser a cookie value names, or undefined for anything not signed by this key (or malformed). */
  open(value: string | undefined): KnownBrowser | undefined {
    if (!value || value.length > 2048) return undefined;
    const [version, payload, mac] = value.split('.');
    if (version !== VERSION || !payload || !mac) return undefined;
    const expected = Buffer.from(this.#mac(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    const parsed = payloadSchema.safeParse(json);
    if (!parsed.success) return undefined;
    return { deviceId: parsed.data.d, accounts: parsed.data.a.map(([accountId, since]) => ({ accountId, since })) };
  }
}

/** The record after a completed sign-in to `accountId`: the same device id (a new one for a new browser), this account first. */
export function rememberAccount(browser: KnownBrowser | undefined, accountId: string, now = Date.now()): KnownBrowser {
  const others = (browser?.accounts ?? []).filter((a) => a.accountId !== accountId);
  return {
    deviceId: browser?.deviceId ?? crypto.randomBytes(16).toString('base64url'),
    accounts: [{ accountId, since: now }, ...others].slice(0, MAX_ACCOUNTS),
  };
}

/**
 * The device id this browser has for the account, when it is known there: it
 * completed a sign-in to the account since the password was last set.
 * Otherwise undefined, and the browser is counted with every unknown one.
 */
export function knownDevice(browser: KnownBrowser | undefined, account: { id: string; password_changed_at: Date | null }): string | undefined {
  const entry = browser?.accounts.find((a) => a.accountId === account.id);
  if (!entry) return undefined;
  if (account.password_changed_at && entry.since < account.password_changed_at.getTime()) return undefined;
  return browser!.deviceId;
}
