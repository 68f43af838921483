/**
 * The rules for adding a sign-in method at an app's request (twofold_enroll),
 * as a table: what is offered, when a fresh proof of an existing factor is
 * needed first, and when the request is refused.
 */
import { describe, expect, test } from '@jest/globals';
import { answersRequest, invalidAddFactorRequest, planAddFactor, type AddFactorFacts } from '../../src/mfa/add-factor.ts';
import type { FactorFacts } from '../../src/policy/decide.ts';
import type { Evidence } from '../../factors/types.ts';
import { FactorRegistry } from '../../factors/registry.ts';

const NOW = 1_800_000_000;
const fact = (id: string, recoveryOnly = false): FactorFacts => ({
  id,
  kinds: ['have'],
  phishingResistant: id === 'webauthn' || id === 'passkey',
  recoveryOnly,
});
const TOTP = fact('totp');
const WEBAUTHN = fact('webauthn');
const PASSKEY = fact('passkey');
const BACKUP = fact('backup-codes', true);
const AVAILABLE = [TOTP, WEBAUTHN, PASSKEY, BACKUP];
const proof = (factor: string, ago: number, remembered = false): Evidence => ({
  factor,
  kinds: ['have'],
  amr: [],
  phishingResistant: false,
  at: NOW - ago,
  ...(remembered ? { remembered } : {}),
});
const PASSWORD = proof('password', 10);

function plan(over: Partial<AddFactorFacts>) {
  return planAddFactor({ requested: 'webauthn', enrolled: [], allowed: undefined, available: AVAILABLE, evidence: [PASSWORD], now: NOW, maxAge: 300, ...over });
}

