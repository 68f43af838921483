/**
 * A software WebAuthn authenticator for server-side tests: it answers the
 * options Twofold's pages carry the way a browser and an authenticator would
 * (ES256 keys from node:crypto, 'none' or 'packed' attestation, CBOR by a tiny
 * encoder), and every field a real one would get right can be got wrong on
 * purpose: the origin, the RP ID, the flags, the counter, the user handle.
 */
import crypto from 'node:crypto';
import type { Services } from '../../src/services.ts';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

// ---- CBOR (RFC 8949), just what WebAuthn needs: ints, byte and text strings, arrays, maps.

type Cbor = number | string | Uint8Array | boolean | Cbor[] | Map<Cbor, Cbor> | { [k: string]: Cbor };

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

export function cborEncode(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'boolean') return Buffer.from([value ? 0xf5 : 0xf4]);
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), Buffer.from(value)]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cborEncode)]);
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, v]) => [cborEncode(k), cborEncode(v)])]);
}

// ---- helpers

const b64url = (b: Uint8Array | Buffer) => Buffer.from(b).toString('base64url');
const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest();

/** The COSE_Key (RFC 9053) of an EC P-256 public key: kty EC2, alg ES256, crv P-256, x, y. */
export function coseKey(publicKey: crypto.KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return cborEncode(
    new Map<Cbor, Cbor>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, Buffer.from(jwk.x!, 'base64url')],
      [-3, Buffer.from(jwk.y!, 'base64url')],
    ]),
  );
}

export interface Flags {
  up?: boolean;
  uv?: boolean;
  be?: boolean;
  bs?: boolean;
}

function flagsByte(f: Flags, attested: boolean): number {
  return (f.up !== false ? 0x01 : 0) | (f.uv ? 0x04 : 0) | (f.be ? 0x08 : 0) | (f.bs ? 0x10 : 0) | (attested ? 0x40 : 0);
}

function authData(rpId: string, flags: number, counter: number, attested?: Buffer): Buffer {
  const c = Buffer.alloc(4);
  c.writeUInt32BE(counter >>> 0);
  return Buffer.concat([sha256(rpId), Buffer.from([flags]), c, attested ?? Buffer.alloc(0)]);
}

function clientData(type: string, challenge: string, origin: string, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false, ...extra }));
}

export interface StoredKey {
  credentialId: Buffer;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  userHandle: string;
  rpId: string;
  counter: number;
  be: boolean;
}

export interface AuthenticatorOptions {
  /** The origin a browser would put in clientDataJSON. */
  origin: string;
  aaguid?: string;
  /** Whether this authenticator verifies users (PIN, biometric). Default true. */
  uv?: boolean;
  /** Backup eligible (a synced passkey). Default false: a device-bound key. */
  be?: boolean;
  /** Whether it can keep discoverable credentials (credProps.rk). Default true. */
  discoverable?: boolean;
  attachment?: 'platform' | 'cross-platform';
  /** Counter step per use; 0 for authenticators that do not count. Default 1. */
  counterStep?: number;
  /** Packed attestation with this certificate chain (leaf first, DER) and leaf key; an empty chain is self attestation. Default: 'none'. */
  attestation?: { chain: Buffer[]; key?: crypto.KeyObject };
}

export interface RegisterOverrides extends Flags {
  origin?: string;
  rpId?: string;
  challenge?: string;
  type?: string;
  rk?: boolean | null;
  attachment?: 'platform' | 'cross-platform' | null;
  crossOrigin?: boolean;
  /** Register a credential with this ID (a second registration of the same key). */
  credentialId?: Buffer;
  /** The id (and rawId) the answer claims, when it is not the one in the authenticator data (a lying client). */
  claimedId?: Buffer;
  alg?: number;
  /** The `alg` a packed statement names, when it is not the one the signature was made with. */
  attestationAlg?: number;
}

export interface AssertOverrides extends Flags {
  origin?: string;
  rpId?: string;
  challenge?: string;
  type?: string;
  /** The counter the authenticator reports (otherwise its own, advanced). */
  counter?: number;
  /** Answer with this credential (default: the first allowed one it has, or its first). */
  credentialId?: string;
  /** The user handle returned; null omits it. Default: the one stored with the credential. */
  userHandle?: string | null;
  crossOrigin?: boolean;
  /** Sign with this key instead of the credential's (a forgery). */
  signWith?: crypto.KeyObject;
}

