/**
 * Security keys and platform authenticators (Touch ID, Windows Hello,
 * Android) as a second factor, with WebAuthn. Phishing-resistant: with a
 * password it reaches level 3. Registration asks for a discoverable credential
 * by default (resident key preferred), so a key enrolled here also signs in as
 * a passkey where the authenticator can (the `passkey` factor accepts it).
 *
 * amr: `hwk` for a device-bound key, `swk` for a synced one (the BE flag), and
 * `user` for the user-presence test every WebAuthn proof includes.
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
  registrationOptions,
  timeoutSetting,
  verifyAssertion,
  warmUp,
  type Role,
} from './ceremony.ts';
import { WEBAUTHN_ASSETS } from './assets.ts';

const requirement = z.enum(['required', 'preferred', 'discouraged']);

export const webauthnSettings = z
  .object({
    /** Ask the authenticator to verify the user (PIN, biometric); `required` refuses keys that did not. */
    userVerification: requirement.default('preferred'),
    /** Ask for a discoverable credential (usable as a passkey); `required` refuses keys that cannot keep one. */
    residentKey: requirement.default('preferred'),
    /** `platform` (this device only), `cross-platform` (separate keys only) or `any`. */
    attachment: attachmentSetting,
    /** COSE algorithms accepted at registration. */
    algorithms: algorithmsSetting,
    /** Seconds a challenge lives. */
    timeout: timeoutSetting,
  })
  .strict()
  .default({ userVerification: 'preferred', residentKey: 'preferred', attachment: 'any', algorithms: [-8, -7, -257], timeout: 300 });
export type WebAuthnSettings = z.infer<typeof webauthnSettings>;

const role = (s: WebAuthnSettings): Role => ({ factorId: 'webauthn', ...s });
const names = (credentials: Credential[]) => credentials.map((c) => c.label).join(', ');

export default defineFactor<WebAuthnSettings>({
  apiVersion: FACTOR_API_VERSION,
  id: 'webauthn',
  kinds: ['have', 'are'],
  amr: ['hwk', 'swk', 'user'],
  phishingResistant: true,
  firstFactor: false,
  recoveryOnly: false,
  multiple: true,
  sharesCredentialsWith: ['passkey'],
  assets: WEBAUTHN_ASSETS,
  settings: webauthnSettings,
  viewsDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'views'),
  messagesDir: path.join(path.dirname(fileURLToPath(import.meta.url)), 'messages'),
  warmUp,

  beginEnrollment(ctx, existing) {
    return registrationOptions(ctx, role(ctx.settings), existing, 'webauthn/enroll', { key: 'webauthn.enroll.submit' });
  },

  finishEnrollment(ctx, input) {
    return finishRegistration(ctx, role(ctx.settings), input, { key: 'webauthn.label' });
  },

  beginChallenge(ctx, credentials) {
    return assertionOptions(
      ctx.services,
      role(ctx.settings),
      credentials,
      'webauthn/challenge',
      { key: 'webauthn.challenge.submit' },
      { names: names(credentials) },
    );
  },

  verify(ctx, credentials, input) {
    return verifyAssertion(ctx, role(ctx.settings), credentials, input);
  },
});
