/**
 * WebAuthn ceremonies, shared by the two factors that use them: `webauthn`
 * (a security key or platform authenticator as a second factor) and `passkey`
 * (a discoverable credential with user verification as a first factor). One
 * mechanism, two roles: the role decides the requirements, this module
 * enforces them.
 *
 * Nothing the browser was given is trusted when its answer arrives: the
 * challenge, allowed credentials and requirements come from step state (server
 * side, per interaction), and every policy choice (user verification,
 * discoverable credential, attachment, algorithm, attestation, AAGUID) is
 * checked again on the response itself.
 *
 * Its failures speak with the `webauthn` factor's messages (webauthn.failure.*),
 * for either role: the mechanism is the same, and so is what went wrong.
 */
import crypto from 'node:crypto';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { z } from 'zod';
import type { AmrValue, Credential, EnrollResult, FactorContext, FactorKind, FactorServices, Failure, MessageRef, StepView, VerifyResult } from '../types.ts';

/**
 * @simplewebauthn/server takes about half a second to load (its ASN.1 and
 * attestation parsers): loaded on first use, or ahead of it by warmUp() once
 * the provider is ready, never on the way to /readyz.
 */
let library: Promise<[typeof import('@simplewebauthn/server'), typeof import('@simplewebauthn/server/helpers')]> | undefined;
function webauthnLibrary() {
  // One after the other: the two share modules, and jest's ESM loader trips over parallel imports of them.
  return (library ??= import('@simplewebauthn/server').then(async (server) => [server, await import('@simplewebauthn/server/helpers')]));
}
export async function warmUp(): Promise<void> {
  await webauthnLibrary();
}

const toBase64Url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const fromBase64Url = (text: string) => new Uint8Array(Buffer.from(text, 'base64url'));

export type Requirement = 'required' | 'preferred' | 'discouraged';
export type Attachment = 'any' | 'platform' | 'cross-platform';

/** COSE algorithms an operator may allow: EdDSA, ES256, ES384, ES512, RS256. */
export const ALGORITHMS = { EdDSA: -8, ES256: -7, ES384: -35, ES512: -36, RS256: -257 } as const;
const algorithm = z.union(Object.values(ALGORITHMS).map((v) => z.literal(v)) as [z.ZodLiteral<-8>, ...z.ZodLiteral<number>[]]);
export const algorithmsSetting = z.array(algorithm).min(1).default([ALGORITHMS.EdDSA, ALGORITHMS.ES256, ALGORITHMS.RS256]);
export const attachmentSetting = z.enum(['any', 'platform', 'cross-platform']).default('any');
/** How long a challenge lives, in seconds (also the browser's timeout). */
export const timeoutSetting = z.number().int().min(30).max(600).default(300);

/** What a role asks of an authenticator. */
export interface Role {
  factorId: string;
  userVerification: Requirement;
  residentKey: Requirement;
  attachment: Attachment;
  algorithms: number[];
  timeout: number;
}

/** What a WebAuthn credential keeps in the credentials table's `data` (the public key is not secret). */
export interface WebAuthnData {
  credentialId: string;
  /** COSE public key, base64url. */
  publicKey: string;
  algorithm: number;
  transports: string[];
  /** The user handle given at registration (random, the same for all of an account's credentials). */
  userHandle: string;
  aaguid: string;
  fmt: string;
  /** BE flag: the credential may be synced to other devices (a synced passkey); fixed for its life. */
  backupEligible: boolean;
  /** BS flag: it is backed up now; may change over time. */
  backedUp: boolean;
  /** credProps.rk as the browser reported it: a discoverable credential (usable as a passkey); null if unknown. */
  discoverable: boolean | null;
  attachment: 'platform' | 'cross-platform' | null;
  userVerified: boolean;
}

interface PendingRegistration {
  challenge: string;
  userHandle: string;
  exclude: string[];
}

interface PendingAssertion {
  challenge: string;
  /** Credential IDs the options allowed; null for a discoverable (first factor) request. */
  allow: string[] | null;
  firstFactor: boolean;
}

