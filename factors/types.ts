/**
 * The factor contract: what a second-factor plugin declares and implements.
 *
 * A factor is one folder under factors/ plus one line in registry.ts. It gets
 * narrow services from the engine (its own credential store, consume-once
 * helpers, constant-time comparison, sealing, a clock, step state) and never
 * the Koa context, the provider or the raw database, so replay protection and
 * comparison cannot be got wrong inside a plugin.
 *
 * Failures a user can cause are values; exceptions are for bugs.
 */
import type { z } from 'zod';

/** Bumped when this contract changes incompatibly; the registry refuses other versions. */
export const FACTOR_API_VERSION = 1 as const;

/** RFC 8176 Authentication Method Reference values (IANA registry). */
export const AMR_VALUES = [
  'face', 'fpt', 'geo', 'hwk', 'iris', 'kba', 'mca', 'mfa', 'otp', 'pin', 'pop', 'pwd', 'rba', 'retina', 'sc', 'sms', 'swk', 'tel', 'user', 'vbm', 'wia',
] as const;
export type AmrValue = (typeof AMR_VALUES)[number];

/** NIST's factor categories: something you know, have, are. Two proofs count as two factors only if their kinds differ. */
export type FactorKind = 'know' | 'have' | 'are';

/** What a verification proves; the policy engine computes levels from a list of these. */
export interface Evidence {
  factor: string;
  credentialId?: string;
  /** Kinds this proof covers (a passkey with user verification covers `have` and `know`/`are`). */
  kinds: FactorKind[];
  amr: AmrValue[];
  phishingResistant: boolean;
  /** Epoch seconds. */
  at: number;
  /** A trusted device standing in for a second factor: counts for level 2 only, never claims a method in `amr`. */
  remembered?: boolean;
}

/** A stored credential as a factor sees it: its secret already opened. */
export interface Credential {
  id: string;
  factorId: string;
  label: string;
  /** The opened secret (TOTP key, …), if the factor stored one. */
  secret?: string;
  /** Non-secret data the factor keeps (algorithm, public key, transports, …). */
  data: Record<string, unknown>;
  /** A monotonic counter the engine advances atomically (TOTP time step, signature counter). */
  counter: number | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** What finishEnrollment asks the engine to store. */
export interface NewCredential {
  label: string;
  secret?: string;
  data?: Record<string, unknown>;
  counter?: number | null;
  /** One-time codes attached to the credential (backup codes), stored only as keyed hashes. */
  oneTimeCodes?: string[];
}

export type FailureReason = 'wrong' | 'expired' | 'already_used' | 'locked' | 'invalid_input' | 'not_enrolled';

export type Failure = { ok: false; reason: FailureReason; message?: string };

export type VerifyResult =
  | { ok: true; credentialId: string; amr?: AmrValue[]; userVerified?: boolean; notice?: string; counter?: number }
  | Failure;

export type EnrollResult =
  | {
      ok: true;
      credential: NewCredential;
      /** Whether enrolling proved possession (a TOTP code was typed), so it counts as evidence now. */
      proves: boolean;
      /** Shown once after enrolment. */
      reveal?: Record<string, unknown>;
    }
  | Failure;

/** The account a factor works for. */
export interface FactorAccount {
  id: string;
  username: string;
  email: string | null;
  displayName: string | null;
}

/** Server-side step state, namespaced by factor and interaction (never a form field). */
export interface StepState {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  /** Reads and deletes in one statement: at most one caller gets the value. */
  take<T>(key: string): Promise<T | undefined>;
}

/** The engine's services, as a factor may use them. */
export interface FactorServices {
  /** Advances a credential's counter to `value` only if it is higher: true for exactly one caller. */
  advanceCounter(credentialId: string, value: number): Promise<boolean>;
  /** Marks one of the credential's one-time codes used: true for exactly one caller. */
  consumeOneTimeCode(credentialId: string, code: string): Promise<boolean>;
  /** How many unused one-time codes the credential has left. */
  remainingOneTimeCodes(credentialId: string): Promise<number>;
  /** Constant-time comparison of two strings. */
  constantTimeEqual(a: string, b: string): boolean;
  /** Cryptographically random bytes. */
  randomBytes(n: number): Buffer;
  clock: { now(): Date };
  state: StepState;
  /** The issuer, for labels (otpauth issuer name, WebAuthn RP). */
  issuer: string;
  issuerName: string;
}

export interface FactorContext<S> {
  account: FactorAccount;
  settings: S;
  services: FactorServices;
}

/** What a page needs to render a step: the factor's partial name and its data. */
export interface StepView {
  partial: string;
  data: Record<string, unknown>;
}

export interface FactorDescriptor<S = unknown> {
  apiVersion: typeof FACTOR_API_VERSION;
  id: string;
  label: string;
  /** One line shown when choosing a factor. */
  description: string;
  kinds: FactorKind[];
  /** Every amr value this factor may contribute. */
  amr: AmrValue[];
  phishingResistant: boolean;
  /** Can sign a user in on its own (passkeys). */
  firstFactor: boolean;
  /** Recovery only (backup codes): offered as a fallback, never the only factor an account has. */
  recoveryOnly: boolean;
  /** Whether an account may hold several credentials of this factor. */
  multiple: boolean;
  /** Settings with defaults; the registry parses the operator's values through it at boot. */
  settings: z.ZodType<S>;
  /** Folder with this factor's Handlebars partials, registered as `<id>/<name>`. */
  viewsDir: string;
}

export interface Factor<S = unknown> extends FactorDescriptor<S> {
  beginEnrollment(ctx: FactorContext<S>): Promise<StepView>;
  finishEnrollment(ctx: FactorContext<S>, input: Record<string, string>): Promise<EnrollResult>;
  beginChallenge(ctx: FactorContext<S>, credentials: Credential[]): Promise<StepView>;
  verify(ctx: FactorContext<S>, credentials: Credential[], input: Record<string, string>): Promise<VerifyResult>;
}

/** Helper so a factor module is type-checked against the contract with its own settings type. */
export function defineFactor<S>(factor: Factor<S>): Factor<S> {
  return factor;
}
