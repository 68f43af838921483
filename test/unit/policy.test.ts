/**
 * The policy engine, rule by rule: decide() as tables over the MFA mode, the
 * account's factors, the evidence so far, voluntary acr_values, an essential
 * acr and enrolment; then levelOf, amrOf, mergeEvidence and the ACR table; and
 * property tests (fast-check) for what must hold whatever the input:
 * assurance only grows with evidence, a tighter input never turns a pending
 * decision into a satisfied one nor lowers its target, request parameters
 * never lower the policy's minimum, and a satisfied decision is truthful.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { configurePropertySeed } from '../helpers/property-seed.ts';
import { decide, type Decision, type FactorFacts, type MfaMode, type PolicyInput } from '../../src/policy/decide.ts';
import { amrOf, levelOf, mergeEvidence, PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';
import { AcrTable, DEFAULT_ACR_TABLE, TWOFOLD_ACR, type Level } from '../../src/policy/acr-table.ts';
import type { AmrValue, Evidence, FactorKind } from '../../factors/types.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.ts';

configurePropertySeed();

// ---------------------------------------------------------------------------
// Fixtures: factors as the engine describes them, and proofs of them.

const TOTP: FactorFacts = { id: 'totp', kinds: ['have'], phishingResistant: false, recoveryOnly: false };
const BACKUP: FactorFacts = { id: 'backup-codes', kinds: ['have'], phishingResistant: false, recoveryOnly: true };
/** A security key (WebAuthn as a second factor): phishing-resistant. */
const KEY: FactorFacts = { id: 'security-key', kinds: ['have'], phishingResistant: true, recoveryOnly: false };
/** The factors Twofold registers today. */
const REGISTERED = [TOTP, BACKUP];

const PWD = PASSWORD_EVIDENCE(100);
const proof = (facts: FactorFacts, amr: AmrValue[], at = 200, credentialId = `${facts.id}-1`): Evidence => ({
  factor: facts.id,
  credentialId,
  kinds: facts.kinds,
  amr,
  phishingResistant: facts.phishingResistant,
  at,
});
const TOTP_PROOF = proof(TOTP, ['otp']);
const BACKUP_PROOF = proof(BACKUP, ['otp'], 210);
const KEY_PROOF = proof(KEY, ['hwk', 'pop']);

const A1 = TWOFOLD_ACR[1];
const A2 = TWOFOLD_ACR[2];
const A3 = TWOFOLD_ACR[3];
const REFEDS_SFA = 'https://refeds.org/profile/sfa';
const REFEDS_MFA = 'https://refeds.org/profile/mfa';
const PAPE_MFA = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
const PAPE_PR = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant';
const UNKNOWN = 'urn:example:acr:gold';

interface Case {
  mfa?: MfaMode;
  enrolled?: FactorFacts[];
  available?: FactorFacts[];
  evidence?: Evidence[];
  acrValues?: string[];
  /** The claims parameter's essential id_token acr values. */
  essentialAcr?: string[];
  /** The claims parameter's essential userinfo acr values. */
  userinfoAcr?: string[];
}

function input(c: Case): PolicyInput {
  return {
    mfa: c.mfa ?? 'optional',
    enrolled: c.enrolled ?? [],
    available: c.available ?? REGISTERED,
    request: {
      acrValues: c.acrValues ?? [],
      ...(c.essentialAcr || c.userinfoAcr ? { essentialAcr: [c.essentialAcr, c.userinfoAcr].filter((v) => v !== undefined) } : {}),
    },
    evidence: c.evidence ?? [PWD],
  };
}

const run = (c: Case) => decide(input(c));

const satisfied = (level: Level, acr: string | undefined, amr: string[]) => ({
  type: 'satisfied',
  level,
  acr,
  amr: expect.arrayContaining(amr) as unknown as string[],
});

// ---------------------------------------------------------------------------

