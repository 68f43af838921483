/**
 * The factor contract: what a second-factor plugin declares and implements.
 *
 * A factor is a module whose default export is a Factor: a folder under factors/
 * (built in), or a package or a file named in FACTORS. It gets narrow services
 * from the engine (its own credential store, consume-once helpers,
 * constant-time comparison, sealing, a clock, step state) and never
 * the Koa context, the provider or the raw database, so replay protection and
 * comparison cannot be got wrong inside a plugin.
 *
 * Failures a user can cause are values; exceptions are for bugs.
 *
 * What changed between versions, and when: docs/factor-contract-changelog.md. How to write a
 * factor: docs/writing-a-factor.md.
 */
import type { z } from 'zod';
import type { MessageRef } from '../src/i18n/catalogue.ts';

export type { MessageRef };

/** Bumped when this contract changes incompatibly; the registry refuses other versions. */
export const FACTOR_API_VERSION = 2 as const;

/** RFC 8176 Authentication Method Reference values (IANA registry). */
export const AMR_VALUES = [
  'face',
  'fpt',
  'geo',
  'hwk',
  'iris',
  'kba',
  'mca',
  'mfa',
  'otp',
  'pin',
  'pop',
  'pwd',
  'rba',
  'retina',
  'sc',
  'sms',
  'swk',
  'tel',
  'user',
  'vbm',
  'wia',
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
  /** A public identifier the authenticator presents (a WebAuthn credential ID), unique across all credentials. */
  lookupKey?: string;
  /** Non-secret data the factor keeps (algorithm, public key, transports, …). */
  data: Record<string, unknown>;
  /** A monotonic counter the engine advances atomically (TOTP time step, signature counter). */
  counter: number | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** What finishEnrollment asks the engine to store. */
export interface NewCredential {
  /** The name the person gave it, or a default by key (stored in the enrolling person's language). */
  label: string | MessageRef;
  secret?: string;
  data?: Record<string, unknown>;
  counter?: number | null;
  /** One-time codes attached to the credential (backup codes), stored only as keyed hashes. */
  oneTimeCodes?: string[];
  /** See Credential.lookupKey. A key already stored (for any account) makes the enrolment fail as `already_used`. */
  lookupKey?: string;
}

/** `suspected_clone`: the proof went backwards (a WebAuthn signature counter regressed); refused and audited. */
export type FailureReason = 'wrong' | 'expired' | 'already_used' | 'locked' | 'invalid_input' | 'not_enrolled' | 'suspected_clone' | 'unavailable';

/**
 * `message`: what the person is told, a key of the factor's catalogue (or the engine's) with its
 * parameters; without one, the page says what the reason means in general. `credentialId`: the
 * credential concerned, when known (recorded in the audit log, never shown).
 */
export type Failure = { ok: false; reason: FailureReason; message?: MessageRef; credentialId?: string };

/**
 * No answer yet: the proof comes from outside the page (a phone that has not approved yet). Only a
 * factor that `waits` may say so, and only the engine's checks without input are free: see `waits`.
 */
export type Pending = { ok: false; reason: 'pending'; message?: MessageRef };

export type VerifyResult =
  | {
      ok: true;
      credentialId: string;
      /** What this proof showed, a subset of the descriptor's (default: all of them). */
      amr?: AmrValue[];
      kinds?: FactorKind[];
      userVerified?: boolean;
      /** Shown on a page of its own before the sign-in continues (few backup codes left). */
      notice?: MessageRef;
      counter?: number;
      /** Keys merged into the credential's non-secret data (e.g. WebAuthn backup state, which may change). */
      dataUpdate?: Record<string, unknown>;
    }
  | Failure
  | Pending;

export type EnrollResult =
  | {
      ok: true;
      credential: NewCredential;
      /** Whether enrolling proved possession (a TOTP code was typed), so it counts as evidence now. */
      proves: boolean;
      /** When it proves: what it showed, a subset of the descriptor's (default: all of them). */
      amr?: AmrValue[];
      kinds?: FactorKind[];
      /** Shown once after enrolment. */
      reveal?: Record<string, unknown>;
      /**
       * An email address the enrolment proved the user receives mail at (a code sent there came
       * back). When it is the account's own address, the engine marks that address verified
       * (the `email_verified` claim).
       */
      provedEmail?: string;
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
  /** The issuer URL. */
  issuer: string;
  /** The product name (BRAND_NAME), for labels: the otpauth issuer, the WebAuthn RP name. */
  issuerName: string;
  /** The WebAuthn relying party: proofs are bound to this RP ID and these origins. */
  relyingParty: RelyingParty;
  /** One-time codes delivered out of band (email, SMS, voice), for this factor and account. */
  outOfBand: OutOfBandCodes;
  /** Answers that arrive outside the browser (at the factor's callback), for this factor and account. */
  answers: Answers;
  /** Outgoing HTTP calls, with a timeout, a size limit and an audit record; a factor never calls `fetch` itself. */
  http: FactorHttp;
  /**
   * Where the browser comes back to this challenge (`routes.return`): the absolute URL of
   * /interaction/:uid/factor/<id>/return, given to beginChallenge (a factor sends it as its
   * redirect URI and keeps it in step state if it needs it again).
   */
  returnUrl?: string;
}

/**
 * Questions put to a device outside the browser (approve this sign-in?), whose answers arrive at the
 * factor's callback, in any provider process. Browser side: `open` when the challenge begins, `take`
 * when the engine checks. The callback's side is `AnswerDesk`.
 */
export interface Answers {
  /**
   * Opens a question for one of the account's credentials of this factor, open for `ttlSeconds`
   * (30 to 900). `id` is what the device is told (random; it answers nothing without the factor's own
   * authentication of the callback); `data` is kept with it (not secret: a number to match).
   */
  open(request: { credentialId: string; ttlSeconds: number; data?: Record<string, unknown> }): Promise<{ id: string; expiresAt: Date }>;
  /** The question's answer, handed out once: `pending` until it arrives, `expired` when it did not in time, `taken` once read. */
  take(id: string): Promise<AnswerState>;
}

export type AnswerState =
  | { status: 'pending'; expiresAt: Date }
  | { status: 'expired' }
  | { status: 'taken' }
  | { status: 'answered'; credentialId: string; answer: Record<string, unknown> };

/** The callback's side of `Answers`: find the question a call answers, and record the answer once. */
export interface AnswerDesk {
  /**
   * The question `id` of this factor while it is open (unexpired), with the credential it was put to,
   * its secret opened (to check the call's signature), and whether it was answered already (a call
   * answering it again is refused by `answer`); undefined for an unknown or expired question.
   */
  find(id: string): Promise<{ credential: Credential; data: Record<string, unknown>; expiresAt: Date; answered: boolean } | undefined>;
  /** Records the answer while the question is open: true for exactly one caller. */
  answer(id: string, answer: Record<string, unknown>): Promise<boolean>;
}

/** One outgoing call. `json` is sent as the body with `content-type: application/json`. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** http: or https:. Redirects are not followed (a 3xx is the answer). */
  url: string;
  headers?: Record<string, string>;
  body?: string;
  json?: unknown;
  /** Milliseconds before the call is given up (default 10 000, at most 30 000). */
  timeoutMs?: number;
  /** Bytes of response body accepted (default 256 KiB, at most 5 MiB); more is `unavailable`. */
  maxBytes?: number;
}

