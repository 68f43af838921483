/**
 * What may pass the edge as text: no NUL character, no lone surrogate, and,
 * where bytes are percent-encoded, well-formed UTF-8.
 *
 * PostgreSQL stores text and jsonb as UTF-8 and refuses a NUL (`invalid byte
 * sequence for encoding "UTF8": 0x00`) and a lone surrogate escape in JSON
 * (`\ud800`); every query behind a parameter would be a 500. Malformed UTF-8
 * would become U+FFFD on the way in: stored, but never what was sent. So each
 * is refused where it enters, once, instead of in every query.
 */
import { isUtf8 } from 'node:buffer';

/** In a `u` pattern a surrogate pair is one code point, so only a lone surrogate matches. */
const LONE_SURROGATE = /\p{Cs}/u;

/** A string with no NUL and no lone surrogate. */
export function isCleanText(text: string): boolean {
  return !text.includes('\0') && !LONE_SURROGATE.test(text);
}

const HEX = /^[0-9a-f]{2}$/i;

/** Percent-decodes bytes as a form does (`+` is a space); a `%` not followed by two hex digits stays as it is, as querystring leaves it. */
function percentDecode(raw: string): Buffer {
  const bytes = Buffer.from(raw.replaceAll('+', ' '), 'utf8');
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const hex = bytes[i] === 0x25 ? bytes.subarray(i + 1, i + 3).toString('latin1') : '';
    if (HEX.test(hex)) {
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      out[n++] = bytes[i]!;
    }
  }
  return out.subarray(0, n);
}

/** One percent-encoded component, decoded, if it is clean text. */
export function decodeComponent(raw: string): string | undefined {
  if (!isCleanText(raw)) return undefined;
  const bytes = percentDecode(raw);
  if (!isUtf8(bytes)) return undefined;
  const text = bytes.toString('utf8');
  return isCleanText(text) ? text : undefined;
}

/** Where refused input was found: `name` is the parameter's, when the name itself is clean. */
export interface Refusal {
  where: string;
  name?: string;
}

/** Every name and value of urlencoded text (a query string, a form body): the first that is not clean. */
export function scanUrlEncoded(text: string, where: string): Refusal | undefined {
  for (const pair of text.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    if (name === undefined) return { where };
    if (eq !== -1 && decodeComponent(pair.slice(eq + 1)) === undefined) return { where, name };
  }
  return undefined;
}

/**
 * Every key and string of a parsed JSON value: the first that is not clean. Walked with a stack, not recursion, so a
 * deeply nested body cannot overflow the call stack.
 */
export function scanJson(value: unknown, where: string): Refusal | undefined {
  const stack: Array<{ value: unknown; name?: string }> = [{ value }];
  while (stack.length) {
    const { value: item, name } = stack.pop()!;
    if (typeof item === 'string') {
      if (!isCleanText(item)) return { where, ...(name !== undefined ? { name } : {}) };
    } else if (Array.isArray(item)) {
      for (const element of item) stack.push({ value: element, name });
    } else if (item && typeof item === 'object') {
      for (const [key, element] of Object.entries(item)) {
        if (!isCleanText(key)) return { where };
        // The top-level member names the parameter.
        stack.push({ value: element, name: name ?? key });
      }
    }
  }
  return undefined;
}

/**
 * HTTP Basic credentials (RFC 6749 2.3.1: the client id and secret, each form-encoded, then base64): node-oidc-provider
 * decodes them and looks the client id up, so they are text like any parameter.
 */
export function scanBasicCredentials(authorization: string): Refusal | undefined {
  const match = /^basic\s+(\S*)\s*$/i.exec(authorization);
  if (!match) return undefined;
  const bytes = Buffer.from(match[1]!, 'base64');
  if (!isUtf8(bytes)) return { where: 'Authorization header' };
  const decoded = bytes.toString('utf8');
  const colon = decoded.indexOf(':');
  const parts = colon === -1 ? [decoded] : [decoded.slice(0, colon), decoded.slice(colon + 1)];
  // Percent-decoded as the library does (a literal `+` is not a space there, but either way it is clean).
  return parts.every((part) => decodeComponent(part) !== undefined) ? undefined : { where: 'Authorization header' };
}