export class SoftwareAuthenticator {
  readonly keys: StoredKey[] = [];

  constructor(readonly options: AuthenticatorOptions) {}

  /** Answers navigator.credentials.create() options, as @simplewebauthn/browser's startRegistration would. */
  register(options: PublicKeyCredentialCreationOptionsJSON, o: RegisterOverrides = {}): RegistrationResponseJSON {
    const rpId = o.rpId ?? options.rp.id ?? new URL(this.options.origin).hostname;
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const credentialId = o.credentialId ?? crypto.randomBytes(32);
    const uv = o.uv ?? (this.options.uv !== false && options.authenticatorSelection?.userVerification !== 'discouraged');
    const be = o.be ?? this.options.be ?? false;
    const aaguid = Buffer.from((this.options.aaguid ?? '00000000-0000-0000-0000-000000000000').replace(/-/g, ''), 'hex');
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(credentialId.length);
    let cose = coseKey(publicKey);
    if (o.alg !== undefined) {
      const jwk = publicKey.export({ format: 'jwk' });
      cose = cborEncode(
        new Map<Cbor, Cbor>([
          [1, 2],
          [3, o.alg],
          [-1, 1],
          [-2, Buffer.from(jwk.x!, 'base64url')],
          [-3, Buffer.from(jwk.y!, 'base64url')],
        ]),
      );
    }
    const attested = Buffer.concat([aaguid, idLen, credentialId, cose]);
    const counter = 0;
    const data = authData(rpId, flagsByte({ ...o, uv, be, bs: o.bs ?? be }, true), counter, attested);
    const cd = clientData(
      o.type ?? 'webauthn.create',
      o.challenge ?? options.challenge,
      o.origin ?? this.options.origin,
      o.crossOrigin ? { crossOrigin: true } : {},
    );
    let attStmt: Cbor = {};
    let fmt = 'none';
    if (this.options.attestation) {
      // Packed attestation: full (a certificate chain and its key), or self attestation (no chain: signed by the new credential's own key).
      fmt = 'packed';
      const { chain, key } = this.options.attestation;
      const sig = crypto.sign('sha256', Buffer.concat([data, sha256(cd)]), chain.length ? key! : privateKey);
      const alg = o.attestationAlg ?? -7;
      attStmt = chain.length ? { alg, sig, x5c: chain } : { alg, sig };
    }
    const attestationObject = cborEncode(
      new Map<Cbor, Cbor>([
        ['fmt', fmt],
        ['attStmt', attStmt],
        ['authData', data],
      ]),
    );
    const userHandle = options.user.id;
    this.keys.push({ credentialId, privateKey, publicKey, userHandle, rpId, counter, be });
    const rk = o.rk === undefined ? (this.options.discoverable ?? true) : o.rk;
    const attachment = o.attachment === undefined ? (this.options.attachment ?? 'cross-platform') : o.attachment;
    const claimed = o.claimedId ?? credentialId;
    return {
      id: b64url(claimed),
      rawId: b64url(claimed),
      type: 'public-key',
      response: { clientDataJSON: b64url(cd), attestationObject: b64url(attestationObject), transports: ['usb'] },
      ...(attachment ? { authenticatorAttachment: attachment } : {}),
      clientExtensionResults: rk === null ? {} : { credProps: { rk } },
    };
  }