/** The answer, whatever its status; `unavailable` when there was none (refused, timed out, too large). */
export type HttpResult =
  | {
      ok: true;
      status: number;
      headers: Record<string, string>;
      text: string;
      /** The body parsed, when the answer says it is JSON and it parses. */ json?: unknown;
    }
  | (Failure & { reason: 'unavailable' });

export interface FactorHttp {
  request(request: HttpRequest): Promise<HttpResult>;
}

/**
 * A request reaching a factor's own route, as plain data: never the Koa context, the cookies or the
 * session. `headers` holds only the headers the factor declared (`routes`), by lower-case name.
 */
export interface FactorRequest {
  method: 'GET' | 'POST';
  /** Query parameters, the first value of each. */
  query: Record<string, string>;
  /** An urlencoded form's fields, or a JSON object's top-level string, number and boolean fields as strings. */
  form: Record<string, string>;
  /** The body as it arrived (UTF-8, at most 16 KiB), for a signature over its exact bytes; '' without one. */
  body: string;
  headers: Record<string, string>;
}

/** What a return route did: the answer it carried is kept (the engine then checks the challenge), or a failure. */
export type ReturnResult = { ok: true } | Failure;

/** What a callback did; `body` is answered as JSON (default `{ "ok": true }`). A failure is answered with its reason and an HTTP status. */
export type CallbackResult = { ok: true; body?: Record<string, unknown> } | Failure;

