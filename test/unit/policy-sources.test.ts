/**
 * The policy engine's document rules: groups (levels, enrolment deadlines),
 * the app (mode, minimum acr, allowed factors, trusted devices), the global
 * minimum, allowed factors, level ages and trusted devices; as tables, with
 * the trace naming each source; plus properties: adding any document rule
 * never weakens a decision, a trusted device never yields level 3 and never
 * helps where it is denied.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { decide, type ClientRequirement, type Decision, type FactorFacts, type GroupRequirement, type PolicyInput } from '../../src/policy/decide.ts';
import { PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';
import type { Evidence } from '../../factors/types.ts';

const TOTP: FactorFacts = { id: 'totp', kinds: ['have'], phishingResistant: false, recoveryOnly: false };
const BACKUP: FactorFacts = { id: 'backup-codes', kinds: ['have'], phishingResistant: false, recoveryOnly: true };
const KEY: FactorFacts = { id: 'webauthn', kinds: ['have'], phishingResistant: true, recoveryOnly: false };
const NOW = 1_000_000;
const PWD = PASSWORD_EVIDENCE(NOW - 10);
const proof = (f: FactorFacts, at = NOW - 5): Evidence => ({ factor: f.id, credentialId: `${f.id}-1`, kinds: f.kinds, amr: f.id === 'webauthn' ? ['hwk'] : ['otp'], phishingResistant: f.phishingResistant, at });

const base = (over: Partial<PolicyInput> = {}): PolicyInput => ({
  mfa: 'off',
  enrolled: [],
  available: [TOTP, BACKUP, KEY],
  request: { acrValues: [] },
  evidence: [PWD],
  now: NOW,
  ...over,
});

describe('groups', () => {
  const g = (over: Partial<GroupRequirement> = {}): GroupRequirement => ({ name: 'finance', level: 2, ...over });
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    ['level 2, a factor enrolled: step up', { groups: [g()], enrolled: [TOTP] }, { type: 'step_up', target: 2 }],
    ['level 2, nothing enrolled, no deadline: enrol, required', { groups: [g()] }, { type: 'enroll', optional: false }],
    ['level 2, deadline ahead: enrol, optional, with a reminder', { groups: [g({ enrollmentDeadline: NOW + 3600 })] }, { type: 'enroll', optional: true, reminder: { deadline: NOW + 3600 } }],
    ['level 2, deadline passed: enrol, required', { groups: [g({ enrollmentDeadline: NOW - 1 })] }, { type: 'enroll', optional: false }],
    ['level 2, deadline ahead but a factor enrolled: step up now', { groups: [g({ enrollmentDeadline: NOW + 3600 })], enrolled: [TOTP] }, { type: 'step_up' }],
    ['level 3 with only TOTP possible: unmet', { groups: [g({ level: 3 })], enrolled: [TOTP] }, { type: 'unmet', target: 3 }],
    ['two groups: the stricter wins', { groups: [g({ name: 'a', level: 1 }), g({ name: 'b', level: 3 })], enrolled: [KEY] }, { type: 'step_up', target: 3, factors: ['webauthn'] }],
    ['group factors narrow the choice', { groups: [g({ factors: ['webauthn'] })], enrolled: [TOTP, KEY] }, { type: 'step_up', factors: ['webauthn'] }],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });

  test('the trace names the group', () => {
    const d = decide(base({ groups: [g()], enrolled: [TOTP] }));
    expect(d.trace).toContainEqual({ source: 'group finance', rule: 'level 2' });
    expect(d.rule).toBe('group finance: level 2');
  });
});

describe('the app', () => {
  const c = (over: Partial<ClientRequirement> = {}): ClientRequirement => ({ name: 'payroll', ...over });
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    ['mfa required raises off', { client: c({ mfa: 'required' }) }, { type: 'enroll', optional: false }],
    ['mfa off cannot lower a global required', { mfa: 'required', client: c({ mfa: 'off' }), enrolled: [TOTP] }, { type: 'step_up' }],
    ['a minimum acr ignores a lower request', { client: c({ minLevel: 2 }), enrolled: [TOTP], request: { acrValues: ['https://refeds.org/profile/sfa'] } }, { type: 'step_up', target: 2 }],
    ['allowed factors exclude TOTP: only the key can step up', { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP, KEY] }, { type: 'step_up', factors: ['webauthn'] }],
    ['allowed factors exclude every enrolled factor and enrolment is closed: unmet', { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP], available: [TOTP] }, { type: 'unmet' }],
    ['synced passkeys denied: a synced proof does not count', { client: c({ mfa: 'required', syncedPasskeys: 'deny' }), enrolled: [TOTP], evidence: [PWD, { ...proof(KEY), amr: ['swk', 'user'] }] }, { type: 'step_up', level: 1 }],
    ['synced passkeys denied: a device-bound proof counts', { client: c({ mfa: 'required', syncedPasskeys: 'deny' }), enrolled: [KEY], evidence: [PWD, proof(KEY)] }, { type: 'satisfied', level: 3 }],
    ['evidence of a disallowed factor does not count', { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP, KEY], evidence: [PWD, proof(TOTP)] }, { type: 'step_up', level: 1 }],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });
});

describe('global minimum and level ages', () => {
  test('minLevel 2 behaves like required', () => {
    expect(decide(base({ minLevel: 2, enrolled: [TOTP] }))).toMatchObject({ type: 'step_up', target: 2 });
  });
  test('a level proved long ago falls back, truthfully', () => {
    const old = [PASSWORD_EVIDENCE(NOW - 7200), proof(TOTP, NOW - 7000)];
    const d = decide(base({ levelMaxAge: { '2': 3600 }, enrolled: [TOTP], evidence: old }));
    expect(d).toMatchObject({ type: 'satisfied', level: 1, acr: 'urn:twofold:acr:1', amr: ['pwd'] });
    expect(d.trace.some((t) => /no longer counts/.test(t.rule))).toBe(true);
    expect(decide(base({ levelMaxAge: { '2': 3600 }, enrolled: [TOTP], evidence: old, request: { acrValues: ['urn:twofold:acr:2'] } }))).toMatchObject({ type: 'step_up', level: 1 });
  });
  test('a passkey that alone proved level 3 long ago must be proved afresh', () => {
    const PASSKEY: FactorFacts = { id: 'passkey', kinds: ['have', 'are'], phishingResistant: true, recoveryOnly: false };
    const old: Evidence = { factor: 'passkey', credentialId: 'pk-1', kinds: ['have', 'are'], amr: ['hwk', 'user'], phishingResistant: true, at: NOW - 7200 };
    const d = decide(base({ levelMaxAge: { '3': 3600 }, enrolled: [PASSKEY], evidence: [old], request: { acrValues: ['urn:twofold:acr:3'] } }));
    expect(d).toMatchObject({ type: 'step_up', level: 0, target: 3, factors: ['passkey'] });
    expect(decide(base({ levelMaxAge: { '3': 3600 }, enrolled: [PASSKEY], evidence: [{ ...old, at: NOW - 60 }], request: { acrValues: ['urn:twofold:acr:3'] } }))).toMatchObject({ type: 'satisfied', level: 3 });
  });

  test('a fresh second factor on an old password session counts', () => {
    const d = decide(base({ levelMaxAge: { '2': 3600 }, enrolled: [TOTP], evidence: [PASSWORD_EVIDENCE(NOW - 7200), proof(TOTP, NOW - 10)] }));
    expect(d).toMatchObject({ type: 'satisfied', level: 2 });
  });
});

describe('trusted devices', () => {
  const on = { trustedDevices: true, trustedDevice: true, enrolled: [TOTP] };
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    ['enabled, allowed, level 2 needed: satisfied, remembered, amr without mfa', { ...on, mfa: 'required' }, { type: 'satisfied', level: 2, remembered: true, amr: ['pwd'] }],
    ['the app denies them: step up', { ...on, mfa: 'required', client: { name: 'x', trustedDevices: 'deny' } }, { type: 'step_up' }],
    ['disabled globally: step up', { ...on, trustedDevices: false, mfa: 'required' }, { type: 'step_up' }],
    ['never for level 3', { ...on, enrolled: [TOTP, KEY], request: { acrValues: [], essentialAcr: ['urn:twofold:acr:3'] } }, { type: 'step_up', target: 3 }],
    ['no cookie: step up, with the offer to remember', { ...on, trustedDevice: false, mfa: 'required' }, { type: 'step_up', trustedDeviceAllowed: true }],
    ['remembered evidence passed in is ignored', { trustedDevices: true, trustedDevice: false, mfa: 'required', enrolled: [TOTP], evidence: [PWD, { factor: 'trusted-device', kinds: ['have'], amr: [], phishingResistant: false, at: NOW, remembered: true }] }, { type: 'step_up' }],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });
});

// ---------------------------------------------------------------------------
// Properties: a document rule added never weakens the decision.

const rank = (d: Decision): number => (d.type === 'satisfied' ? 0 : 1);
const targetOf = (d: Decision): number => (d.type === 'satisfied' ? d.level : d.target);

const arbFactors = fc.subarray([TOTP, BACKUP, KEY]);
const arbEvidence = fc.subarray([proof(TOTP), proof(BACKUP), proof(KEY)]).map((e) => [PWD, ...e]);
const arbMode = fc.constantFrom<'off' | 'optional' | 'required'>('off', 'optional', 'required');
const arbLevel = fc.constantFrom<1 | 2 | 3>(1, 2, 3);
const arbInput = fc.record({ mfa: arbMode, enrolled: arbFactors, evidence: arbEvidence, trustedDevices: fc.boolean(), trustedDevice: fc.boolean() }).map((r) => base(r));

describe('properties', () => {
  test('adding a group level never turns a pending decision satisfied nor lowers the target', () => {
    fc.assert(
      fc.property(arbInput, arbLevel, (input, level) => {
        const before = decide(input);
        const after = decide({ ...input, groups: [{ name: 'g', level }] });
        expect(rank(after)).toBeGreaterThanOrEqual(rank(before));
        expect(targetOf(after)).toBeGreaterThanOrEqual(Math.min(targetOf(before), level));
      }),
    );
  });

  test('an app minimum never lowers what the documents demand, whatever the request', () => {
    fc.assert(
      fc.property(arbInput, arbLevel, fc.constantFrom('https://refeds.org/profile/sfa', 'urn:twofold:acr:1', 'urn:twofold:acr:2'), (input, minLevel, asked) => {
        const d = decide({ ...input, client: { name: 'c', minLevel }, request: { acrValues: [asked] } });
        if (d.type === 'satisfied') expect(d.level).toBeGreaterThanOrEqual(minLevel);
      }),
    );
  });

  test('narrowing the allowed factors never turns a pending decision satisfied', () => {
    fc.assert(
      fc.property(arbInput, fc.subarray(['totp', 'backup-codes', 'webauthn'], { minLength: 1 }), (input, allowed) => {
        const before = decide(input);
        const after = decide({ ...input, factors: allowed });
        if (before.type !== 'satisfied') expect(after.type).not.toBe('satisfied');
      }),
    );
  });

  test('a trusted device never yields level 3, nor anything where the app denies it', () => {
    fc.assert(
      fc.property(arbInput, fc.constantFrom<'allow' | 'deny'>('allow', 'deny'), (input, devices) => {
        const withDevice = decide({ ...input, trustedDevice: true, client: { name: 'c', trustedDevices: devices } });
        const without = decide({ ...input, trustedDevice: false, client: { name: 'c', trustedDevices: devices } });
        if (withDevice.type === 'satisfied' && withDevice.remembered) {
          expect(withDevice.level).toBe(2);
          expect(devices).toBe('allow');
          expect(withDevice.amr).not.toContain('mfa');
        }
        if (devices === 'deny') expect(withDevice).toEqual(without);
      }),
    );
  });
});
