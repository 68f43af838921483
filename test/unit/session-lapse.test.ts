/**
 * Idle limits (policy levelIdle) as a pure function: a level the session
 * left unused for longer than its limit lapses, down to the first factor;
 * level 3 is held to the shorter of both limits; a proof is activity; and the
 * policy documents carry NIST SP 800-63B rev 4's numbers by default.
 */
import { describe, expect, test } from '@jest/globals';
import { applyIdle } from '../../src/policy/lapse.ts';
import { PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';
import { globalPolicySchema, parsePolicy } from '../../src/policy/documents.ts';
import type { Evidence } from '../../factors/types.ts';

const NOW = 1_000_000;
const IDLE = { '2': 3600, '3': 900 };
const pwd = PASSWORD_EVIDENCE(NOW - 7200);
const totp: Evidence = { factor: 'totp', credentialId: 't', kinds: ['have'], amr: ['otp'], phishingResistant: false, at: NOW - 7000 };
const key: Evidence = { factor: 'webauthn', credentialId: 'k', kinds: ['have'], amr: ['hwk'], phishingResistant: true, at: NOW - 7000 };
const factors = (r: { evidence: Evidence[] }) => r.evidence.map((e) => e.factor);

describe('applyIdle', () => {
  test.each<[string, Evidence[], number | undefined, string[], number[]]>([
    ['level 2 used 59 minutes ago: kept', [pwd, totp], NOW - 59 * 60, ['password', 'totp'], []],
    ['level 2 idle 61 minutes: down to the password', [pwd, totp], NOW - 61 * 60, ['password'], [2]],
    ['level 3 idle 16 minutes: the key lapses, the TOTP level 2 stays', [pwd, totp, key], NOW - 16 * 60, ['password', 'totp'], [3]],
    ['level 3 idle 61 minutes: both lapse, down to the password', [pwd, totp, key], NOW - 61 * 60, ['password'], [3, 2]],
    ['level 3 idle 14 minutes: kept', [pwd, key], NOW - 14 * 60, ['password', 'webauthn'], []],
    ['level 1 never lapses', [pwd], NOW - 86_400, ['password'], []],
    ['no stamp: the newest proof stands in (2 h ago: lapsed)', [pwd, totp], undefined, ['password'], [2]],
    ['a proof after the stamp is activity', [pwd, { ...totp, at: NOW - 60 }], NOW - 7200, ['password', 'totp'], []],
  ])('%s', (_name, evidence, lastActiveAt, kept, lapsed) => {
    const result = applyIdle(evidence, IDLE, lastActiveAt, NOW);
    expect(factors(result)).toEqual(kept);
    expect(result.lapsed).toEqual(lapsed);
  });

  test('level 3 is held to the shorter limit: a level-2 idle limit below level 3’s applies to both', () => {
    expect(applyIdle([pwd, key], { '2': 300, '3': 900 }, NOW - 600, NOW).lapsed).toEqual([3]);
  });

  test('the global policy defaults to NIST SP 800-63B rev 4: 24 h / 1 h at level 2, 12 h / 15 min at level 3; an entry given alone keeps the other default', () => {
    const defaults = parsePolicy(globalPolicySchema, {}, 'g');
    expect(defaults.levelMaxAge).toEqual({ '2': 86400, '3': 43200 });
    expect(defaults.levelIdle).toEqual({ '2': 3600, '3': 900 });
    expect(parsePolicy(globalPolicySchema, { levelIdle: { '3': 600 } }, 'g').levelIdle).toEqual({ '2': 3600, '3': 600 });
    expect(() => parsePolicy(globalPolicySchema, { levelIdle: { '2': 0 } }, 'g')).toThrow(/levelIdle\.2/);
  });
});