/** What a callback may use: no account, no step state (it runs outside any interaction). */
export interface CallbackServices {
  constantTimeEqual(a: string, b: string): boolean;
  randomBytes(n: number): Buffer;
  clock: { now(): Date };
  issuer: string;
  answers: AnswerDesk;
  /**
   * Replay protection for a call the factor has authenticated: accepted when `sentAt` is within
   * `windowSeconds` (default 300, at most 900) of now and `nonce` (16 to 128 characters) was never
   * accepted for this factor within that window; `expired` or `already_used` otherwise. Stored in the
   * database, so it holds across processes.
   */
  acceptOnce(nonce: string, sentAt: Date, windowSeconds?: number): Promise<{ ok: true } | Failure>;
  http: FactorHttp;
}

export interface CallbackContext<S> {
  settings: S;
  services: CallbackServices;
}

/** How a code reaches the user. Decides the amr value: `otp` for email, `sms`, `tel` for a voice call. */
export type CodeChannel = 'email' | 'sms' | 'voice';

/** The rules for one factor's codes (its settings). */
export interface CodeRules {
  /** Digits per code. */
  length: number;
  ttlSeconds: number;
  /** Wrong tries a code allows. A new code inherits the tries spent on the one it replaces. */
  maxAttempts: number;
  /** Seconds before another code may be sent for the same scope. */
  cooldownSeconds: number;
}

/** The live code of a scope, for what a page says. */
export interface CodeStatus {
  channel: CodeChannel;
  sentAt: Date;
  expiresAt: Date;
  /** When another code may be sent. */
  resendAt: Date;
  attemptsLeft: number;
}

/**
 * Codes sent to an address the factor names. A `scope` is what a code unlocks (a credential id, or a
 * pending enrolment's random id); scopes are private to the factor and account. Sending is throttled per
 * account, client address and destination, with the same answer whoever the destination belongs to.
 */
export interface OutOfBandCodes {
  /** Channels this deployment can deliver over (email needs SMTP or the development log; sms and voice the webhook). */
  readonly channels: readonly CodeChannel[];
  /**
   * Makes a code, delivers it, and only then stores its keyed hash, replacing the scope's previous code.
   * Fails as `locked` (cooldown, send throttle, tries used up) or `unavailable` (delivery failed: nothing
   * stored, the previous code still works).
   */
  send(request: {
    scope: string;
    channel: CodeChannel;
    to: string;
    purpose: 'sign-in' | 'enroll';
    rules: CodeRules;
  }): Promise<{ ok: true; status: CodeStatus } | (Failure & { retryAfterSeconds?: number })>;
  /** Spends one try on the scope's live code: accepted at most once, by one conditional UPDATE. */
  check(scope: string, code: string): Promise<{ ok: true; channel: CodeChannel } | Failure>;
  /** The scope's live code, if any. */
  status(scope: string, rules: Pick<CodeRules, 'cooldownSeconds'>): Promise<CodeStatus | undefined>;
}

/** What a factor may know of the deployment when it says whether it can work here (`enabled`). */
export interface FactorEnvironment {
  /** The channels this provider delivers codes over (email: SMTP, or the log in development; sms and voice: the gateway). */
  readonly channels: readonly CodeChannel[];
}

/** What `importCredential` works with: the account the credential is for, and the operator's settings. */
export interface ImportContext<S> {
  account: FactorAccount;
  settings: S;
}

/**
 * An imported credential to store, or what is wrong with the administrator's input: one line for the
 * command's output (`field`: the input it is about).
 */
export type ImportResult = { ok: true; credential: NewCredential } | { ok: false; field?: string; problem: string };

/** The WebAuthn relying party, from configuration (WEBAUTHN_*). */
export interface RelyingParty {
  /** The RP ID: the issuer's host or a registrable suffix of it. */
  id: string;
  /** The name authenticators show. */
  name: string;
  /** Every origin a response may come from (the issuer's origin by default). */
  origins: string[];
  /** `none`: any authenticator; `required`: a verified attestation statement (not self attestation). */
  attestation: 'none' | 'required';
  /** AAGUIDs allowed to register (empty: any). */
  aaguids: string[];
  /** PEM trust anchors an attestation chain must lead to (when attestation is required). */
  attestationRoots: string[];
}