describe('decide(): the MFA mode × enrolled factors × evidence', () => {
  // [name, case, expected]
  const rows: Array<[string, Case, Record<string, unknown>]> = [
    // off: a second factor only when an app asks.
    ['off, nothing enrolled, password', { mfa: 'off' }, { type: 'satisfied', level: 1, acr: A1, amr: ['pwd'] }],
    ['off, TOTP enrolled, password', { mfa: 'off', enrolled: [TOTP] }, { type: 'satisfied', level: 1, acr: A1, amr: ['pwd'] }],
    ['off, TOTP enrolled, password + TOTP', { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF] }, { type: 'satisfied', level: 2, acr: A2 }],
    // optional: accounts that enrolled a second factor use it.
    ['optional, nothing enrolled, password', { mfa: 'optional' }, { type: 'satisfied', level: 1, acr: A1, amr: ['pwd'] }],
    ['optional, TOTP enrolled, password', { mfa: 'optional', enrolled: [TOTP] }, { type: 'step_up', level: 1, target: 2, factors: ['totp'] }],
    [
      'optional, TOTP + backup codes, password',
      { mfa: 'optional', enrolled: [TOTP, BACKUP] },
      { type: 'step_up', level: 1, target: 2, factors: ['totp', 'backup-codes'] },
    ],
    ['optional, TOTP enrolled, password + TOTP', { mfa: 'optional', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF] }, { type: 'satisfied', level: 2, acr: A2 }],
    [
      'optional, TOTP + backup codes, password + backup code',
      { mfa: 'optional', enrolled: [TOTP, BACKUP], evidence: [PWD, BACKUP_PROOF] },
      { type: 'satisfied', level: 2, acr: A2 },
    ],
    // Backup codes alone are recovery, not a second factor the account chose.
    ['optional, only backup codes, password', { mfa: 'optional', enrolled: [BACKUP] }, { type: 'satisfied', level: 1, acr: A1 }],
    // Two proofs of one kind are one factor: level 1, and no enrolled factor adds another kind.
    [
      'optional, TOTP + backup codes, TOTP + backup code (same kind)',
      { mfa: 'optional', enrolled: [TOTP, BACKUP], evidence: [TOTP_PROOF, BACKUP_PROOF] },
      { type: 'unmet', level: 1, target: 2 },
    ],
    // required: everyone, enrolling at sign-in if need be.
    ['required, nothing enrolled, password', { mfa: 'required' }, { type: 'enroll', level: 1, target: 2, factors: ['totp'], optional: false }],
    ['required, TOTP enrolled, password', { mfa: 'required', enrolled: [TOTP] }, { type: 'step_up', level: 1, target: 2, factors: ['totp'] }],
    ['required, TOTP enrolled, password + TOTP', { mfa: 'required', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF] }, { type: 'satisfied', level: 2, acr: A2 }],
    // Backup codes alone are never a second factor: the account proves one (who the user is), then enrols a real one.
    [
      'required, only backup codes, password: prove a code first, then enrol',
      { mfa: 'required', enrolled: [BACKUP] },
      { type: 'step_up', level: 1, target: 2, factors: ['backup-codes'], enrollAfter: true },
    ],
    [
      'required, only backup codes, password + backup code: must enrol (the code adds no level)',
      { mfa: 'required', enrolled: [BACKUP], evidence: [PWD, BACKUP_PROOF] },
      { type: 'enroll', level: 1, target: 2, factors: ['totp'], optional: false },
    ],
    [
      'required, only backup codes, nothing enrollable: unmet',
      { mfa: 'required', enrolled: [BACKUP], available: [BACKUP], evidence: [PWD, BACKUP_PROOF] },
      { type: 'unmet', level: 1, target: 2 },
    ],
    [
      'off, only backup codes, acr_values level 2, no code proved: level 1, no enrolment on the password alone',
      { mfa: 'off', enrolled: [BACKUP], acrValues: [REFEDS_MFA] },
      { type: 'satisfied', level: 1, acr: A1 },
    ],
    [
      'off, only backup codes, password + backup code, acr_values level 2: the code is not level 2, enrolment offered',
      { mfa: 'off', enrolled: [BACKUP], evidence: [PWD, BACKUP_PROOF], acrValues: [REFEDS_MFA] },
      { type: 'enroll', level: 1, target: 2, optional: true },
    ],
    ['required, nothing enrolled, nothing enrollable', { mfa: 'required', available: [BACKUP] }, { type: 'unmet', level: 1, target: 2 }],
    [
      'required, TOTP + backup codes, TOTP + backup code (same kind)',
      { mfa: 'required', enrolled: [TOTP, BACKUP], evidence: [TOTP_PROOF, BACKUP_PROOF] },
      { type: 'unmet', level: 1, target: 2 },
    ],
  ];

  test.each(rows)('%s', (_name, c, expected) => {
    const decision = run(c);
    expect(decision).toMatchObject(expected);
    if (decision.type === 'satisfied') expect(decision.amr).toEqual(amrOf(c.evidence ?? [PWD]));
  });

  test('the rule names why', () => {
    expect(run({ mfa: 'required', enrolled: [TOTP] }).rule).toBe('global: MFA required');
    expect(run({ mfa: 'optional', enrolled: [TOTP] }).rule).toBe('global: MFA for accounts that enrolled a second factor');
    expect(run({ mfa: 'off', enrolled: [TOTP] }).rule).toBe('one factor is enough');
  });

  test('satisfied with two kinds: amr lists the methods and mfa', () => {
    expect(run({ mfa: 'optional', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF] })).toMatchObject({
      type: 'satisfied',
      level: 2,
      acr: A2,
      amr: ['pwd', 'otp', 'mfa'],
      rule: 'global: MFA for accounts that enrolled a second factor',
      evidence: [PWD, TOTP_PROOF],
    });
  });
});

