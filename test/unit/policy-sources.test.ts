/**
 * The policy engine's document rules: groups (levels, enrolment deadlines),
 * the app (mode, minimum acr, allowed factors, trusted devices), the global
 * minimum, allowed factors, level ages and trusted devices; as tables, with
 * the trace naming each source; plus properties: every tightening of an input
 * (a global minimum, an app's MFA mode, a group's level, a level's maximum
 * age, time passing, synced passkeys denied, fewer allowed factors, acr_values
 * added) never yields a weaker decision, in the order defined below; a
 * trusted device never yields level 3 and never helps where it is denied.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { configurePropertySeed } from '../helpers/property-seed.ts';
import {
  decide,
  type ClientRequirement,
  type Decision,
  type FactorFacts,
  type GroupRequirement,
  type MfaMode,
  type PolicyInput,
} from '../../src/policy/decide.ts';
import { levelOf, PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';
import type { Evidence } from '../../factors/types.ts';

configurePropertySeed();

const TOTP: FactorFacts = { id: 'totp', kinds: ['have'], phishingResistant: false, recoveryOnly: false };
const BACKUP: FactorFacts = { id: 'backup-codes', kinds: ['have'], phishingResistant: false, recoveryOnly: true };
const KEY: FactorFacts = { id: 'webauthn', kinds: ['have'], phishingResistant: true, recoveryOnly: false };
const NOW = 1_000_000;
const PWD = PASSWORD_EVIDENCE(NOW - 10);
const proof = (f: FactorFacts, at = NOW - 5): Evidence => ({
  factor: f.id,
  credentialId: `${f.id}-1`,
  kinds: f.kinds,
  amr: f.id === 'webauthn' ? ['hwk'] : ['otp'],
  phishingResistant: f.phishingResistant,
  at,
});

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
    [
      'level 2, deadline ahead: enrol, optional, with a reminder',
      { groups: [g({ enrollmentDeadline: NOW + 3600 })] },
      { type: 'enroll', optional: true, reminder: { deadline: NOW + 3600 } },
    ],
    ['level 2, deadline passed: enrol, required', { groups: [g({ enrollmentDeadline: NOW - 1 })] }, { type: 'enroll', optional: false }],
    ['level 2, deadline ahead but a factor enrolled: step up now', { groups: [g({ enrollmentDeadline: NOW + 3600 })], enrolled: [TOTP] }, { type: 'step_up' }],
    ['level 3 with only TOTP possible: unmet', { groups: [g({ level: 3 })], enrolled: [TOTP] }, { type: 'unmet', target: 3 }],
    [
      'two groups: the stricter wins',
      { groups: [g({ name: 'a', level: 1 }), g({ name: 'b', level: 3 })], enrolled: [KEY] },
      { type: 'step_up', target: 3, factors: ['webauthn'] },
    ],
    ['group factors narrow the choice', { groups: [g({ factors: ['webauthn'] })], enrolled: [TOTP, KEY] }, { type: 'step_up', factors: ['webauthn'] }],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });

  test('the trace names the group', () => {
    const d = decide(base({ groups: [g()], enrolled: [TOTP] }));
    expect(d.trace).toContainEqual({ source: 'group finance', rule: 'level 2' });
    expect(d.rule).toBe('group finance: level 2');
  });

  test('the trace says truthfully why a group with a deadline counts: passed, or a factor already enrolled', () => {
    const passed = decide(base({ groups: [g({ enrollmentDeadline: NOW - 1 })], enrolled: [TOTP] }));
    expect(passed.rule).toBe('group finance: level 2 (enrolment deadline passed)');
    const ahead = decide(base({ groups: [g({ enrollmentDeadline: NOW + 3600 })], enrolled: [TOTP] }));
    expect(ahead.rule).toBe('group finance: level 2 (second factor enrolled; the enrolment deadline does not apply)');
  });
});

describe('the app', () => {
  const c = (over: Partial<ClientRequirement> = {}): ClientRequirement => ({ name: 'payroll', ...over });
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    ['mfa required raises off', { client: c({ mfa: 'required' }) }, { type: 'enroll', optional: false }],
    ['mfa off cannot lower a global required', { mfa: 'required', client: c({ mfa: 'off' }), enrolled: [TOTP] }, { type: 'step_up' }],
    [
      'a minimum acr ignores a lower request',
      { client: c({ minLevel: 2 }), enrolled: [TOTP], request: { acrValues: ['https://refeds.org/profile/sfa'] } },
      { type: 'step_up', target: 2 },
    ],
    [
      'allowed factors exclude TOTP: only the key can step up',
      { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP, KEY] },
      { type: 'step_up', factors: ['webauthn'] },
    ],
    [
      'allowed factors exclude every enrolled factor and enrolment is closed: unmet',
      { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP], available: [TOTP] },
      { type: 'unmet' },
    ],
    [
      'synced passkeys denied: a synced proof does not count',
      { client: c({ mfa: 'required', syncedPasskeys: 'deny' }), enrolled: [TOTP], evidence: [PWD, { ...proof(KEY), amr: ['swk', 'user'] }] },
      { type: 'step_up', level: 1 },
    ],
    [
      'synced passkeys denied: a device-bound proof counts',
      { client: c({ mfa: 'required', syncedPasskeys: 'deny' }), enrolled: [KEY], evidence: [PWD, proof(KEY)] },
      { type: 'satisfied', level: 3 },
    ],
    [
      'a minimum acr the ACR table no longer knows: unmet, not dropped',
      { client: c({ unknownMinAcr: 'urn:example:gone' }), enrolled: [TOTP], evidence: [PWD, proof(TOTP)] },
      { type: 'unmet', rule: 'client payroll: minimum acr urn:example:gone is not in the ACR table' },
    ],
    [
      'evidence of a disallowed factor does not count',
      { client: c({ mfa: 'required', factors: ['webauthn'] }), enrolled: [TOTP, KEY], evidence: [PWD, proof(TOTP)] },
      { type: 'step_up', level: 1 },
    ],
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
    expect(decide(base({ levelMaxAge: { '2': 3600 }, enrolled: [TOTP], evidence: old, request: { acrValues: ['urn:twofold:acr:2'] } }))).toMatchObject({
      type: 'step_up',
      level: 1,
    });
  });
  test('a passkey that alone proved level 3 long ago must be proved afresh', () => {
    const PASSKEY: FactorFacts = { id: 'passkey', kinds: ['have', 'are'], phishingResistant: true, recoveryOnly: false };
    const old: Evidence = { factor: 'passkey', credentialId: 'pk-1', kinds: ['have', 'are'], amr: ['hwk', 'user'], phishingResistant: true, at: NOW - 7200 };
    const d = decide(base({ levelMaxAge: { '3': 3600 }, enrolled: [PASSKEY], evidence: [old], request: { acrValues: ['urn:twofold:acr:3'] } }));
    expect(d).toMatchObject({ type: 'step_up', level: 0, target: 3, factors: ['passkey'] });
    expect(
      decide(base({ levelMaxAge: { '3': 3600 }, enrolled: [PASSKEY], evidence: [{ ...old, at: NOW - 60 }], request: { acrValues: ['urn:twofold:acr:3'] } })),
    ).toMatchObject({ type: 'satisfied', level: 3 });
  });

  test('a fresh second factor on an old password session counts', () => {
    const d = decide(base({ levelMaxAge: { '2': 3600 }, enrolled: [TOTP], evidence: [PASSWORD_EVIDENCE(NOW - 7200), proof(TOTP, NOW - 10)] }));
    expect(d).toMatchObject({ type: 'satisfied', level: 2 });
  });
});

describe('level ages, from the top down', () => {
  // The audit's repro: password t=0, security key t=1000, TOTP t=9500, now=10000, level 2 requested.
  const evidence = [PASSWORD_EVIDENCE(0), proof(KEY, 1000), proof(TOTP, 9500)];
  const at = (levelMaxAge: PolicyInput['levelMaxAge']) =>
    decide(base({ now: 10_000, levelMaxAge, enrolled: [TOTP, KEY], evidence, request: { acrValues: ['urn:twofold:acr:2'] } }));

  test('level 2 older than its age: back to level 1, the old TOTP no longer counts', () => {
    expect(at({ '2': 100 })).toMatchObject({ type: 'step_up', level: 1, target: 2 });
  });

  test('a level-3 age as well: falling back from 3 leaves a level 2 that is itself too old', () => {
    const d = at({ '2': 100, '3': 1000 });
    expect(d).toMatchObject({ type: 'step_up', level: 1, target: 2 });
    expect(d.trace.filter((t) => /no longer counts/.test(t.rule)).map((t) => t.rule)).toEqual([
      // Level 3 is also level 2: it is held to the shorter of both ages.
      'level 3 was proved more than 100s ago and no longer counts',
      'level 2 was proved more than 100s ago and no longer counts',
    ]);
  });

  test('a level-3 age alone: the fresh TOTP keeps level 2', () => {
    expect(at({ '3': 1000 })).toMatchObject({ type: 'satisfied', level: 2, amr: ['pwd', 'otp', 'mfa'] });
  });
});

describe('trusted devices', () => {
  const on = { trustedDevices: true, trustedDevice: { factor: 'totp' }, enrolled: [TOTP] };
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    [
      'enabled, allowed, level 2 needed: satisfied, remembered, amr without mfa',
      { ...on, mfa: 'required' },
      { type: 'satisfied', level: 2, remembered: true, amr: ['pwd'] },
    ],
    ['the app denies them: step up', { ...on, mfa: 'required', client: { name: 'x', trustedDevices: 'deny' } }, { type: 'step_up' }],
    ['disabled globally: step up', { ...on, trustedDevices: false, mfa: 'required' }, { type: 'step_up' }],
    ['never for level 3', { ...on, enrolled: [TOTP, KEY], request: { acrValues: [], essentialAcr: [['urn:twofold:acr:3']] } }, { type: 'step_up', target: 3 }],
    ['no cookie: step up, with the offer to remember', { ...on, trustedDevice: undefined, mfa: 'required' }, { type: 'step_up', trustedDeviceAllowed: true }],
    [
      'remembered evidence passed in is ignored',
      {
        trustedDevices: true,
        mfa: 'required',
        enrolled: [TOTP],
        evidence: [PWD, { factor: 'trusted-device', kinds: ['have'], amr: [], phishingResistant: false, at: NOW, remembered: true }],
      },
      { type: 'step_up' },
    ],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });

  // A device stands in only for an allowed factor that is not recovery-only, which the account has: the one whose proof created it.
  const webauthnOnly = { name: 'bank', mfa: 'required' as const, factors: ['webauthn'] };
  test.each<[string, Partial<PolicyInput>, Partial<Decision>]>([
    [
      'app allows only webauthn, account has only TOTP, no device: unmet',
      { trustedDevices: true, enrolled: [TOTP], available: [TOTP], client: webauthnOnly },
      { type: 'unmet' },
    ],
    [
      'app allows only webauthn, account has only TOTP, device from a TOTP sign-in: still unmet',
      { trustedDevices: true, enrolled: [TOTP], available: [TOTP], client: webauthnOnly, trustedDevice: { factor: 'totp' } },
      { type: 'unmet' },
    ],
    [
      'app allows only webauthn, account has only TOTP, device of unknown origin: still unmet',
      { trustedDevices: true, enrolled: [TOTP], available: [TOTP], client: webauthnOnly, trustedDevice: { factor: null } },
      { type: 'unmet' },
    ],
    [
      'app allows only webauthn, account has TOTP and a key, device from a TOTP sign-in: step up with the key',
      { trustedDevices: true, enrolled: [TOTP, KEY], client: { ...webauthnOnly, mfa: undefined }, trustedDevice: { factor: 'totp' }, mfa: 'required' },
      { type: 'step_up', factors: ['webauthn'] },
    ],
    [
      'app allows only webauthn, device from a key sign-in: satisfied, remembered',
      { trustedDevices: true, enrolled: [TOTP, KEY], client: { ...webauthnOnly, mfa: undefined }, trustedDevice: { factor: 'webauthn' }, mfa: 'required' },
      { type: 'satisfied', level: 2, remembered: true },
    ],
    [
      'device from a factor the account no longer has: step up',
      { trustedDevices: true, mfa: 'required', enrolled: [TOTP], trustedDevice: { factor: 'webauthn' } },
      { type: 'step_up' },
    ],
    [
      'device from a backup code sign-in: never stands in',
      { trustedDevices: true, mfa: 'required', enrolled: [TOTP, BACKUP], trustedDevice: { factor: 'backup-codes' } },
      { type: 'step_up' },
    ],
    [
      'account with only backup codes: a device never stands in',
      { trustedDevices: true, mfa: 'required', enrolled: [BACKUP], trustedDevice: { factor: null } },
      { type: 'step_up', factors: ['backup-codes'], enrollAfter: true },
    ],
    [
      'device of unknown origin, an allowed factor enrolled: satisfied, remembered',
      { trustedDevices: true, mfa: 'required', enrolled: [TOTP], trustedDevice: { factor: null } },
      { type: 'satisfied', level: 2, remembered: true },
    ],
  ])('%s', (_name, input, expected) => {
    expect(decide(base(input))).toMatchObject(expected);
  });
});

describe('explain: each narrowing is credited to its document', () => {
  test('the global list, then a group, then the app', () => {
    const d = decide(
      base({
        factors: ['totp', 'webauthn', 'backup-codes'],
        groups: [{ name: 'ops', factors: ['totp', 'webauthn'] }],
        client: { name: 'bank', factors: ['webauthn', 'totp'] },
        enrolled: [TOTP],
      }),
    );
    expect(d.trace.filter((t) => /allowed factors/.test(t.rule))).toEqual([
      { source: 'global', rule: 'allowed factors narrowed to: totp, webauthn, backup-codes' },
      { source: 'group ops', rule: 'allowed factors narrowed to: totp, webauthn' },
      { source: 'client bank', rule: 'allowed factors: webauthn, totp (narrows nothing further)' },
    ]);
  });
});

// ---------------------------------------------------------------------------
// Properties: a tightened input never yields a weaker decision.
//
// The order, as decide() works: how far a decision lets the user in now.
//   0  admitted: `satisfied`, or a step (`enroll`, `step_up`) the user may skip;
//   1  must prove or enrol more first: a `step_up` or an `enroll` that may not be skipped;
//   2  cannot sign in: `unmet`.
// A tighter input never lowers this gate. At the same gate 1 or 2 it never lowers the `target` level.
// One exception, by design: voluntary acr_values are a wish, not a requirement ("the best the account can
// reach"), and so is a group's grace-period reminder. A tightening that takes evidence or usable factors
// away (level ages, time, synced passkeys denied, fewer allowed factors) may lower how far a wish is
// pursued, even to admitting at the level the account can still reach. For those tightenings the order is
// checked on the request without its acr_values (what the documents and an essential acr demand), and with
// them only that an unmet requirement stays unmet.
// Two admitted decisions are not ordered by level: the level is what the evidence proves (it may fall
// when a tightening discounts evidence, which says less, truthfully); a tightening that demands a level
// is checked by `floor`: an admitted decision after it has reached that level.

const PASSKEY: FactorFacts = { id: 'passkey', kinds: ['have', 'know'], phishingResistant: true, recoveryOnly: false };
const ALL = [TOTP, BACKUP, KEY, PASSKEY];
const IDS = ALL.map((f) => f.id);
const ACRS = ['https://refeds.org/profile/sfa', 'urn:twofold:acr:1', 'urn:twofold:acr:2', 'https://refeds.org/profile/mfa', 'urn:twofold:acr:3'];

const gate = (d: Decision): number =>
  d.type === 'satisfied' || ((d.type === 'enroll' || d.type === 'step_up') && d.optional) ? 0 : d.type === 'unmet' ? 2 : 1;
const targetOf = (d: Decision): number => (d.type === 'satisfied' ? d.level : d.target);
const wishful = (i: PolicyInput) => i.request.acrValues.length > 0 || (i.groups ?? []).some((g) => g.enrollmentDeadline !== undefined);
const withoutWish = (i: PolicyInput): PolicyInput => ({ ...i, request: { ...i.request, acrValues: [] } });

/** For tightenings that take evidence or usable factors away: the order without the wish, and unmet stays unmet with it. */
function expectNoWeakerDemand(before: PolicyInput, after: PolicyInput): void {
  const b = withoutWish(before);
  expectNoWeaker(decide(b), decide(withoutWish(after)), { targets: !wishful(b) });
  if (decide(before).type === 'unmet') expect(decide(after).type).toBe('unmet');
}