/** A first factor's context: no account is known yet. */
export interface FirstFactorContext<S> {
  settings: S;
  services: FactorServices;
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
  /** The page's main button: its label, and the action it posts when it does not finish the step (send a code). */
  submit?: { label: MessageRef; action?: string };
  /** Further buttons after the main one, each posting `action=<name>` (send a new code, call instead). */
  actions?: Array<{ name: string; label: MessageRef }>;
  /**
   * When a challenge ends (a WebAuthn challenge's timeout, a question's expiry). Until then the engine
   * shows this view again from step state rather than beginning another challenge. A factor that
   * `waits` must say it: the waiting page polls until then.
   */
  expiresAt?: Date;
}

/** What an action did: the step continues (the page is shown again), or a failure the user can act on. */
export type ActionResult = { ok: true } | (Failure & { retryAfterSeconds?: number });

/** Which step an action belongs to, and the account's credentials of the factor (none while enrolling the first). */
export interface ActionRequest {
  step: 'enroll' | 'challenge';
  action: string;
  credentials: Credential[];
}

export interface FactorDescriptor<S = unknown> {
  apiVersion: typeof FACTOR_API_VERSION;
  /** Also the prefix of its message keys; its name is the message `<id>.label`, one line about it `<id>.description`. */
  id: string;
  kinds: FactorKind[];
  /** Every amr value this factor may contribute. */
  amr: AmrValue[];
  phishingResistant: boolean;
  /** Can sign a user in on its own (passkeys). */
  firstFactor: boolean;
  /** Recovery only (backup codes): offered as a fallback, never the only factor an account has. */
  recoveryOnly: boolean;
  /**
   * Offered once inside the sign-in, right after the account enrols another factor, when it has no
   * credential of this one (backup codes: so a lost device is not a lockout). At most one factor
   * may say so (the registry checks at boot). Default false.
   */
  offerAfterFirstEnrollment?: boolean;
  /**
   * How the enrolment page presents this factor when it is not a setup: its title (a key of its
   * catalogue), and whether the usual introduction ("Your account needs a second step… Set up
   * <label>.") is shown. Backup codes are a page of codes to keep. The main button's label comes
   * from the StepView's `submit`. Default: "Set up two-step verification" (or "Add <label>"), with
   * the introduction.
   */
  enrollPage?: { title: MessageRef; intro: boolean };
  /** Whether an account may hold several credentials of this factor. */
  multiple: boolean;
  /**
   * Factors whose credentials this factor also accepts (one mechanism in two roles: a security key
   * registered as a second factor signs in as a passkey where it can, and the reverse).
   */
  sharesCredentialsWith?: string[];
  /** Browser files the views load, served at /assets/<name> (e.g. a WebAuthn client library from node_modules). */
  assets?: Record<string, string>;
  /**
   * Settings with defaults; the registry parses the operator's values (FACTOR_SETTINGS) through it at
   * boot. A field whose schema says `.meta({ secret: true })` (an API key, a pepper) is never shown:
   * not in a log, an error, nor the `twofold factors` listing.
   */
  settings: z.ZodType<S>;
  /**
   * Whether the factor can work in this deployment with these settings: `true`, or why not, as one
   * line for the operator's start-up log that says what to configure ("no SMS gateway: set
   * SMS_WEBHOOK_URL …"). Asked once at start; a factor that is off is neither offered nor accepted,
   * and its settings are still checked. Default: on.
   */
  enabled?(settings: S, environment: FactorEnvironment): true | string;
  /** Folder with this factor's Handlebars partials, registered as `<id>/<name>`. */
  viewsDir: string;
  /**
   * Folder with this factor's messages, `<language>.json` (`en.json` at least; each built-in factor
   * ships `en` and `de`), ICU MessageFormat, every key beginning with `<id>.`: `<id>.label` and
   * `<id>.description` (the registry refuses a factor whose English lacks them), its views' texts,
   * its buttons' and its failures' messages. Views use them as `{{t "<id>.key" name=value}}`; code
   * names them as `{ key, params }`. A theme may override them (THEME_DIR/messages).
   */
  messagesDir: string;
  /**
   * Its proof arrives from outside the page's form (an approval on a phone, a redirect back from
   * another site). Its challenge view says when it ends (`expiresAt`); the page then waits, polling
   * the engine (or offering "Check again" without script), and the engine calls `verify` with an
   * empty input, to which the factor may answer `pending`. Such checks carry no guess, so `pending`
   * and success cost nothing, and a definitive failure (a denied approval) counts one failed guess.
   * Whenever the person's input reaches `verify` (a form, a return route's query) the guess is counted
   * before the factor sees it and given back only on success: `pending` then costs what `wrong` does.
   * Default false.
   */
  waits?: boolean;
  /**
   * Routes this factor owns, each reaching it through the engine with a FactorRequest holding only
   * the `headers` named here (lower-case; never `cookie`):
   * - `return`: GET and POST /interaction/:uid/factor/<id>/return, the browser coming back to the
   *   challenge (a redirect from another site): `handleReturn`, then the engine checks the challenge.
   * - `callback`: POST /factor/<id>/callback, a server's call outside any interaction (a phone's
   *   approval): `handleCallback`, which authenticates it itself (a signature with a key the factor
   *   holds) and uses `acceptOnce` against replays.
   */
  routes?: { return?: { headers?: string[] }; callback?: { headers?: string[] } };
  /**
   * Loads what is slow to load (a large library) ahead of first use. The provider calls it once it
   * is ready, so neither start-up nor the first sign-in waits for it. Optional.
   */
  warmUp?(): Promise<void>;
}

