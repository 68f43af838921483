/**
 * Passkeys as a first factor: a discoverable WebAuthn credential with user
 * verification signs a user in on its own, no username typed, no password.
 * Possession (the authenticator) and user verification (its PIN or biometric)
 * are two kinds, and WebAuthn is phishing-resistant, so a passkey alone
 * reaches level 3.
 *
 * The same mechanism as `webauthn` in another role, so another factor id
 * (DESIGN §3): here user verification and a discoverable credential are
 * required, not preferred, at registration and at every sign-in. It accepts
 * keys registered as `webauthn` too, when they can do both. Its ceremony's
 * failures and the browser's error messages are the `webauthn` factor's
 * (webauthn.failure.*, webauthn.browser.*): one mechanism, the same words.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineFactor, FACTOR_API_VERSION, type Credential } from '../types.ts';
import {
  algorithmsSetting,
  assertionOptions,
  attachmentSetting,
  finishRegistration,
  identify,
  registrationOptions,
  timeoutSetting,
  verifyAssertion,
  warmUp,
  type Role,
} from '../webauthn/ceremony.ts';
import { WEBAUTHN_ASSETS } from '../webauthn/assets.ts';

export const passkeySettings = z
  .object({
    /** `platform` (this device only), `cross-platform` (separate keys only) or `any`. */
    attachment: attachmentSetting,
    /** COSE algorithms accepted at registration. */
    algorithms: algorithmsSetting,
    /** Seconds a challenge lives (the login page makes a new one each time it is shown). */
    timeout: timeoutSetting,
  })
  .strict()
  .default({ attachment: 'any', algorithms: [-8, -7, -257], timeout: 300 });
export type PasskeySettings = z.infer<typeof passkeySettings>;

// A passkey is a discoverable credential with user verification: neither is negotiable.
const role = (s: PasskeySettings): Role => ({ factorId: 'passkey', userVerification: 'required', residentKey: 'required', ...s });
const names = (credentials: Credential[]) => credentials.map((c) => c.label).join(', ');

export default defineFactor<PasskeySettings>({
  apiVersion: FACTOR_API_VERSION,
  id: 'passkey',
  kinds: ['have', 'are'],
  amr: ['hwk', 'swk', 'user'],
  phishingResistant: true,
  firstFactor: true,
  recoveryOnly: false,
  multiple: true,
  sharesCredentialsWith: ['webauthn'],
  assets: WEBAUTHN_ASSETS,
  settings: passkeySettings,
  viewsDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'views'),
  messagesDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'messages'),
  warmUp,

  beginEnrollment(ctx, existing) {
    return registrationOptions(ctx, role(ctx.settings), existing, 'passkey/enroll', { key: 'passkey.enroll.submit' });
  },

  finishEnrollment(ctx, input) {
    return finishRegistration(ctx, role(ctx.settings), input, { key: 'passkey.label' });
  },

  beginChallenge(ctx, credentials) {
    return assertionOptions(
      ctx.services,
      role(ctx.settings),
      credentials,
      'passkey/challenge',
      { key: 'passkey.challenge.submit' },
      { names: names(credentials) },
    );
  },

  verify(ctx, credentials, input) {
    return verifyAssertion(ctx, role(ctx.settings), credentials, input);
  },

  beginFirstFactor(ctx) {
    // No allowCredentials: the browser offers every passkey it has for this RP ID.
    return assertionOptions(ctx.services, role(ctx.settings), null, 'passkey/login', { key: 'passkey.login.submit' });
  },

  identify,
});