describe('decide(): voluntary acr_values', () => {
  const rows: Array<[string, Case, Record<string, unknown>]> = [
    [
      'reachable by enrolling: an optional enrolment',
      { mfa: 'off', acrValues: [REFEDS_MFA] },
      { type: 'enroll', level: 1, target: 2, factors: ['totp'], optional: true },
    ],
    [
      'reachable with an enrolled factor: step-up',
      { mfa: 'off', enrolled: [TOTP], acrValues: [PAPE_MFA] },
      { type: 'step_up', level: 1, target: 2, factors: ['totp'] },
    ],
    [
      'met: the requested value comes back',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], acrValues: [REFEDS_MFA] },
      satisfied(2, REFEDS_MFA, ['pwd', 'otp', 'mfa']),
    ],
    [
      'met by level 3 evidence',
      { mfa: 'off', enrolled: [KEY], evidence: [PWD, KEY_PROOF], acrValues: [PAPE_PR] },
      satisfied(3, PAPE_PR, ['pwd', 'hwk', 'mfa']),
    ],
    [
      'level 3 reachable with an enrolled security key',
      { mfa: 'off', enrolled: [TOTP, KEY], acrValues: [A3] },
      { type: 'step_up', level: 1, target: 3, factors: ['security-key'] },
    ],
    [
      'level 3 asked, TOTP only: best achievable is 2',
      { mfa: 'off', enrolled: [TOTP], acrValues: [A3] },
      { type: 'step_up', level: 1, target: 2, factors: ['totp'] },
    ],
    // Truthful: level 2 reached, the level 3 value asked for is not claimed.
    [
      'level 3 asked, level 2 reached: acr says level 2',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], acrValues: [A3] },
      satisfied(2, A2, ['mfa']),
    ],
    [
      'level 3 asked, PAPE PR: level 2 URN, never the PR value',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], acrValues: [PAPE_PR] },
      satisfied(2, A2, ['mfa']),
    ],
    ['level 2 asked, nothing enrolled or enrollable: level 1 with a level 1 acr', { mfa: 'off', available: [], acrValues: [A2] }, satisfied(1, A1, ['pwd'])],
    [
      'level 3 asked, nothing enrolled, TOTP enrollable: enrol to the best (2), optionally',
      { mfa: 'off', acrValues: [A3] },
      { type: 'enroll', target: 2, factors: ['totp'], optional: true },
    ],
    [
      'level 3 asked, security key enrollable: enrol it, optionally',
      { mfa: 'off', available: [TOTP, BACKUP, KEY], acrValues: [A3] },
      { type: 'enroll', target: 3, factors: ['security-key'], optional: true },
    ],
    ['unknown values are ignored', { mfa: 'off', acrValues: [UNKNOWN] }, satisfied(1, A1, ['pwd'])],
    ['the first known value is the preference', { mfa: 'off', enrolled: [TOTP], acrValues: [UNKNOWN, A1, A2] }, satisfied(1, A1, ['pwd'])],
    ['a lower request never lowers the policy (required)', { mfa: 'required', enrolled: [TOTP], acrValues: [REFEDS_SFA] }, { type: 'step_up', target: 2 }],
    ['a lower request never lowers the policy (optional + enrolled)', { mfa: 'optional', enrolled: [TOTP], acrValues: [A1] }, { type: 'step_up', target: 2 }],
    [
      'asked level 1, reached level 2: the requested value, which level 2 meets',
      { mfa: 'required', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], acrValues: [A1] },
      satisfied(2, A1, ['mfa']),
    ],
  ];

  test.each(rows)('%s', (_name, c, expected) => {
    expect(run(c)).toMatchObject(expected);
  });

  test('the rule says when the best achievable level was given instead', () => {
    expect(run({ mfa: 'off', enrolled: [TOTP], acrValues: [A3] }).rule).toBe('request: acr_values asked level 3; level 2 is the best this account can reach');
    expect(run({ mfa: 'off', enrolled: [TOTP], acrValues: [A2] }).rule).toBe('request: acr_values (level 2)');
  });
});

