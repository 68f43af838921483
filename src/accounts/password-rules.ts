/**
 * What a new password must be, wherever one is set (the `twofold` command,
 * the account center, a reset link, the admin API): NIST SP 800-63B rev. 4,
 * section 3.1.1.2.
 *
 * - Length, counted in Unicode code points after normalisation: at least 8,
 *   or 15 when the password is the account's only factor (single-factor
 *   authentication); at most 256, which bounds what a request makes argon2
 *   hash, far above any passphrase a person types.
 * - No composition rules (no "a digit and a symbol"): every character,
 *   spaces and emoji included, is allowed and counts.
 * - Unicode normalised with NFKC before it is checked, hashed or compared
 *   (password-hasher.ts), so "ｐａｓｓ" typed on one keyboard and "pass" on
 *   another are the same password.
 * - Not one of the common or breached passwords shipped with Twofold
 *   (password-blocklist.ts), compared in lower case, and with its spaces
 *   taken out too ("pass word 123" is "password123").
 * - Not containing the account's own username, email address or the part of
 *   it before the @, nor the product's name (BRAND_NAME), in any case: the
 *   first words an attacker tries against one account.
 *
 * A refusal is a value naming a catalogue message (password.json), so every
 * edge shows the same words: a page in the person's language, the command in
 * English.
 */
import type { MessageRef } from '../i18n/catalogue.ts';
import { isBlocklisted } from './password-blocklist.ts';

/** The shortest password accepted when another factor protects the account too. */
export const MIN_LENGTH = 8;
/** The shortest password accepted when it is the account's only factor. */
export const MIN_LENGTH_ONLY_FACTOR = 15;
/** The longest password accepted (code points). */
export const MAX_LENGTH = 256;
/** Context words shorter than this are refused only as the whole password, not as a part of it ("al" is in too many words). */
const MIN_CONTAINED = 4;

/** What a password is hashed and compared as. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** The form a blocklist entry and a candidate are compared in. */
export function blocklistForm(password: string): string {
  return normalizePassword(password).toLowerCase();
}

/** Length as NIST counts it: one per Unicode code point. */
export function passwordLength(password: string): number {
  let n = 0;
  for (const _ of password) n++;
  return n;
}

/** Who the password is for, and what it guards. */
export interface PasswordContext {
  username?: string | null;
  email?: string | null;
  /** The product's name (BRAND_NAME). */
  productName: string;
  /** No other factor protects the account: the longer minimum applies. */
  onlyFactor: boolean;
}

export type PasswordRefusal = 'too_short' | 'too_long' | 'common' | 'contains_username' | 'contains_email' | 'contains_product';

export type PasswordVerdict = { ok: true; password: string } | { ok: false; reason: PasswordRefusal; message: MessageRef };

/** The shortest password accepted in this context. */
export function minimumLength(context: Pick<PasswordContext, 'onlyFactor'>): number {
  return context.onlyFactor ? MIN_LENGTH_ONLY_FACTOR : MIN_LENGTH;
}

/** Checks a new password; on success, returns it normalised (what to hash). */
export function checkNewPassword(raw: string, context: PasswordContext): PasswordVerdict {
  const password = normalizePassword(raw);
  const length = passwordLength(password);
  const min = minimumLength(context);
  if (length < min) {
    return refuse(
      'too_short',
      context.onlyFactor ? { key: 'password.rule.tooShortOnlyFactor', params: { min } } : { key: 'password.rule.tooShort', params: { min } },
    );
  }
  if (length > MAX_LENGTH) return refuse('too_long', { key: 'password.rule.tooLong', params: { max: MAX_LENGTH } });

  const lower = password.toLowerCase();
  const forms = [...new Set([lower, lower.replace(/\s+/g, '')])];
  const contains = (word: string | null | undefined): boolean => {
    const w = word ? blocklistForm(word).trim() : '';
    if (!w) return false;
    const tight = w.replace(/\s+/g, '');
    if (passwordLength(tight) < MIN_CONTAINED) return forms.some((f) => f === w || f === tight);
    return forms.some((f) => f.includes(w) || f.includes(tight));
  };
  if (contains(context.username)) return refuse('contains_username', { key: 'password.rule.username' });
  const email = context.email?.trim();
  const localPart = email?.includes('@') ? email.slice(0, email.lastIndexOf('@')) : undefined;
  if (email && (contains(email) || contains(localPart))) return refuse('contains_email', { key: 'password.rule.email' });
  if (contains(context.productName)) return refuse('contains_product', { key: 'password.rule.product', params: { product: context.productName } });
  if (forms.some((f) => isBlocklisted(f))) return refuse('common', { key: 'password.rule.common' });
  return { ok: true, password };
}

function refuse(reason: PasswordRefusal, message: MessageRef): PasswordVerdict {
  return { ok: false, reason, message };
}
