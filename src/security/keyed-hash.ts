/**
 * Keyed hashes (HMAC-SHA256) of what must be recognised but never stored:
 * backup codes and emailed codes, and every bearer value the provider keeps
 * (tokens, authorization codes, session and interaction ids, user codes), which
 * are stored and looked up only this way. The key is derived from SECRET_KEY,
 * which is never in the database, so a stolen table cannot be brute-forced
 * offline, and a stored hash presented as a code or token hashes to something
 * else. `context` separates the uses: the same value hashed for two purposes
 * gives two unrelated hashes.
 */
import crypto from 'node:crypto';

export class KeyedHasher {
  readonly #key: Buffer;

  constructor(masterKey: Buffer) {
    this.#key = Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), 'twofold/codes/v1', 32));
  }

  hash(value: string, context: string): string {
    return crypto.createHmac('sha256', this.#key).update(context).update('\0').update(value).digest('base64url');
  }
}

export function constantTimeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  // Comparing fixed-length digests hides the inputs' lengths too.
  return crypto.timingSafeEqual(ha, hb) && a.length === b.length;
}