  /** Answers navigator.credentials.get() options, as startAuthentication would. */
  assert(options: PublicKeyCredentialRequestOptionsJSON, o: AssertOverrides = {}): AuthenticationResponseJSON {
    const allowed = options.allowCredentials?.map((c) => c.id) ?? [];
    const key = o.credentialId
      ? this.keys.find((k) => b64url(k.credentialId) === o.credentialId)
      : (this.keys.find((k) => !allowed.length || allowed.includes(b64url(k.credentialId))) ?? this.keys[0]);
    if (!key) throw new Error('the software authenticator has no credential for these options');
    const rpId = o.rpId ?? options.rpId ?? key.rpId;
    if (o.counter === undefined) key.counter += this.options.counterStep ?? 1;
    const counter = o.counter ?? key.counter;
    const uv = o.uv ?? (this.options.uv !== false && options.userVerification !== 'discouraged');
    const data = authData(rpId, flagsByte({ ...o, uv, be: o.be ?? key.be, bs: o.bs ?? key.be }, false), counter);
    const cd = clientData(
      o.type ?? 'webauthn.get',
      o.challenge ?? options.challenge,
      o.origin ?? this.options.origin,
      o.crossOrigin ? { crossOrigin: true } : {},
    );
    const signature = crypto.sign('sha256', Buffer.concat([data, sha256(cd)]), o.signWith ?? key.privateKey);
    const userHandle = o.userHandle === undefined ? key.userHandle : o.userHandle;
    return {
      id: b64url(key.credentialId),
      rawId: b64url(key.credentialId),
      type: 'public-key',
      response: { clientDataJSON: b64url(cd), authenticatorData: b64url(data), signature: b64url(signature), ...(userHandle === null ? {} : { userHandle }) },
      authenticatorAttachment: this.options.attachment ?? 'cross-platform',
      clientExtensionResults: {},
    };
  }
}

/** The WebAuthn options a view carries (what the page's script hands the browser). */
export function optionsOf<T = PublicKeyCredentialCreationOptionsJSON & PublicKeyCredentialRequestOptionsJSON>(view: { data: Record<string, unknown> }): T {
  return JSON.parse(String(view.data.options)) as T;
}

/** The WebAuthn options a rendered page carries in its data-options attribute (HTML-escaped JSON). */
export function optionsInPage(html: string, which: 'register' | 'authenticate' = 'authenticate') {
  const m = new RegExp(`data-webauthn="${which}"[^>]*data-options="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no ${which} options on page:\n${html.slice(0, 800)}`);
  const json = m[1]!
    .replace(/&quot;/g, '"')
    .replace(/&#x3D;/g, '=')
    .replace(/&#x27;/g, "'")
    .replace(/&#x60;/g, '`')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
  return JSON.parse(json);
}

/** The form input a page submits: the answer as JSON in `response`, and a label. */
export function formInput(response: unknown, label?: string): Record<string, string> {
  return { response: JSON.stringify(response), ...(label ? { label } : {}) };
}

/** A WebAuthn key made outside any ceremony, to seed a browser's virtual authenticator and the database alike. */
export interface SeedKey {
  credentialId: Buffer;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  userHandle: Buffer;
}

export function newSeedKey(): SeedKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { credentialId: crypto.randomBytes(32), privateKey, publicKey, userHandle: crypto.randomBytes(32) };
}

/** Stores `key` as an enrolled credential of `factorId` (as a registration would have). */
export async function seedWebAuthnCredential(
  services: Services,
  accountId: string,
  key: SeedKey,
  options: { factorId?: 'webauthn' | 'passkey'; label?: string; backupEligible?: boolean; counter?: number } = {},
): Promise<string> {
  const credentialId = b64url(key.credentialId);
  return services.factors.store.insert(accountId, options.factorId ?? 'webauthn', {
    label: options.label ?? 'Test key',
    lookupKey: credentialId,
    counter: options.counter ?? 0,
    data: {
      credentialId,
      publicKey: b64url(coseKey(key.publicKey)),
      algorithm: -7,
      transports: ['usb'],
      userHandle: b64url(key.userHandle),
      aaguid: '00000000-0000-0000-0000-000000000000',
      fmt: 'none',
      backupEligible: options.backupEligible ?? false,
      backedUp: options.backupEligible ?? false,
      discoverable: true,
      attachment: 'cross-platform',
      userVerified: true,
    },
  });
}

/** The same key as CDP's WebAuthn.addCredential wants it (standard base64, PKCS#8). */
export function cdpCredential(key: SeedKey, rpId: string, signCount = 0): Record<string, unknown> {
  return {
    credentialId: key.credentialId.toString('base64'),
    isResidentCredential: true,
    rpId,
    privateKey: (key.privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).toString('base64'),
    userHandle: key.userHandle.toString('base64'),
    signCount,
  };
}