describe('decide(): essential acr', () => {
  const rows: Array<[string, Case, Record<string, unknown>]> = [
    ['met: the essential value comes back', { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [A2] }, satisfied(2, A2, ['mfa'])],
    [
      'met: the first of several values that is met',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [A3, REFEDS_MFA, PAPE_MFA] },
      satisfied(2, REFEDS_MFA, ['mfa']),
    ],
    [
      'reachable with an enrolled factor: step-up',
      { mfa: 'off', enrolled: [TOTP], essentialAcr: [REFEDS_MFA] },
      { type: 'step_up', level: 1, target: 2, factors: ['totp'] },
    ],
    [
      'reachable by enrolling: enrolment may not be skipped',
      { mfa: 'off', essentialAcr: [REFEDS_MFA] },
      { type: 'enroll', level: 1, target: 2, factors: ['totp'], optional: false },
    ],
    [
      'level 3, enrollable security key: mandatory enrolment',
      { mfa: 'off', available: [TOTP, BACKUP, KEY], essentialAcr: [A3] },
      { type: 'enroll', target: 3, factors: ['security-key'], optional: false },
    ],
    ['unmet: level 3 with TOTP only', { mfa: 'off', enrolled: [TOTP], essentialAcr: [A3] }, { type: 'unmet', level: 1, target: 3 }],
    [
      'unmet: level 3 with TOTP proved',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [PAPE_PR] },
      { type: 'unmet', level: 2, target: 3 },
    ],
    ['unmet: level 2 with nothing enrolled or enrollable', { mfa: 'off', available: [], essentialAcr: [A2] }, { type: 'unmet', level: 1, target: 2 }],
    [
      'unknown value: unmet',
      { mfa: 'off', essentialAcr: [UNKNOWN] },
      { type: 'unmet', level: 1, target: 3, rule: 'essential acr: none of the requested values is known' },
    ],
    [
      'unknown value: unmet even with every factor proved',
      { mfa: 'off', enrolled: [TOTP, KEY], evidence: [PWD, TOTP_PROOF, KEY_PROOF], essentialAcr: [UNKNOWN] },
      { type: 'unmet', level: 3 },
    ],
    [
      'unknown values next to a known one are ignored',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [UNKNOWN, A2] },
      satisfied(2, A2, ['mfa']),
    ],
    [
      'essential wins over acr_values',
      { mfa: 'off', enrolled: [TOTP, KEY], evidence: [PWD, TOTP_PROOF], acrValues: [A3], essentialAcr: [A2] },
      satisfied(2, A2, ['mfa']),
    ],
    ['an essential level below the policy does not lower it', { mfa: 'required', enrolled: [TOTP], essentialAcr: [A1] }, { type: 'step_up', target: 2 }],
    ['an essential level 1 is met by a password', { mfa: 'off', essentialAcr: [REFEDS_SFA] }, satisfied(1, REFEDS_SFA, ['pwd'])],
  ];

  test.each(rows)('%s', (_name, c, expected) => {
    expect(run(c)).toMatchObject(expected);
  });

  // Issue 13, finding 5: an essential acr in userinfo was ignored when the ID token asked one too.
  test.each<[string, Case, object]>([
    [
      'userinfo stricter than the ID token: the higher level is required',
      { mfa: 'off', enrolled: [TOTP], essentialAcr: [A1], userinfoAcr: [A2] },
      { type: 'step_up', target: 2 },
    ],
    [
      'ID token stricter than userinfo: the higher level is required',
      { mfa: 'off', enrolled: [TOTP], essentialAcr: [A2], userinfoAcr: [A1] },
      { type: 'step_up', target: 2 },
    ],
    ['userinfo alone is honoured', { mfa: 'off', enrolled: [TOTP], userinfoAcr: [REFEDS_MFA] }, { type: 'step_up', target: 2 }],
    [
      'both met: the ID token gets the value it asked for',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [A1], userinfoAcr: [A2] },
      satisfied(2, A1, ['mfa']),
    ],
    [
      'an unknown userinfo request cannot be met, whatever the ID token asks',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [A2], userinfoAcr: [UNKNOWN] },
      { type: 'unmet', rule: 'essential acr: none of the requested values is known' },
    ],
    [
      'level 3 in userinfo with TOTP only: unmet',
      { mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], essentialAcr: [A2], userinfoAcr: [A3] },
      { type: 'unmet', target: 3 },
    ],
  ])('essential acr in id_token and userinfo: %s', (_name, c, expected) => {
    expect(run(c)).toMatchObject(expected);
  });

  test('an essential request with an empty list of values can never be met (the edge refuses it; anything past it fails closed)', () => {
    const d = decide({ ...input({ mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF] }), request: { acrValues: [], essentialAcr: [[]] } });
    expect(d).toMatchObject({ type: 'unmet' });
  });

  test('the rule names the essential request', () => {
    expect(run({ mfa: 'off', enrolled: [TOTP], essentialAcr: [A2] }).rule).toBe('request: essential acr (level 2)');
    expect(run({ mfa: 'off', enrolled: [TOTP], essentialAcr: [A3] }).rule).toMatch(
      /^request: essential acr \(level 3\); no factor this account has or may enrol reaches it$/,
    );
  });
});

describe('decide(): enrolment', () => {
  test('required without a factor: enrol, not optional, only factors that are not recovery-only', () => {
    const d = run({ mfa: 'required', available: [TOTP, BACKUP, KEY] });
    expect(d).toMatchObject({ type: 'enroll', target: 2, optional: false });
    expect((d as { factors: string[] }).factors.sort()).toEqual(['security-key', 'totp']);
  });

  test('only a voluntary request wants it: enrolment is optional', () => {
    for (const mfa of ['off', 'optional'] as const) {
      expect(run({ mfa, acrValues: [PAPE_MFA] })).toMatchObject({ type: 'enroll', optional: true });
    }
  });

  test('backup codes are never offered as the factor to enrol at sign-in', () => {
    expect(run({ mfa: 'required', available: [BACKUP] })).toMatchObject({ type: 'unmet' });
  });

  test('an account with a factor never gets enroll, whatever is asked', () => {
    const requests: Array<Pick<Case, 'acrValues' | 'essentialAcr'>> = [
      {},
      { acrValues: [A2] },
      { acrValues: [A3] },
      { essentialAcr: [A2] },
      { essentialAcr: [A3] },
      { essentialAcr: [UNKNOWN] },
    ];
    for (const mfa of ['off', 'optional', 'required'] as const) {
      for (const enrolled of [[TOTP], [TOTP, BACKUP], [KEY]]) {
        for (const evidence of [[PWD], [PWD, TOTP_PROOF]]) {
          for (const request of requests) {
            const d = run({ mfa, enrolled, evidence, available: [TOTP, BACKUP, KEY], ...request });
            expect({ mfa, enrolled: enrolled.map((f) => f.id), request, type: d.type }).not.toEqual(expect.objectContaining({ type: 'enroll' }));
          }
        }
      }
    }
  });
});