const REGISTRATION = 'registration';
const ASSERTION = 'assertion';

const b64url = z
  .string()
  .min(1)
  .max(16_384)
  .regex(/^[A-Za-z0-9_-]+={0,2}$/);
const clientExtensionResults = z.looseObject({ credProps: z.looseObject({ rk: z.boolean().optional() }).optional() }).default({});
const attachmentField = z.enum(['platform', 'cross-platform']).optional().catch(undefined);

const registrationSchema = z.object({
  id: b64url.max(1366),
  rawId: b64url.max(1366),
  type: z.literal('public-key'),
  response: z.looseObject({
    clientDataJSON: b64url,
    attestationObject: b64url,
    transports: z.array(z.string().max(32)).max(8).optional(),
  }),
  authenticatorAttachment: attachmentField,
  clientExtensionResults,
});

const assertionSchema = z.object({
  id: b64url.max(1366),
  rawId: b64url.max(1366),
  type: z.literal('public-key'),
  response: z.looseObject({
    clientDataJSON: b64url,
    authenticatorData: b64url,
    signature: b64url,
    userHandle: b64url.max(128).optional(),
  }),
  authenticatorAttachment: attachmentField,
  clientExtensionResults,
});

/** Parses the `response` form field (the JSON @simplewebauthn/browser returns). */
function parseResponse<T>(schema: z.ZodType<T>, input: Record<string, string>): T | undefined {
  const raw = input.response;
  if (typeof raw !== 'string' || !raw || raw.length > 16_384) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const noResponse: Failure = { ok: false, reason: 'invalid_input', message: { key: 'webauthn.failure.noResponse' } };
const expired: Failure = { ok: false, reason: 'expired', message: { key: 'webauthn.failure.expired' } };
const otherSite: Failure = { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.otherSite' } };
const unverified: Failure = { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.unverified' } };
const notAllowed: Failure = { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.notAllowed' } };
const notRegistered: Failure = { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.notRegistered' } };
const copied = (credentialId: string): Failure => ({ ok: false, reason: 'suspected_clone', credentialId, message: { key: 'webauthn.failure.copied' } });

function dataOf(credential: Credential): WebAuthnData | undefined {
  const d = credential.data as Partial<WebAuthnData>;
  return typeof d.credentialId === 'string' && typeof d.publicKey === 'string' ? (d as WebAuthnData) : undefined;
}

/** The challenge: 32 random bytes, fresh for every ceremony. */
function newChallenge(services: FactorServices): string {
  return toBase64Url(services.randomBytes(32));
}

/** A response framed by another site, or from an origin we do not serve, is never ours. */
function framed(clientDataJSON: string): boolean {
  try {
    const clientData = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { crossOrigin?: boolean; topOrigin?: string };
    return clientData.crossOrigin === true || clientData.topOrigin !== undefined;
  } catch {
    return true;
  }
}

/** amr for a WebAuthn proof: the key's nature from the BE flag, and user presence. */
export function amrFor(data: Pick<WebAuthnData, 'backupEligible'>): AmrValue[] {
  return [data.backupEligible ? 'swk' : 'hwk', 'user'];
}

/** Kinds: possession always; user verification (PIN or biometric, WebAuthn does not say which) adds a second kind. */
export function kindsFor(userVerified: boolean): FactorKind[] {
  return userVerified ? ['have', 'are'] : ['have'];
}

export async function registrationOptions<S>(
  ctx: FactorContext<S>,
  role: Role,
  existing: Credential[],
  partial: string,
  submit: MessageRef,
): Promise<StepView> {
  const { services, account } = ctx;
  const rp = services.relyingParty;
  const known = existing.map(dataOf).filter((d): d is WebAuthnData => d !== undefined);
  let pending = await services.state.get<PendingRegistration>(REGISTRATION);
  if (!pending) {
    pending = {
      challenge: newChallenge(services),
      // One user handle per account, so an authenticator keeps one passkey per account here.
      userHandle: known[0]?.userHandle ?? toBase64Url(services.randomBytes(32)),
      exclude: known.map((d) => d.credentialId),
    };
    await services.state.set(REGISTRATION, pending, role.timeout);
  }
  const [{ generateRegistrationOptions }] = await webauthnLibrary();
  const options = await generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: account.username,
    userDisplayName: account.displayName ?? account.email ?? account.username,
    userID: fromBase64Url(pending.userHandle),
    challenge: fromBase64Url(pending.challenge),
    timeout: role.timeout * 1000,
    attestationType: rp.attestation === 'required' ? 'direct' : 'none',
    excludeCredentials: known.map((d) => ({ id: d.credentialId, transports: d.transports })),
    authenticatorSelection: {
      residentKey: role.residentKey,
      userVerification: role.userVerification,
      ...(role.attachment === 'any' ? {} : { authenticatorAttachment: role.attachment }),
    },
    supportedAlgorithmIDs: role.algorithms,
  });
  return { partial, data: { options: JSON.stringify(options) }, submit: { label: submit } };
}

/** Verifies that `x5c` chains to one of the trust anchors, each certificate valid now. */
function chainsToRoot(x5c: Uint8Array[], roots: string[], now: Date): boolean {
  try {
    const chain = x5c.map((der) => new crypto.X509Certificate(Buffer.from(der)));
    const anchors = roots.map((pem) => new crypto.X509Certificate(pem));
    const valid = (c: crypto.X509Certificate) => new Date(c.validFrom) <= now && now <= new Date(c.validTo);
    if (!chain.length || !chain.every(valid)) return false;
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) return false;
    }
    const last = chain.at(-1)!;
    return anchors.some((root) => valid(root) && (last.fingerprint256 === root.fingerprint256 || (last.checkIssued(root) && last.verify(root.publicKey))));
  } catch {
    return false;
  }
}

export async function finishRegistration<S>(ctx: FactorContext<S>, role: Role, input: Record<string, string>, defaultLabel: MessageRef): Promise<EnrollResult> {
  const { services } = ctx;
  const rp = services.relyingParty;
  const pending = await services.state.get<PendingRegistration>(REGISTRATION);
  if (!pending) return expired;
  const response = parseResponse(registrationSchema, input);
  if (!response) return noResponse;
  if (response.id !== response.rawId) return { ok: false, reason: 'invalid_input' };
  if (framed(response.response.clientDataJSON)) return otherSite;

  const [{ verifyRegistrationResponse }, helpers] = await webauthnLibrary();
  let info;
  try {
    const verification = await verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge: pending.challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      requireUserPresence: true,
      requireUserVerification: role.userVerification === 'required',
      supportedAlgorithmIDs: role.algorithms,
    });
    if (!verification.verified) return unverified;
    info = verification.registrationInfo;
  } catch {
    return { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.unverifiedRetry' } };
  }

  // The credential is the one the authenticator data names (signed over), not the id the browser claims beside it:
  // an excluded credential answering under another claimed id is still that credential.
  if (pending.exclude.includes(info.credential.id)) return { ok: false, reason: 'already_used', message: { key: 'webauthn.failure.registered' } };
  if (info.credential.id !== response.id) return unverified;
  // Every requirement again, on what came back (the options were only a request).
  if (!coherentKey(helpers, info.credential.publicKey)) return { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.badKey' } };
  if (!selfAttestationCoherent(helpers, response.response.attestationObject, info.fmt, info.credential.publicKey)) return unverified;
  const discoverable = response.clientExtensionResults.credProps?.rk ?? null;
  if (role.residentKey === 'required' && discoverable !== true) return { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.noPasskey' } };
  const attachment = response.authenticatorAttachment ?? null;
  if (role.attachment !== 'any' && attachment !== role.attachment) {
    return {
      ok: false,
      reason: 'wrong',
      message: role.attachment === 'platform' ? { key: 'webauthn.failure.platformOnly' } : { key: 'webauthn.failure.crossPlatformOnly' },
    };
  }
  if (rp.attestation === 'required') {
    const attestation = helpers.decodeAttestationObject(fromBase64Url(response.response.attestationObject));
    const x5c = attestation.get('attStmt').get('x5c');
    if (info.fmt === 'none' || !x5c?.length || !chainsToRoot(x5c, rp.attestationRoots, services.clock.now())) return notAllowed;
  }
  if (rp.aaguids.length && !rp.aaguids.includes(info.aaguid.toLowerCase())) return notAllowed;

  // Only now is the registration spent: a failed attempt above may be retried with the same options.
  if ((await services.state.take(REGISTRATION)) === undefined) return { ok: false, reason: 'already_used' };
  const data: WebAuthnData = {
    credentialId: info.credential.id,
    publicKey: toBase64Url(info.credential.publicKey),
    algorithm: Number(decodeAlgorithm(helpers, info.credential.publicKey)),
    transports: (response.response.transports ?? []).filter((t) => /^[a-z-]{1,32}$/.test(t)),
    userHandle: pending.userHandle,
    aaguid: info.aaguid,
    fmt: info.fmt,
    backupEligible: info.credentialDeviceType === 'multiDevice',
    backedUp: info.credentialBackedUp,
    discoverable,
    attachment,
    userVerified: info.userVerified,
  };
  const label = (input.label ?? '').trim().slice(0, 64) || defaultLabel;
  return {
    ok: true,
    proves: true,
    kinds: kindsFor(info.userVerified),
    amr: amrFor(data),
    credential: { label, lookupKey: info.credential.id, data: { ...data }, counter: info.credential.counter },
  };
}

/**
 * Whether a COSE key is the kind of key its algorithm needs (kty, curve): an
 * EC key labelled RS256 would pass a 'none' registration and fail every
 * sign-in after it, so it is refused at the door.
 */
type Helpers = Awaited<ReturnType<typeof webauthnLibrary>>[1];

function coherentKey(helpers: Helpers, coseKey: Uint8Array): boolean {
  try {
    const key = helpers.decodeCredentialPublicKey(coseKey as never) as unknown as Map<number, unknown>;
    const [kty, alg, crv] = [key.get(1), key.get(3), key.get(-1)];
    switch (alg) {
      case ALGORITHMS.ES256:
        return kty === 2 && crv === 1;
      case ALGORITHMS.ES384:
        return kty === 2 && crv === 2;
      case ALGORITHMS.ES512:
        return kty === 2 && crv === 3;
      case ALGORITHMS.EdDSA:
        return kty === 1 && crv === 6;
      case ALGORITHMS.RS256:
        return kty === 3;
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/**
 * WebAuthn §8.2 (packed, self attestation): the statement's `alg` must be the
 * credential public key's algorithm. The library checks the signature with the
 * credential key whatever `alg` says, so an ES256 key could present a
 * statement labelled RS256 and pass; refuse it.
 */
function selfAttestationCoherent(helpers: Helpers, attestationObject: string, fmt: string, coseKey: Uint8Array): boolean {
  if (fmt !== 'packed') return true;
  try {
    const statement = helpers.decodeAttestationObject(fromBase64Url(attestationObject)).get('attStmt');
    if (statement.get('x5c')?.length) return true;
    return statement.get('alg') === decodeAlgorithm(helpers, coseKey);
  } catch {
    return false;
  }
}

/** The COSE key's algorithm (label 3). */
function decodeAlgorithm(helpers: Helpers, coseKey: Uint8Array): number {
  const alg = (helpers.decodeCredentialPublicKey(coseKey as never) as unknown as Map<number, unknown>).get(3);
  return typeof alg === 'number' ? alg : 0;
}

/** Options for navigator.credentials.get(): for known credentials (second step) or for any discoverable one (first factor). */
export async function assertionOptions(
  services: FactorServices,
  role: Role,
  credentials: Credential[] | null,
  partial: string,
  submit: MessageRef,
  extra: Record<string, unknown> = {},
): Promise<StepView> {
  const known = credentials?.map(dataOf).filter((d): d is WebAuthnData => d !== undefined) ?? null;
  const pending: PendingAssertion = { challenge: newChallenge(services), allow: known?.map((d) => d.credentialId) ?? null, firstFactor: credentials === null };
  await services.state.set(ASSERTION, pending, role.timeout);
  const [{ generateAuthenticationOptions }] = await webauthnLibrary();
  const options = await generateAuthenticationOptions({
    rpID: services.relyingParty.id,
    challenge: fromBase64Url(pending.challenge),
    timeout: role.timeout * 1000,
    userVerification: role.userVerification,
    allowCredentials: known?.map((d) => ({ id: d.credentialId, transports: d.transports })) ?? [],
  });
  // Shown again (a reload) until the challenge times out, then a new one is made.
  const expiresAt = new Date(services.clock.now().getTime() + role.timeout * 1000);
  return { partial, data: { options: JSON.stringify(options), ...extra }, submit: { label: submit }, expiresAt };
}

/** Which credential an assertion claims, before any account is known. */
export function identify(input: Record<string, string>): { ok: true; lookupKey: string } | Failure {
  const response = parseResponse(assertionSchema, input);
  if (!response || response.id !== response.rawId) return noResponse;
  return { ok: true, lookupKey: response.id };
}

export async function verifyAssertion<S>(ctx: FactorContext<S>, role: Role, credentials: Credential[], input: Record<string, string>): Promise<VerifyResult> {
  const { services } = ctx;
  const rp = services.relyingParty;
  const response = parseResponse(assertionSchema, input);
  if (!response || response.id !== response.rawId) return noResponse;
  // Single use: the challenge is taken (read and deleted in one statement) before anything is checked.
  const pending = await services.state.take<PendingAssertion>(ASSERTION);
  if (!pending) return expired;
  const credential = credentials.find((c) => dataOf(c)?.credentialId === response.id);
  const data = credential && dataOf(credential);
  if (!credential || !data) return notRegistered;
  if (pending.allow && !pending.allow.includes(response.id)) return notRegistered;
  const userHandle = response.response.userHandle;
  // A first factor identified the account from the credential: the authenticator must name the same user.
  if (pending.firstFactor && !userHandle) return { ok: false, reason: 'wrong', message: { key: 'webauthn.failure.noUserHandle' } };
  if (userHandle !== undefined && userHandle !== data.userHandle) return { ok: false, reason: 'wrong' };
  if (framed(response.response.clientDataJSON)) return otherSite;

  const [{ verifyAuthenticationResponse }] = await webauthnLibrary();
  let info;
  try {
    const verification = await verifyAuthenticationResponse({
      response: response as AuthenticationResponseJSON,
      expectedChallenge: pending.challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.id,
      // The counter is checked below, atomically, so a regression is told apart from other failures.
      credential: { id: data.credentialId, publicKey: fromBase64Url(data.publicKey), counter: 0, transports: data.transports as never },
      requireUserVerification: role.userVerification === 'required',
    });
    if (!verification.verified) return { ok: false, reason: 'wrong', credentialId: credential.id };
    info = verification.authenticationInfo;
  } catch {
    return { ok: false, reason: 'wrong', credentialId: credential.id };
  }
  // BE is fixed for a credential's life: a signed answer whose BE changed comes from another authenticator holding
  // this credential's key, a copy. Refused and audited as a suspected clone.
  if ((info.credentialDeviceType === 'multiDevice') !== data.backupEligible) return copied(credential.id);

  // Signature counter (WebAuthn §7.2 step 21): authenticators that count must count up. A
  // counter at or below the stored one means two authenticators share the key: a clone.
  const stored = credential.counter ?? 0;
  if (info.newCounter > 0 || stored > 0) {
    if (info.newCounter <= stored || !(await services.advanceCounter(credential.id, info.newCounter))) return copied(credential.id);
  }
  return {
    ok: true,
    credentialId: credential.id,
    kinds: kindsFor(info.userVerified),
    amr: amrFor(data),
    userVerified: info.userVerified,
    counter: info.newCounter,
    dataUpdate: { backedUp: info.credentialBackedUp, lastUserVerified: info.userVerified },
  };
}