function expectNoWeaker(before: Decision, after: Decision, options: { targets: boolean; floor?: number }): void {
  const where = { before: [before.type, before.rule], after: [after.type, after.rule] };
  expect({ ...where, gate: gate(after) >= gate(before) }).toMatchObject({ gate: true });
  if (options.targets && gate(before) > 0 && gate(after) === gate(before))
    expect({ ...where, target: targetOf(after) >= targetOf(before) }).toMatchObject({ target: true });
  if (options.floor !== undefined && after.type === 'satisfied') expect({ ...where, level: after.level >= options.floor }).toMatchObject({ level: true });
}

const arbAt = fc.integer({ min: NOW - 20_000, max: NOW });
const arbProof = fc.tuple(fc.constantFrom(...ALL), arbAt, fc.boolean()).map(([f, at, syncedKey]) => {
  const p = proof(f, at);
  return f.phishingResistant && syncedKey ? { ...p, amr: ['swk', 'user'] as Evidence['amr'] } : p;
});
const arbLevel = fc.constantFrom<1 | 2 | 3>(1, 2, 3);
const arbMode = fc.constantFrom<MfaMode>('off', 'optional', 'required');
const arbList = fc.option(fc.subarray(IDS, { minLength: 1 }), { nil: undefined });
const arbAge = fc.option(fc.integer({ min: 1, max: 30_000 }), { nil: undefined });
const arbGroup = fc.record(
  {
    name: fc.constantFrom('a', 'b', 'c'),
    level: fc.option(arbLevel, { nil: undefined }),
    factors: arbList,
    enrollmentDeadline: fc.option(fc.integer({ min: NOW - 5000, max: NOW + 5000 }), { nil: undefined }),
  },
  { requiredKeys: ['name'] },
);
const arbClient = fc.record(
  {
    name: fc.constant('app'),
    mfa: fc.option(arbMode, { nil: undefined }),
    minLevel: fc.option(arbLevel, { nil: undefined }),
    factors: arbList,
    trustedDevices: fc.option(fc.constantFrom<'allow' | 'deny'>('allow', 'deny'), { nil: undefined }),
    syncedPasskeys: fc.option(fc.constantFrom<'allow' | 'deny'>('allow', 'deny'), { nil: undefined }),
  },
  { requiredKeys: ['name'] },
);
const arbInput: fc.Arbitrary<PolicyInput> = fc
  .record({
    mfa: arbMode,
    minLevel: fc.option(arbLevel, { nil: undefined }),
    factors: arbList,
    age2: arbAge,
    age3: arbAge,
    trustedDevices: fc.boolean(),
    trustedDevice: fc.option(fc.record({ factor: fc.constantFrom<string | null>(null, ...IDS) }), { nil: undefined }),
    groups: fc.array(arbGroup, { maxLength: 2 }),
    client: fc.option(arbClient, { nil: undefined }),
    enrolled: fc.subarray(ALL),
    passwordAt: arbAt,
    proofs: fc.array(arbProof, { maxLength: 3 }),
    acrValues: fc.array(fc.constantFrom(...ACRS), { maxLength: 2 }),
    essentialAcr: fc.option(fc.array(fc.constantFrom(...ACRS), { minLength: 1, maxLength: 2 }), { nil: undefined }),
  })
  .map((r) => ({
    mfa: r.mfa,
    minLevel: r.minLevel,
    factors: r.factors,
    levelMaxAge: { ...(r.age2 ? { '2': r.age2 } : {}), ...(r.age3 ? { '3': r.age3 } : {}) },
    trustedDevices: r.trustedDevices,
    trustedDevice: r.trustedDevice,
    groups: r.groups,
    client: r.client,
    enrolled: r.enrolled,
    available: ALL,
    evidence: [PASSWORD_EVIDENCE(r.passwordAt), ...r.proofs],
    request: { acrValues: r.acrValues, ...(r.essentialAcr ? { essentialAcr: [r.essentialAcr] } : {}) },
    now: NOW,
  }));