describe('decide(): optional steps, skipped, and single sign-on', () => {
  const GRACE = { name: 'staff', level: 2 as const, enrollmentDeadline: 10_000 };
  const at = (c: Case, extra: Partial<PolicyInput>) => decide({ ...input(c), now: 1_000, ...extra });

  test('a voluntary step-up with a factor the account has may be skipped; one the documents demand may not', () => {
    expect(run({ mfa: 'off', enrolled: [TOTP], acrValues: [PAPE_MFA] })).toMatchObject({ type: 'step_up', optional: true, target: 2 });
    expect(run({ mfa: 'optional', enrolled: [TOTP], acrValues: [PAPE_MFA] })).toMatchObject({ type: 'step_up', optional: false });
    expect(run({ mfa: 'off', enrolled: [TOTP], essentialAcr: [PAPE_MFA] })).toMatchObject({ type: 'step_up', optional: false });
  });

  test('skipped: an optional step answers with the level reached, truthfully; a required one is not skipped', () => {
    expect(at({ mfa: 'off', enrolled: [TOTP], acrValues: [PAPE_MFA] }, { skipped: true })).toMatchObject(satisfied(1, A1, ['pwd']));
    expect(at({ mfa: 'optional', acrValues: [REFEDS_MFA] }, { skipped: true })).toMatchObject({
      ...satisfied(1, A1, ['pwd']),
      rule: expect.stringContaining('skipped'),
    });
    expect(at({ mfa: 'required' }, { skipped: true })).toMatchObject({ type: 'enroll', optional: false });
    expect(at({ mfa: 'off', essentialAcr: [PAPE_MFA] }, { skipped: true })).toMatchObject({ type: 'enroll', optional: false });
  });

  test('single sign-on: the request’s acr_values open the step; a group’s reminder waits for a sign-in', () => {
    expect(at({ acrValues: [REFEDS_MFA] }, { at: 'session' })).toMatchObject({ type: 'enroll', optional: true });
    expect(at({ mfa: 'off', enrolled: [TOTP], acrValues: [REFEDS_MFA] }, { at: 'session' })).toMatchObject({ type: 'step_up', optional: true });
    expect(at({}, { at: 'sign-in', groups: [GRACE] })).toMatchObject({ type: 'enroll', optional: true, reminder: { deadline: 10_000 } });
    expect(at({}, { at: 'session', groups: [GRACE] })).toMatchObject(satisfied(1, A1, ['pwd']));
    // Both: the request asks, so the step is shown.
    expect(at({ acrValues: [REFEDS_MFA] }, { at: 'session', groups: [GRACE] })).toMatchObject({ type: 'enroll', optional: true });
  });
});

describe('levelOf', () => {
  const rows: Array<[string, Level, Evidence[]]> = [
    ['nothing', 0, []],
    ['a password', 1, [PWD]],
    ['a TOTP code alone', 1, [TOTP_PROOF]],
    ['password + TOTP', 2, [PWD, TOTP_PROOF]],
    ['password + backup code', 2, [PWD, BACKUP_PROOF]],
    ['TOTP + backup code (same kind)', 1, [TOTP_PROOF, BACKUP_PROOF]],
    ['two TOTP credentials (same kind)', 1, [TOTP_PROOF, proof(TOTP, ['otp'], 300, 'totp-2')]],
    ['a security key alone (phishing-resistant, one kind)', 1, [KEY_PROOF]],
    ['password + security key', 3, [PWD, KEY_PROOF]],
    ['password + TOTP + security key', 3, [PWD, TOTP_PROOF, KEY_PROOF]],
    [
      'a passkey with user verification (have + know, phishing-resistant)',
      3,
      [{ factor: 'passkey', kinds: ['have', 'know'], amr: ['hwk', 'user'], phishingResistant: true, at: 1 }],
    ],
    ['password + a face (know + are)', 2, [PWD, { factor: 'face', kinds: ['are'], amr: ['face'], phishingResistant: false, at: 1 }]],
  ];
  test.each(rows)('%s → level %d', (_name, level, evidence) => {
    expect(levelOf(evidence)).toBe(level);
  });
});

describe('amrOf', () => {
  test('lists the RFC 8176 values of the proofs, once each', () => {
    expect(amrOf([])).toEqual([]);
    expect(amrOf([PWD])).toEqual(['pwd']);
    expect(amrOf([TOTP_PROOF, BACKUP_PROOF])).toEqual(['otp']);
  });
  test('adds mfa only when the proofs span two kinds', () => {
    expect(amrOf([PWD, TOTP_PROOF])).toEqual(['pwd', 'otp', 'mfa']);
    expect(amrOf([PWD, KEY_PROOF])).toEqual(['pwd', 'hwk', 'pop', 'mfa']);
    expect(amrOf([TOTP_PROOF, BACKUP_PROOF])).not.toContain('mfa');
    expect(amrOf([KEY_PROOF])).not.toContain('mfa');
    expect(amrOf([PWD, PASSWORD_EVIDENCE(300)])).toEqual(['pwd']);
  });
});

describe('mergeEvidence', () => {
  test('a newer proof of the same credential replaces the older one', () => {
    const again = { ...TOTP_PROOF, at: 500 };
    expect(mergeEvidence([PWD, TOTP_PROOF], [again])).toEqual([PWD, again]);
    const password = PASSWORD_EVIDENCE(400);
    expect(mergeEvidence([PWD, TOTP_PROOF], [password])).toEqual([TOTP_PROOF, password]);
  });
  test('proofs of other factors or credentials are kept, oldest first', () => {
    const second = proof(TOTP, ['otp'], 150, 'totp-2');
    expect(mergeEvidence([PWD, TOTP_PROOF], [second, BACKUP_PROOF])).toEqual([PWD, second, TOTP_PROOF, BACKUP_PROOF]);
  });
  test('merging nothing changes nothing, and the inputs are not modified', () => {
    const previous = [TOTP_PROOF, PWD];
    expect(mergeEvidence(previous, [])).toEqual([PWD, TOTP_PROOF]);
    expect(previous).toEqual([TOTP_PROOF, PWD]);
    expect(mergeEvidence([], [])).toEqual([]);
  });
  test('step-up keeps the level: password + TOTP from the session and a new TOTP', () => {
    const merged = mergeEvidence([PWD, TOTP_PROOF], [{ ...TOTP_PROOF, at: 900 }]);
    expect(levelOf(merged)).toBe(2);
    expect(amrOf(merged)).toEqual(['pwd', 'otp', 'mfa']);
  });
});

