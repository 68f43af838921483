/**
 * Password hashing with argon2id. Hashes run on libuv's thread pool (never on
 * the event loop), at most `concurrency` at a time; at most `queueLimit` wait.
 * Beyond that the caller gets OverloadedError, which the HTTP edge turns into
 * 503 with Retry-After, so a burst cannot make every sign-in time out.
 *
 * Passwords are hashed and compared in Unicode NFKC (password-rules.ts), so
 * the same password typed on two keyboards matches. A hash made before
 * Twofold normalised holds the password as it was typed: when the normalised
 * form does not match and differs from what was typed, the typed form is
 * tried too, and a match is rehashed in the normalised form. Only a password
 * with characters NFKC changes (full-width letters, ligatures, composed
 * accents typed decomposed) can need the second try, and the dummy
 * verification of an unknown account makes the same two, so the work still
 * does not tell which accounts exist.
 */
import crypto from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { Semaphore, OverloadedError } from '../security/semaphore.ts';
import { normalizePassword } from './password-rules.ts';

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export interface HasherOptions extends Argon2Params {
  concurrency: number;
  queueLimit: number;
}

const ARGON2ID = 2; // Algorithm.Argon2id (a const enum, which isolated modules cannot import)

export type VerifyResult = { ok: true; needsRehash: boolean } | { ok: false };

export { OverloadedError };

/** argon2 runs so far: what "the same work" for every sign-in failure is measured in. */
export interface HasherWork {
  hashes: number;
  verifications: number;
}

export class PasswordHasher {
  readonly params: Argon2Params;
  readonly #gate: Semaphore;
  #dummy: Promise<string> | undefined;
  readonly #work: HasherWork = { hashes: 0, verifications: 0 };

  constructor(options: HasherOptions) {
    this.params = { memoryCost: options.memoryCost, timeCost: options.timeCost, parallelism: options.parallelism };
    this.#gate = new Semaphore(options.concurrency, options.queueLimit);
  }

  get stats() {
    return this.#gate.stats;
  }

  /** How many argon2 hashes and verifications this hasher has run (a copy). */
  get work(): HasherWork {
    return { ...this.#work };
  }

  /** Hashes the password's normalised form. */
  async hash(password: string): Promise<string> {
    const normalized = normalizePassword(password);
    return this.#gate.run(() => {
      this.#work.hashes++;
      return hash(normalized, { ...this.params, algorithm: ARGON2ID });
    });
  }

  /**
   * Verifies; says whether the stored hash should be replaced: made with weaker or other parameters, or of the
   * password as typed before Twofold normalised it.
   */
  async verify(stored: string, password: string): Promise<VerifyResult> {
    const normalized = normalizePassword(password);
    if (await this.#verifyOne(stored, normalized)) return { ok: true, needsRehash: this.needsRehash(stored) };
    if (normalized !== password && (await this.#verifyOne(stored, password))) return { ok: true, needsRehash: true };
    return { ok: false };
  }

  async #verifyOne(stored: string, password: string): Promise<boolean> {
    return this.#gate.run(async () => {
      this.#work.verifications++;
      try {
        return await verify(stored, password);
      } catch {
        return false; // a malformed stored hash never verifies
      }
    });
  }

  /**
   * The same work as a real verification, against a hash of a random password:
   * used for unknown accounts and accounts without a password, so timing does
   * not reveal which accounts exist. The dummy hash is made by prepare() at
   * start-up; made here instead, the first unknown login would cost a hash more.
   */
  async verifyDummy(password: string): Promise<void> {
    await this.verify(await this.#dummyHash(), password);
  }

  /** Makes the dummy hash now (the provider calls this before it listens). */
  async prepare(): Promise<void> {
    await this.#dummyHash();
  }

  #dummyHash(): Promise<string> {
    if (!this.#dummy) {
      const made = this.hash(crypto.randomBytes(24).toString('base64url'));
      made.catch(() => {
        if (this.#dummy === made) this.#dummy = undefined; // an overloaded gate: try again next time
      });
      this.#dummy = made;
    }
    return this.#dummy;
  }

  needsRehash(stored: string): boolean {
    const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(stored);
    if (!match) return true;
    return Number(match[1]) !== this.params.memoryCost || Number(match[2]) !== this.params.timeCost || Number(match[3]) !== this.params.parallelism;
  }
}
