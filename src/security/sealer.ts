/**
 * Encryption of secrets at rest: AES-256-GCM with a key derived (HKDF-SHA256)
 * from the configured SECRET_KEY. Each sealed value is bound to a context
 * string (its purpose and owner) as additional authenticated data, so a value
 * copied into another row or column fails to open.
 *
 * Format: `v1.<iv>.<ciphertext>.<tag>`, each part base64url.
 */
import crypto from 'node:crypto';

export class SealError extends Error {}

export class Sealer {
  readonly #key: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
    this.#key = Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), 'twofold/seal/v1', 32));
  }

  seal(plaintext: string | Buffer, context: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const tag = cipher.getAuthTag();
    return ['v1', iv.toString('base64url'), data.toString('base64url'), tag.toString('base64url')].join('.');
  }

  open(sealed: string, context: string): Buffer {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') throw new SealError('not a sealed value');
    const [, iv, data, tag] = parts as [string, string, string, string];
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]);
    } catch {
      throw new SealError('a sealed value could not be opened: wrong SECRET_KEY or tampered data');
    }
  }

  openString(sealed: string, context: string): string {
    return this.open(sealed, context).toString('utf8');
  }
}