describe('AcrTable', () => {
  const table = new AcrTable();

  test('the default table maps Twofold URNs and the widely used values', () => {
    expect(table.levelOf(A1)).toBe(1);
    expect(table.levelOf(A2)).toBe(2);
    expect(table.levelOf(A3)).toBe(3);
    expect(table.levelOf(REFEDS_SFA)).toBe(1);
    expect(table.levelOf(REFEDS_MFA)).toBe(2);
    expect(table.levelOf(PAPE_MFA)).toBe(2);
    expect(table.levelOf(PAPE_PR)).toBe(3);
    expect(table.values()).toEqual(Object.keys(DEFAULT_ACR_TABLE));
  });

  test('unknown values, including inherited property names, have no level', () => {
    for (const v of [UNKNOWN, '', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) expect(table.levelOf(v)).toBeUndefined();
  });

  test('acrFor returns the first requested value met, else the Twofold URN for the level', () => {
    expect(table.acrFor(0, [A1])).toBeUndefined();
    expect(table.acrFor(1, [])).toBe(A1);
    expect(table.acrFor(2, [])).toBe(A2);
    expect(table.acrFor(3, [])).toBe(A3);
    expect(table.acrFor(2, [REFEDS_MFA])).toBe(REFEDS_MFA);
    expect(table.acrFor(3, [REFEDS_MFA])).toBe(REFEDS_MFA);
    expect(table.acrFor(1, [REFEDS_MFA])).toBe(A1);
    expect(table.acrFor(2, [A3, PAPE_MFA, REFEDS_MFA])).toBe(PAPE_MFA);
    expect(table.acrFor(2, [UNKNOWN])).toBe(A2);
    expect(table.acrFor(2, [UNKNOWN, REFEDS_SFA])).toBe(REFEDS_SFA);
  });

  test('a configured table: its own values, and the URNs as the fallback', () => {
    const custom = new AcrTable({ gold: 3, silver: 2 });
    expect(custom.levelOf('gold')).toBe(3);
    expect(custom.levelOf(A2)).toBeUndefined();
    expect(custom.acrFor(3, ['gold'])).toBe('gold');
    expect(custom.acrFor(2, ['gold'])).toBe(A2);
    expect(custom.acrFor(2, ['gold', 'silver'])).toBe('silver');
    expect(decide({ ...input({ mfa: 'off', enrolled: [TOTP], evidence: [PWD, TOTP_PROOF], acrValues: ['silver'] }), acrTable: custom })).toMatchObject({
      type: 'satisfied',
      acr: 'silver',
    });
    expect(decide({ ...input({ mfa: 'off', essentialAcr: [REFEDS_MFA] }), acrTable: custom })).toMatchObject({ type: 'unmet' });
  });
});

describe('ACR_VALUES: the configured table', () => {
  const env = { SECRET_KEY: 'a'.repeat(64), DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-acr-')) };
  const table = (value?: string) => loadConfig({ ...env, ...(value === undefined ? {} : { ACR_VALUES: value }) }).ACR_VALUES;
  const refused = (value: string) => {
    try {
      table(value);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`accepted ${value}`);
  };

  test('unset: the default table, unchanged', () => {
    expect(table()).toEqual(DEFAULT_ACR_TABLE);
  });

  test("a JSON object replaces the defaults; Twofold's own URNs are always there", () => {
    expect(table('{"urn:example:gold":3,"https://refeds.org/profile/mfa":2}')).toEqual({ [A1]: 1, [A2]: 2, [A3]: 3, 'urn:example:gold': 3, [REFEDS_MFA]: 2 });
  });

  test('a file, JSON or YAML', () => {
    const file = path.join(env.DATA_DIR, 'acr.yaml');
    fs.writeFileSync(file, 'urn:example:silver: 2\n"urn:twofold:acr:3": 3\n');
    expect(table(file)).toEqual({ [A1]: 1, [A2]: 2, [A3]: 3, 'urn:example:silver': 2 });
  });

  test.each([
    ['{"urn:example:gold":4}', 'ACR_VALUES'],
    ['{"urn:example:gold":4}', 'the level must be 1, 2 or 3'],
    ['{"urn:example:gold":"2"}', 'the level must be 1, 2 or 3'],
    ['{"two words":2}', 'no spaces'],
    ['{"urn:twofold:acr:2":3}', "urn:twofold:acr:2: Twofold's own value always means level 2"],
    ['{not json', 'a JSON object of acr value to level'],
    ['/nonexistent/acr.yaml', 'cannot read /nonexistent/acr.yaml'],
  ])('%s is refused: %s', (value, message) => {
    expect(refused(value)).toContain(message);
  });
});

// ---------------------------------------------------------------------------
// Properties. Factor facts are as real factors declare them (a
// phishing-resistant factor is something you have); the evidence always holds
// the first factor (the password), as it does in every sign-in.

const PASSKEY: FactorFacts = { id: 'passkey', kinds: ['have', 'know'], phishingResistant: true, recoveryOnly: false };
const FACE: FactorFacts = { id: 'face', kinds: ['are'], phishingResistant: false, recoveryOnly: false };
const POOL: FactorFacts[] = [TOTP, BACKUP, KEY, PASSKEY, FACE];
const KNOWN_ACR = Object.keys(DEFAULT_ACR_TABLE);
const acrTable = new AcrTable();
const MODES: MfaMode[] = ['off', 'optional', 'required'];

const facts = fc.subarray(POOL);
const proofOf = (f: FactorFacts, at: number, n: number): Evidence => ({
  factor: f.id,
  credentialId: `${f.id}-${n}`,
  kinds: f.kinds,
  amr: ['otp'],
  phishingResistant: f.phishingResistant,
  at,
});
const extraProofs = fc
  .array(fc.tuple(fc.constantFrom(...POOL), fc.integer({ min: 101, max: 10_000 }), fc.integer({ min: 1, max: 3 })), { maxLength: 4 })
  .map((ps) => ps.map(([f, at, n]) => proofOf(f, at, n)));
const acrValue = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KNOWN_ACR) }, { weight: 1, arbitrary: fc.constant(UNKNOWN) });

