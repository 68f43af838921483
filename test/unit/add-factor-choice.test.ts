/**
 * `twofold_enroll=any`: when the person sees the list of methods to add, what
 * each entry says enrolling it does, and which picks are refused.
 */
import { describe, expect, test } from '@jest/globals';
import { chooseFactorToAdd, type ChoiceFacts } from '../../src/mfa/add-factor-choice.ts';

const TOTP = { id: 'totp', multiple: true };
const WEBAUTHN = { id: 'webauthn', multiple: true };
const EMAIL = { id: 'email-code', multiple: false };
const BACKUP = { id: 'backup-codes', multiple: false };

function step(over: Partial<ChoiceFacts>) {
  return chooseFactorToAdd({ offered: [TOTP, WEBAUTHN, EMAIL, BACKUP], enrolled: ['totp'], asked: undefined, ...over });
}

describe('chooseFactorToAdd', () => {
  test.each([
    [
      'nothing picked yet: the list, in the order offered',
      {},
      {
        type: 'choose',
        choices: [
          { id: 'totp', effect: 'another' },
          { id: 'webauthn', effect: 'new' },
          { id: 'email-code', effect: 'new' },
          { id: 'backup-codes', effect: 'new' },
        ],
      },
    ],
    ['an empty pick is no pick', { asked: '' }, { type: 'choose', choices: expect.any(Array) }],
    [
      'a factor held once is marked as replaced, one held many times as one more',
      { enrolled: ['totp', 'email-code', 'backup-codes', 'webauthn'] },
      {
        type: 'choose',
        choices: [
          { id: 'totp', effect: 'another' },
          { id: 'webauthn', effect: 'another' },
          { id: 'email-code', effect: 'replaces' },
          { id: 'backup-codes', effect: 'replaces' },
        ],
      },
    ],
    [
      'an account with no factor: everything is new',
      { enrolled: [] },
      {
        type: 'choose',
        choices: [
          { id: 'totp', effect: 'new' },
          { id: 'webauthn', effect: 'new' },
          { id: 'email-code', effect: 'new' },
          { id: 'backup-codes', effect: 'new' },
        ],
      },
    ],
    ['a method on the list: its enrolment, with the way back to the list', { asked: 'email-code' }, { type: 'enroll', factor: 'email-code', choosable: true }],
    ['a method the account holds may be picked again', { asked: 'totp' }, { type: 'enroll', factor: 'totp', choosable: true }],
    ['a method the policy leaves out is refused', { offered: [TOTP, EMAIL], asked: 'webauthn' }, { type: 'refused', asked: 'webauthn' }],
    ['an unknown id is refused', { asked: 'carrier-pigeon' }, { type: 'refused', asked: 'carrier-pigeon' }],
    ['a repeated parameter (as the query string joins it) is refused', { asked: 'totp,webauthn' }, { type: 'refused', asked: 'totp,webauthn' }],
    ['ids are compared exactly', { asked: 'TOTP' }, { type: 'refused', asked: 'TOTP' }],
    ['one method to offer: straight to it, no list and no way back', { offered: [EMAIL] }, { type: 'enroll', factor: 'email-code', choosable: false }],
    ['one method to offer: a pick of another changes nothing', { offered: [TOTP], asked: 'webauthn' }, { type: 'enroll', factor: 'totp', choosable: false }],
  ] as Array<[string, Partial<ChoiceFacts>, unknown]>)('%s', (_name, over, expected) => {
    expect(step(over)).toEqual(expected);
  });

  test('nothing to offer is a bug of the caller, not a page', () => {
    expect(() => step({ offered: [] })).toThrow('at least one factor');
  });
});
