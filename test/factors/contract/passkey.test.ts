/**
 * Passkeys (`passkey`) through the contract kit, including the first-factor
 * part: the login view, and an answer that identifies its account alone.
 */
import { describeFactorContract } from './kit.ts';
import { webauthnDriver } from './webauthn-driver.ts';
import passkey from '../../../factors/passkey/index.ts';

describeFactorContract('passkey', webauthnDriver(passkey));
describeFactorContract('passkey (platform authenticators only)', webauthnDriver(passkey, { attachment: 'platform' }));
