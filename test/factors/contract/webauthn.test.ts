/**
 * Security keys (`webauthn`) through the contract kit: with the default
 * settings, and with user verification and a discoverable credential required
 * on a synced (backup-eligible) authenticator.
 */
import { describeFactorContract } from './kit.ts';
import { webauthnDriver } from './webauthn-driver.ts';
import webauthn from '../../../factors/webauthn/index.ts';

describeFactorContract('webauthn', webauthnDriver(webauthn));
describeFactorContract(
  'webauthn (user verification and discoverable credential required, synced)',
  webauthnDriver(webauthn, { userVerification: 'required', residentKey: 'required' }, { be: true }),
);
