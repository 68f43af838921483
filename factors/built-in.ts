/**
 * The ids of the factors built into Twofold, in the order pages list them:
 * what FACTORS means when it is not set. Ids only, so the configuration can
 * name its default without loading a factor; registry.ts maps each to its
 * module (a test keeps the two in step).
 */
export const BUILT_IN_FACTOR_IDS = ['totp', 'webauthn', 'passkey', 'backup-codes', 'email-code', 'sms-code'] as const;
