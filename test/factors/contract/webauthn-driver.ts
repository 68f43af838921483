/**
 * The contract kit's driver for both WebAuthn factors (`webauthn`, `passkey`):
 * a software authenticator (test/helpers/webauthn.ts) answers the options the
 * views carry, as a browser and an authenticator would.
 */
import crypto from 'node:crypto';
import type { FactorDriver } from './kit.ts';
import type { Factor } from '../../../factors/types.ts';
import { SoftwareAuthenticator, formInput, optionsOf } from '../../helpers/webauthn.ts';

/** The kit's provider runs at testConfig(39_999): RP ID localhost, this origin. */
export const KIT_ORIGIN = 'http://localhost:39999';

export function webauthnDriver(factor: Factor<any>, settings?: Record<string, unknown>, options: { be?: boolean } = {}): () => FactorDriver {
  return () => {
    // An authenticator of the kind the settings ask for (a platform one when only those may register).
    const attachment = settings?.attachment === 'platform' ? 'platform' : 'cross-platform';
    const authenticator = new SoftwareAuthenticator({ origin: KIT_ORIGIN, be: options.be, attachment });
    const forger = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    return {
      factor,
      settings,
      enrollmentInput: (view) => formInput(authenticator.register(optionsOf(view)), 'Contract key'),
      // Signed for another site: the browser would have put that origin in clientDataJSON.
      wrongEnrollmentInput: (view) => formInput(authenticator.register(optionsOf(view), { origin: 'https://phish.example' }), 'Contract key'),
      validChallengeInput: (credential, view) => formInput(authenticator.assert(optionsOf(view), { credentialId: credential.lookupKey })),
      invalidChallengeInput: (credential, view) => formInput(authenticator.assert(optionsOf(view), { credentialId: credential.lookupKey, signWith: forger })),
      firstFactorInput: (credential, login) => formInput(authenticator.assert(optionsOf(login), { credentialId: credential.lookupKey })),
    };
  };
}