export interface Factor<S = unknown> extends FactorDescriptor<S> {
  /** `credentials`: the account's existing ones (this factor's and those it shares), e.g. to exclude them. */
  beginEnrollment(ctx: FactorContext<S>, credentials: Credential[]): Promise<StepView>;
  finishEnrollment(ctx: FactorContext<S>, input: Record<string, string>): Promise<EnrollResult>;
  /**
   * Begins the step's challenge (makes a WebAuthn challenge, asks the phone). Called once per step,
   * not per page view: the engine shows the view again from step state until the challenge ends
   * (`expiresAt`), is answered, or the person asks for another (an action, "Start again").
   */
  beginChallenge(ctx: FactorContext<S>, credentials: Credential[]): Promise<StepView>;
  verify(ctx: FactorContext<S>, credentials: Credential[], input: Record<string, string>): Promise<VerifyResult>;
  /** First factors: what the login page shows before anyone is identified (partial `<id>/login`). */
  beginFirstFactor?(ctx: FirstFactorContext<S>): Promise<StepView>;
  /**
   * First factors: which credential the input claims (its lookupKey), read before any account is
   * known. Proves nothing: the engine finds the credential's account and then calls `verify`.
   */
  identify?(input: Record<string, string>): { ok: true; lookupKey: string } | Failure;
  /**
   * A submission that moves a step along without finishing it (send a code to this address, send
   * another, call instead), posted as `action=<name>`. Proves nothing and stores no credential; an
   * unknown action is `invalid_input`.
   */
  act?(ctx: FactorContext<S>, request: ActionRequest, input: Record<string, string>): Promise<ActionResult>;
  /** `routes.return`: keeps what the browser brought back (in step state) for the check that follows; proves nothing by itself. */
  handleReturn?(ctx: FactorContext<S>, credentials: Credential[], request: FactorRequest): Promise<ReturnResult>;
  /** `routes.callback`: authenticates a server's call (signature, then `acceptOnce`) and records what it says (`answers.answer`). */
  handleCallback?(ctx: CallbackContext<S>, request: FactorRequest): Promise<CallbackResult>;
  /**
   * Migration: a credential made elsewhere (an authenticator app's key from another system), brought
   * over by an administrator: `twofold user factor import <username> <factor-id> name=value…`. The
   * input is checked as an enrolment would check it, but proves nothing: nobody answered a challenge.
   * Optional; a factor without it cannot be imported.
   */
  importCredential?: {
    /** What the administrator gives, by name, each with one line for the listing (`twofold factors`); a `secret` one may come from standard input (--secret-stdin). */
    fields: Record<string, { description: string; required?: boolean; secret?: boolean }>;
    credential(ctx: ImportContext<S>, input: Record<string, string>): Promise<ImportResult>;
  };
}

/** Helper so a factor module is type-checked against the contract with its own settings type. */
export function defineFactor<S>(factor: Factor<S>): Factor<S> {
  return factor;
}