const RUNS = { numRuns: 2000 };

describe('properties', () => {
  test('raising the global minimum level never weakens the decision', () => {
    fc.assert(
      fc.property(arbInput, arbLevel, (input, level) => {
        const minLevel = Math.max(input.minLevel ?? 1, level) as 1 | 2 | 3;
        expectNoWeaker(decide(input), decide({ ...input, minLevel }), { targets: true, floor: minLevel });
      }),
      RUNS,
    );
  });

  test("the app's MFA mode off → optional → required never weakens the decision", () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const client = input.client ?? { name: 'app' };
        const [off, optional, required] = (['off', 'optional', 'required'] as const).map((mfa) => decide({ ...input, client: { ...client, mfa } }));
        expectNoWeaker(off!, optional!, { targets: true });
        expectNoWeaker(optional!, required!, { targets: true, floor: 2 });
        expectNoWeaker(off!, required!, { targets: true, floor: 2 });
      }),
      RUNS,
    );
  });

  test("adding a group, or raising a group's level, never weakens the decision", () => {
    fc.assert(
      fc.property(arbInput, arbLevel, fc.boolean(), (input, level, raiseExisting) => {
        const groups = input.groups ?? [];
        const tighter =
          raiseExisting && groups.length
            ? groups.map((g, n) => (n === 0 ? { ...g, level: Math.max(g.level ?? 1, level) as 1 | 2 | 3 } : g))
            : [...groups, { name: 'new', level }];
        const floor = raiseExisting && groups.length && groups[0]!.enrollmentDeadline !== undefined ? undefined : level;
        expectNoWeaker(decide(input), decide({ ...input, groups: tighter }), { targets: true, floor });
      }),
      RUNS,
    );
  });

  test('adding or shortening a levelMaxAge entry never weakens the decision', () => {
    fc.assert(
      fc.property(arbInput, fc.constantFrom<'2' | '3'>('2', '3'), fc.integer({ min: 1, max: 30_000 }), (input, level, age) => {
        const current = input.levelMaxAge?.[level];
        const levelMaxAge = { ...input.levelMaxAge, [level]: current === undefined ? age : Math.min(current, age) };
        expectNoWeakerDemand(input, { ...input, levelMaxAge });
      }),
      // The audit's repro, always tried: adding a level-3 age once let a stale level-2 proof count again.
      {
        ...RUNS,
        examples: [
          [
            base({
              mfa: 'required',
              enrolled: [TOTP, KEY],
              evidence: [PASSWORD_EVIDENCE(NOW - 10_000), proof(KEY, NOW - 9000), proof(TOTP, NOW - 500)],
              levelMaxAge: { '2': 100 },
            }),
            '3',
            1000,
          ],
        ],
      },
    );
  });

  test('a level that counts was proved within its age (level 3 within the shorter of both ages)', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const d = decide(input);
        if (d.type !== 'satisfied' || d.remembered) return;
        const password = d.evidence.filter((e) => e.factor === 'password').sort((a, b) => b.at - a.at)[0];
        const within = (limit: number) => d.evidence.filter((e) => e === password || NOW - e.at <= limit);
        const age2 = input.levelMaxAge?.['2'];
        const age3 = Math.min(input.levelMaxAge?.['3'] ?? Infinity, age2 ?? Infinity);
        if (d.level >= 2 && age2 !== undefined) expect(levelOf(within(age2))).toBeGreaterThanOrEqual(2);
        if (d.level >= 3 && age3 !== Infinity) expect(levelOf(within(age3))).toBeGreaterThanOrEqual(3);
      }),
      RUNS,
    );
  });

  test('time passing (past level ages and enrolment deadlines) never weakens the decision', () => {
    fc.assert(
      fc.property(arbInput, fc.integer({ min: 0, max: 20_000 }), (input, later) => {
        expectNoWeakerDemand(input, { ...input, now: NOW + later });
      }),
      RUNS,
    );
  });

  test("an app's synced-passkey deny never weakens the decision", () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const client = input.client ?? { name: 'app' };
        expectNoWeakerDemand({ ...input, client: { ...client, syncedPasskeys: 'allow' } }, { ...input, client: { ...client, syncedPasskeys: 'deny' } });
      }),
      RUNS,
    );
  });

  test('narrowing the allowed factors, in any document, never weakens the decision', () => {
    fc.assert(
      fc.property(arbInput, fc.subarray(IDS), fc.constantFrom('global', 'group', 'client'), (input, keep, where) => {
        const narrow = (list: string[] | undefined) => (list ?? IDS).filter((id) => keep.includes(id));
        const tighter: PolicyInput =
          where === 'global'
            ? { ...input, factors: narrow(input.factors) }
            : where === 'group'
              ? { ...input, groups: [...(input.groups ?? []), { name: 'narrow', factors: narrow(undefined) }] }
              : { ...input, client: { ...(input.client ?? { name: 'app' }), factors: narrow(input.client?.factors) } };
        expectNoWeakerDemand(input, tighter);
      }),
      RUNS,
    );
  });

  test('adding acr_values to a request that had none never weakens the decision; appending one changes nothing', () => {
    fc.assert(
      fc.property(arbInput, fc.array(fc.constantFrom(...ACRS), { minLength: 1, maxLength: 2 }), fc.constantFrom(...ACRS), (input, values, extra) => {
        const none = decide({ ...input, request: { ...input.request, acrValues: [] } });
        const some = decide({ ...input, request: { ...input.request, acrValues: values } });
        expectNoWeaker(none, some, { targets: true });
        const appended = decide({ ...input, request: { ...input.request, acrValues: [...values, extra] } });
        expect({ type: appended.type, level: appended.level, target: targetOf(appended) }).toEqual({
          type: some.type,
          level: some.level,
          target: targetOf(some),
        });
      }),
      RUNS,
    );
  });

  test('a trusted device never yields level 3, nor anything where the app denies it, nor for a factor the app does not allow', () => {
    fc.assert(
      fc.property(arbInput, fc.constantFrom<'allow' | 'deny'>('allow', 'deny'), fc.constantFrom<string | null>(null, ...IDS), (input, devices, factor) => {
        const client = { ...(input.client ?? { name: 'app' }), trustedDevices: devices };
        const withDevice = decide({ ...input, trustedDevice: { factor }, client });
        const without = decide({ ...input, trustedDevice: undefined, client });
        if (withDevice.type === 'satisfied' && withDevice.remembered) {
          expect(withDevice.level).toBe(2);
          expect(devices).toBe('allow');
          expect(withDevice.amr).not.toContain('mfa');
          const allowed = [input.factors, ...(input.groups ?? []).map((g) => g.factors), client.factors].reduce<string[]>(
            (acc, l) => (l ? acc.filter((id) => l.includes(id)) : acc),
            IDS,
          );
          const stoodFor = input.enrolled.filter((f) => !f.recoveryOnly && allowed.includes(f.id) && (factor === null || f.id === factor));
          expect(stoodFor.length).toBeGreaterThan(0);
        }
        if (devices === 'deny') expect(withDevice).toEqual(without);
      }),
      RUNS,
    );
  });
});