describe('planAddFactor', () => {
  test.each([
    ['no factor yet: the fresh sign-in is enough, the key is offered', {}, { type: 'enroll', factors: ['webauthn'] }],
    [
      '"any" to an account with no factor offers every factor that is not recovery-only',
      { requested: 'any' },
      { type: 'enroll', factors: ['totp', 'webauthn', 'passkey'] },
    ],
    ['"any" within what the policy allows', { requested: 'any', allowed: ['totp', 'passkey'] }, { type: 'enroll', factors: ['totp', 'passkey'] }],
    [
      '"any" to an account with a factor offers backup codes too, last',
      { requested: 'any', available: [BACKUP, TOTP, WEBAUTHN], enrolled: [TOTP], evidence: [PASSWORD, proof('totp', 5)] },
      { type: 'enroll', factors: ['totp', 'webauthn', 'backup-codes'] },
    ],
    [
      '"any" to an account with only backup codes offers no new set',
      { requested: 'any', enrolled: [BACKUP], evidence: [PASSWORD, proof('backup-codes', 5)] },
      { type: 'enroll', factors: ['totp', 'webauthn', 'passkey'] },
    ],
    [
      '"any" offers backup codes only where the policy allows them',
      { requested: 'any', enrolled: [TOTP], allowed: ['totp', 'webauthn'], evidence: [PASSWORD, proof('totp', 5)] },
      { type: 'enroll', factors: ['totp', 'webauthn'] },
    ],
    [
      '"any" where the policy allows only backup codes: a new set for an account that has a factor',
      { requested: 'any', enrolled: [TOTP], allowed: ['backup-codes'], evidence: [PASSWORD, proof('totp', 5)] },
      { type: 'enroll', factors: ['backup-codes'] },
    ],
    ['"any" asks for a fresh proof before offering anything', { requested: 'any', enrolled: [TOTP] }, { type: 'prove', factors: ['totp'] }],
    [
      'backup codes may be asked for by name (a new set)',
      { requested: 'backup-codes', enrolled: [TOTP], evidence: [PASSWORD, proof('totp', 5)] },
      { type: 'enroll', factors: ['backup-codes'] },
    ],
    [
      'a TOTP user proved TOTP moments ago: straight to the key',
      { enrolled: [TOTP], evidence: [PASSWORD, proof('totp', 20)] },
      { type: 'enroll', factors: ['webauthn'] },
    ],
    ['a TOTP user with the password only must prove TOTP first', { enrolled: [TOTP, BACKUP] }, { type: 'prove', factors: ['totp', 'backup-codes'] }],
    ['a proof older than the limit does not count', { enrolled: [TOTP], evidence: [PASSWORD, proof('totp', 301)] }, { type: 'prove', factors: ['totp'] }],
    ['a remembered device is not a proof', { enrolled: [TOTP], evidence: [PASSWORD, proof('totp', 0, true)] }, { type: 'prove', factors: ['totp'] }],
    [
      'a backup code is a proof (the lost-phone path)',
      { requested: 'totp', enrolled: [TOTP, BACKUP], evidence: [PASSWORD, proof('backup-codes', 30)] },
      { type: 'enroll', factors: ['totp'] },
    ],
    ['a passkey sign-in is a proof', { requested: 'totp', enrolled: [PASSKEY], evidence: [proof('passkey', 30)] }, { type: 'enroll', factors: ['totp'] }],
    [
      'the proof offered prefers what the app allows',
      { requested: 'passkey', enrolled: [TOTP, WEBAUTHN], allowed: ['webauthn', 'passkey'] },
      { type: 'prove', factors: ['webauthn'] },
    ],
    [
      'a factor the app does not allow still proves who the user is',
      { requested: 'passkey', enrolled: [TOTP], allowed: ['passkey'] },
      { type: 'prove', factors: ['totp'] },
    ],
    [
      'a factor the policy forbids is refused',
      { allowed: ['totp'] },
      { type: 'refused', description: 'the policy does not allow webauthn for this application' },
    ],
    [
      '"any" with nothing allowed is refused',
      { requested: 'any', allowed: ['backup-codes'] },
      { type: 'refused', description: 'no sign-in method may be added for this application' },
    ],
    [
      'backup codes for an account with no other factor are refused (never the only factor)',
      { requested: 'backup-codes' },
      { type: 'refused', description: 'backup-codes only back up another sign-in method: add one first' },
    ],
    [
      'backup codes for an account that has only backup codes are refused',
      { requested: 'backup-codes', enrolled: [BACKUP], evidence: [PASSWORD, proof('backup-codes', 5)] },
      { type: 'refused', description: 'backup-codes only back up another sign-in method: add one first' },
    ],
    [
      'an account with only backup codes adds a real factor after proving a code',
      { requested: 'totp', enrolled: [BACKUP], evidence: [PASSWORD, proof('backup-codes', 5)] },
      { type: 'enroll', factors: ['totp'] },
    ],
    ['an account with only backup codes proves a code first', { requested: 'totp', enrolled: [BACKUP] }, { type: 'prove', factors: ['backup-codes'] }],
  ] as Array<[string, Partial<AddFactorFacts>, unknown]>)('%s', (_name, over, expected) => {
    expect(plan(over)).toEqual(expected);
  });

  test('the refusal comes before any proof is asked for', () => {
    expect(plan({ enrolled: [TOTP], allowed: ['totp'] }).type).toBe('refused');
  });
});

describe('the request parameter', () => {
  const registry = new FactorRegistry();
  test.each([
    [undefined, undefined],
    ['any', undefined],
    ['webauthn', undefined],
    ['passkey', undefined],
    ['password', 'twofold_enroll must be "any" or one of: totp, webauthn, passkey, backup-codes, email-code, sms-code'],
    ['WEBAUTHN', 'twofold_enroll must be "any" or one of: totp, webauthn, passkey, backup-codes, email-code, sms-code'],
    ['', 'twofold_enroll must be "any" or one of: totp, webauthn, passkey, backup-codes, email-code, sms-code'],
  ])('%p', (value, problem) => {
    expect(invalidAddFactorRequest(registry, value)).toBe(problem);
  });

  test('which enrolment answers the request', () => {
    expect(answersRequest('any', 'totp')).toBe(true);
    expect(answersRequest('webauthn', 'webauthn')).toBe(true);
    expect(answersRequest('webauthn', 'totp')).toBe(false);
  });
});