const policyInput = fc
  .record({
    mfa: fc.constantFrom(...MODES),
    available: facts,
    extraEnrolled: facts,
    extra: extraProofs,
    acrValues: fc.array(acrValue, { maxLength: 3 }),
    // One request (id_token) or two (id_token and userinfo).
    essentialAcr: fc.option(fc.array(fc.array(fc.constantFrom(...KNOWN_ACR), { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 2 }), {
      nil: undefined,
    }),
  })
  .map(({ mfa, available, extraEnrolled, extra, acrValues, essentialAcr }): PolicyInput => ({
    mfa,
    available,
    // Enrolled factors are registered ones.
    enrolled: extraEnrolled.filter((f) => available.includes(f)),
    request: { acrValues, ...(essentialAcr ? { essentialAcr } : {}) },
    evidence: [PWD, ...extra],
    acrTable,
  }));

const targetOf = (d: Decision): Level | undefined => (d.type === 'satisfied' ? undefined : d.target);

/**
 * Let through now: satisfied, or a step the user may skip (the order of test/unit/policy-sources.test.ts).
 * Two such decisions are not ordered: for a mere wish (voluntary acr_values), an account holding only backup codes
 * is offered enrolment once it has proved one and simply let through before, and neither is enforced.
 */
const admitted = (d: Decision): boolean => d.type === 'satisfied' || ((d.type === 'enroll' || d.type === 'step_up') && d.optional);

/** `tighter` never lets through what `looser` did not, and never asks less. */
function expectNoLooser(looser: Decision, tighter: Decision): void {
  if (admitted(looser)) return;
  expect(admitted(tighter)).toBe(false);
  expect(targetOf(tighter)!).toBeGreaterThanOrEqual(targetOf(looser)!);
}

function policyMinimum(i: PolicyInput): Level {
  if (i.mfa === 'required') return 2;
  if (i.mfa === 'optional' && i.enrolled.some((f) => !f.recoveryOnly)) return 2;
  return 1;
}

const kindsArb = fc.subarray<FactorKind>(['know', 'have', 'are'], { minLength: 1 });
const anyEvidence = fc.array(
  fc.record({
    factor: fc.constantFrom('password', 'totp', 'key', 'face'),
    kinds: kindsArb,
    amr: fc.subarray<AmrValue>(['pwd', 'otp', 'hwk', 'face'], { minLength: 1 }),
    phishingResistant: fc.boolean(),
    at: fc.nat(),
  }),
  { maxLength: 5 },
);

describe('properties', () => {
  test('adding evidence never lowers levelOf', () => {
    fc.assert(
      fc.property(anyEvidence, anyEvidence, (a, b) => {
        expect(levelOf([...a, ...b])).toBeGreaterThanOrEqual(levelOf(a));
        expect(levelOf([...a, ...b])).toBeGreaterThanOrEqual(levelOf(b));
      }),
    );
  });

  test('amrOf has every proof’s values, and mfa exactly when two kinds were proved', () => {
    fc.assert(
      fc.property(anyEvidence, (evidence) => {
        const amr = amrOf(evidence);
        for (const e of evidence) for (const v of e.amr) expect(amr).toContain(v);
        expect(amr.includes('mfa')).toBe(new Set(evidence.flatMap((e) => e.kinds)).size >= 2 || evidence.some((e) => e.amr.includes('mfa')));
        expect(new Set(amr).size).toBe(amr.length);
      }),
    );
  });

  test('merging evidence never lowers the level', () => {
    fc.assert(
      fc.property(extraProofs, extraProofs, (a, b) => {
        const previous = [PWD, ...a];
        expect(levelOf(mergeEvidence(previous, b))).toBeGreaterThanOrEqual(levelOf(previous));
      }),
    );
  });

  test('tightening the MFA mode (off → optional → required) never satisfies more nor lowers the target', () => {
    fc.assert(
      fc.property(policyInput, (i) => {
        const [off, optional, required] = MODES.map((mfa) => decide({ ...i, mfa }));
        expectNoLooser(off!, optional!);
        expectNoLooser(optional!, required!);
        expectNoLooser(off!, required!);
      }),
      { numRuns: 500 },
    );
  });

  test('adding an essential acr of a higher level never satisfies more nor lowers the target', () => {
    fc.assert(
      fc.property(policyInput, fc.constantFrom(...KNOWN_ACR), (i, essential) => {
        const voluntary = i.request.acrValues.map((v) => acrTable.levelOf(v) ?? 0);
        fc.pre(acrTable.levelOf(essential)! >= Math.max(0, ...voluntary));
        const looser = decide({ ...i, request: { acrValues: i.request.acrValues } });
        const tighter = decide({ ...i, request: { acrValues: i.request.acrValues, essentialAcr: [[essential]] } });
        expectNoLooser(looser, tighter);
      }),
      { numRuns: 500 },
    );
  });

  test('removing evidence (other than the first factor) never satisfies more nor lowers the target', () => {
    fc.assert(
      fc.property(policyInput, fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), (i, keep) => {
        const fewer = [PWD, ...i.evidence.slice(1).filter((_, n) => keep[n])];
        expectNoLooser(decide(i), decide({ ...i, evidence: fewer }));
      }),
      { numRuns: 500 },
    );
  });

  test('all tightenings at once', () => {
    fc.assert(
      fc.property(policyInput, fc.constantFrom(...MODES), fc.integer({ min: 0, max: 5 }), (i, stricter, drop) => {
        const mfa = MODES[Math.max(MODES.indexOf(i.mfa), MODES.indexOf(stricter))]!;
        const tighter = decide({ ...i, mfa, evidence: i.evidence.slice(0, Math.max(1, i.evidence.length - drop)) });
        expectNoLooser(decide(i), tighter);
      }),
      { numRuns: 500 },
    );
  });

  test('request parameters never lower the policy minimum, and a satisfied decision is truthful', () => {
    fc.assert(
      fc.property(policyInput, (i) => {
        const d = decide(i);
        if (d.type !== 'satisfied') {
          expect(d.target).toBeGreaterThan(d.level);
          return;
        }
        // What counts is some of what was proved (backup codes without a factor they back up do not), and says so.
        for (const e of d.evidence) expect(i.evidence).toContain(e);
        expect(d.level).toBe(levelOf(d.evidence));
        expect(d.level).toBeGreaterThanOrEqual(policyMinimum(i));
        expect(d.amr).toEqual(amrOf(d.evidence));
        const known = [...i.available, ...i.enrolled];
        if (known.includes(BACKUP) && !i.enrolled.some((f) => !f.recoveryOnly)) expect(d.evidence.some((e) => e.factor === BACKUP.id)).toBe(false);
        // The acr issued is one the evidence meets.
        expect(acrTable.levelOf(d.acr!)!).toBeLessThanOrEqual(d.level);
        // An essential acr that is satisfied was met.
        // Every essential request (id_token and userinfo alike) is met.
        if (i.request.essentialAcr) {
          expect(i.request.essentialAcr.flat()).toContain(d.acr);
          for (const values of i.request.essentialAcr) expect(d.level).toBeGreaterThanOrEqual(Math.min(...values.map((v) => acrTable.levelOf(v)!)));
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('an account with a second factor is never sent to enrol; offered factors reach the target', () => {
    fc.assert(
      fc.property(policyInput, (i) => {
        const d = decide(i);
        if (d.type === 'enroll') {
          expect(i.enrolled.filter((f) => !f.recoveryOnly)).toEqual([]);
          expect(d.factors.length).toBeGreaterThan(0);
          for (const id of d.factors) {
            const f = i.available.find((a) => a.id === id)!;
            expect(f.recoveryOnly).toBe(false);
            expect(levelOf([...i.evidence, proofOf(f, 1, 9)])).toBeGreaterThanOrEqual(d.target);
          }
        }
        if (d.type === 'step_up' && d.enrollAfter) {
          // Only backup codes: one proves who the user is before a real factor is enrolled.
          expect(i.enrolled.filter((f) => !f.recoveryOnly)).toEqual([]);
          for (const id of d.factors) expect(i.enrolled.find((e) => e.id === id)?.recoveryOnly).toBe(true);
        } else if (d.type === 'step_up') {
          expect(d.factors.length).toBeGreaterThan(0);
          for (const id of d.factors) {
            const f = i.enrolled.find((e) => e.id === id)!;
            expect(f).toBeDefined();
            expect(levelOf([...i.evidence, proofOf(f, 1, 9)])).toBeGreaterThanOrEqual(d.target);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('essential acr with only unknown values is always unmet', () => {
    fc.assert(
      fc.property(policyInput, (i) => {
        expect(decide({ ...i, request: { acrValues: i.request.acrValues, essentialAcr: [[UNKNOWN]] } }).type).toBe('unmet');
        // Unknown in one request, whatever the other asks.
        expect(decide({ ...i, request: { acrValues: i.request.acrValues, essentialAcr: [[KNOWN_ACR[0]!], [UNKNOWN]] } }).type).toBe('unmet');
      }),
    );
  });
});
