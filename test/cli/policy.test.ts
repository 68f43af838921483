/** `twofold policy`, `client add|update` policy flags and `user devices`: validation, versions, explain, audit. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { enrolTotp } from '../helpers/factors.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { changePassword } from '../../src/accounts/password-change.ts';
import { saveSessionEvidence } from '../../src/mfa/session-evidence.ts';
import { PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';
import { trustDevice } from '../../src/mfa/trusted-devices.ts';
import { listAudit } from '../../src/security/audit.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-policy-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

for (const kind of DIALECTS) {
  describe(`twofold policy on ${kind}`, () => {
    let database: TestDatabase;
    let opened: Opened;
    const run = cliRunner(() => opened.services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      opened = await openServices(testConfig(3998), { handle: database, migrate: true });
      const dave = await createAccount(opened.services.db, opened.services.hasher, { username: 'dave', password: 'dave password' });
      await enrolTotp(opened.services, dave.id);
      await createAccount(opened.services.db, opened.services.hasher, { username: 'erin', password: 'erin password' });
    });
    afterAll(async () => {
      await opened?.close();
      await database?.close();
    });

    test('global policy: defaults, set from YAML, versions, history, audit', async () => {
      const before = await run('policy', 'get', '--json');
      expect(JSON.parse(before.out)).toMatchObject({ scope: 'global', version: null, document: { mfa: 'optional' } });
      const set = await run('policy', 'set', '--file', file('g.yaml', 'mfa: required\ntrustedDevices:\n  enabled: true\n  days: 14\n'));
      expect(set).toMatchObject({ code: 0 });
      expect(set.out).toContain('version 1');
      await run('policy', 'set', '--file', file('g2.json', '{"mfa":"optional","minLevel":1}'));
      const now = JSON.parse((await run('policy', 'get', '--json')).out);
      expect(now).toMatchObject({ version: 2, document: { mfa: 'optional', trustedDevices: { enabled: false } } });
      const history = JSON.parse((await run('policy', 'history', '--json')).out) as Array<{ version: number; actor: string }>;
      expect(history.map((h) => h.version)).toEqual([2, 1]);
      expect(history[0]!.actor).toBe('admin:test');
      expect((await listAudit(opened.services.db, { type: 'policy.changed' })).length).toBe(2);
    });

    test('a bad document is refused with the path of the bad field, and nothing is stored', async () => {
      const bad = await run(
        'policy',
        'set',
        '--file',
        file('bad.yaml', 'mfa: required\nthrottle:\n  perAccountDay:\n    points: 500\n    windowSeconds: 86400\n'),
      );
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('throttle.perAccountDay');
      const unknownField = await run('policy', 'set', '--file', file('bad2.yaml', 'mfa: sometimes\n'));
      expect(unknownField.err).toContain('mfa');
      const unknownFactor = await run('policy', 'set', '--file', file('bad3.yaml', 'factors: [carrier-pigeon]\n'));
      expect(unknownFactor.err).toContain('carrier-pigeon');
      expect(JSON.parse((await run('policy', 'get', '--json')).out).version).toBe(2);
    });

    test('group policy and explain: the strictest wins, and every rule says where it came from', async () => {
      await run('group', 'add', 'finance');
      await run('group', 'members', 'add', 'finance', 'erin');
      expect((await run('policy', 'set', '--group', 'finance', '--file', file('f.yaml', 'level: 2\nenrollmentDeadline:\n  days: 7\n'))).code).toBe(0);
      await run('client', 'add', 'payroll', '--redirect-uri', 'https://payroll.example.test/cb', '--mfa', 'required', '--max-auth-age', '3600', '--json');
      const explained = await run('policy', 'explain', '--user', 'erin', '--client', 'payroll');
      expect(explained.code).toBe(0);
      expect(explained.out).toContain('enrol first (required)');
      expect(explained.out).toContain('[group finance]');
      expect(explained.out).toContain('[client payroll] MFA required');
      expect(explained.out).toContain(
        '[client payroll] maximum authentication age 3600s (a request cannot loosen it): the authentication is 0s old, recent enough',
      );
      const json = JSON.parse((await run('policy', 'explain', '--user', 'dave', '--client', 'payroll', '--acr-values', 'urn:twofold:acr:2', '--json')).out);
      expect(json.decision).toMatchObject({ type: 'step_up', target: 2, factors: ['totp'] });
    });

    test('explain --max-age feeds the decision like a request: a session older than it signs in again', async () => {
      const dave = await opened.services.db.selectFrom('accounts').select('id').where('username', '=', 'dave').executeTakeFirstOrThrow();
      await run('client', 'add', 'reports', '--redirect-uri', 'https://reports.example.test/cb', '--json');
      const now = Math.floor(Date.now() / 1000);
      const totp = (await opened.services.factors.store.list(dave.id, 'totp'))[0]!;
      // A session that proved the password two hours ago and TOTP 100 minutes ago.
      await saveSessionEvidence(
        opened.services.db,
        'explain-session',
        dave.id,
        [PASSWORD_EVIDENCE(now - 7200), { factor: 'totp', credentialId: totp.id, kinds: ['have'], amr: ['otp'], phishingResistant: false, at: now - 6000 }],
        3600,
        now,
      );
      const session = JSON.parse((await run('policy', 'explain', '--user', 'dave', '--client', 'reports', '--session', '--json')).out);
      expect(session.decision).toMatchObject({ type: 'satisfied', level: 2 });
      const recent = JSON.parse((await run('policy', 'explain', '--user', 'dave', '--client', 'reports', '--session', '--max-age', '7000', '--json')).out);
      expect(recent.decision).toMatchObject({ type: 'satisfied', level: 2 });
      expect(recent.decision.trace[0]).toEqual({
        source: 'request',
        rule: expect.stringMatching(/^max_age 7000: the authentication is 600\ds old, recent enough/),
      });
      expect((await run('policy', 'explain', '--user', 'dave', '--client', 'reports', '--session')).out).toMatch(
        /^dave signing in to reports with their latest session:\n/,
      );
      const old = await run('policy', 'explain', '--user', 'dave', '--client', 'reports', '--session', '--max-age', '60');
      expect(old.out).toMatch(/^dave signing in to reports with a password \(their latest session is too old\):\n/);
      expect(old.out).toContain('decision: step up from level 1 to 2 with one of: totp');
      expect(old.out).toMatch(/\[request\] max_age 60: the authentication is 600\ds old, so the user signs in again from the password/);
      expect((await run('policy', 'explain', '--user', 'dave', '--client', 'reports', '--max-age', 'soon')).err).toContain('--max-age');
    });

    test('explain --session for a user who never signed in: the header says there is no live session', async () => {
      const text = (await run('policy', 'explain', '--user', 'erin', '--client', 'payroll', '--session')).out;
      expect(text).toMatch(/^erin signing in to payroll with a password \(no live session\):\n/);
      expect(text).not.toContain('latest session:');
      expect(text).toContain('[session] no live session: a fresh password sign-in');
      // Without --session nothing is said about sessions.
      expect((await run('policy', 'explain', '--user', 'erin', '--client', 'payroll')).out).toMatch(/^erin signing in to payroll with a password:\n/);
    });

    test("explain credits each rule to its document: the app's default_acr_values, the app's allowed factors", async () => {
      await run(
        'client',
        'add',
        'ledger',
        '--redirect-uri',
        'https://ledger.example.test/cb',
        '--default-acr-values',
        'https://refeds.org/profile/mfa',
        '--factors',
        'totp,webauthn',
        '--json',
      );
      await createAccount(opened.services.db, opened.services.hasher, { username: 'gina', password: 'gina password' });
      const json = JSON.parse((await run('policy', 'explain', '--user', 'gina', '--client', 'ledger', '--json')).out);
      // Only the app's default asks for level 2 (MFA is optional and gina has no factor): an enrolment she may skip.
      expect(json.decision).toMatchObject({
        type: 'enroll',
        target: 2,
        optional: true,
        factors: ['totp', 'webauthn'],
        rule: 'client ledger (default_acr_values): acr_values (level 2)',
      });
      expect(json.decision.trace).toEqual(
        expect.arrayContaining([
          { source: 'client ledger', rule: 'allowed factors narrowed to: totp, webauthn' },
          { source: 'client ledger (default_acr_values)', rule: 'acr_values (level 2)' },
        ]),
      );
      // Values the request sends are the request's.
      const asked = JSON.parse((await run('policy', 'explain', '--user', 'gina', '--client', 'ledger', '--acr-values', 'urn:twofold:acr:2', '--json')).out);
      expect(asked.decision.trace).toContainEqual({ source: 'request', rule: 'acr_values (level 2)' });
    });

    test('client policies are versioned: policy history --client shows who changed what, when', async () => {
      await run('client', 'add', 'versioned', '--redirect-uri', 'https://versioned.example.test/cb', '--mfa', 'optional', '--json');
      await run('client', 'update', 'versioned', '--mfa', 'required', '--default-acr-values', 'https://refeds.org/profile/mfa');
      await run('client', 'update', 'versioned', '--clear-policy');
      const history = JSON.parse((await run('policy', 'history', '--client', 'versioned', '--json')).out) as Array<{
        version: number;
        actor: string;
        document: Record<string, unknown>;
        created_at: string;
      }>;
      expect(history.map((h) => [h.version, h.document])).toEqual([
        [3, {}],
        [2, { mfa: 'required', default_acr_values: ['https://refeds.org/profile/mfa'] }],
        [1, { mfa: 'optional' }],
      ]);
      expect(history.every((h) => h.actor === 'admin:test' && h.created_at)).toBe(true);
      const table = await run('policy', 'history', '--client', 'versioned');
      expect(table.out).toContain('"mfa":"required"');
      expect((await run('policy', 'history', '--client', 'nobody')).err).toContain('no client named nobody');
      expect((await run('policy', 'history', '--client', 'versioned', '--group', 'finance')).code).toBe(1);
    });

    test('client update: policy flags validated, stored, audited; --clear-policy', async () => {
      const bad = await run('client', 'update', 'payroll', '--min-acr', 'urn:example:gold');
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('--min-acr');
      const badFactor = await run('client', 'update', 'payroll', '--factors', 'totp,telepathy');
      expect(badFactor.err).toContain('telepathy');
      const ok = await run(
        'client',
        'update',
        'payroll',
        '--factors',
        'totp',
        '--trusted-devices',
        'deny',
        '--default-acr-values',
        'https://refeds.org/profile/mfa',
        '--json',
      );
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.out)).toMatchObject({
        policy: { mfa: 'required', maxAuthAge: 3600, factors: ['totp'], trustedDevices: 'deny' },
        default_acr_values: ['https://refeds.org/profile/mfa'],
      });
      const cleared = JSON.parse((await run('client', 'update', 'payroll', '--clear-policy', '--json')).out);
      expect(cleared.policy).toEqual({});
      expect(cleared.default_acr_values).toBeUndefined();
      expect((await listAudit(opened.services.db, { type: 'client.policy_changed' })).length).toBeGreaterThanOrEqual(3);
    });

    test('client update --first-party|--third-party stores no policy version; no flags at all change nothing (exit 2)', async () => {
      await run('client', 'add', 'party', '--redirect-uri', 'https://party.example.test/cb', '--mfa', 'required', '--json');
      const versions = async () => (JSON.parse((await run('policy', 'history', '--client', 'party', '--json')).out) as unknown[]).length;
      const client = (await opened.services.db.selectFrom('clients').select('client_id').where('name', '=', 'party').executeTakeFirstOrThrow()).client_id;
      const events = async (type: string) => (await listAudit(opened.services.db, { type, limit: 100 })).filter((e) => e.client_id === client).length;
      expect([await versions(), await events('client.policy_changed'), await events('client.updated')]).toEqual([1, 1, 0]);

      const first = await run('client', 'update', 'party', '--first-party');
      expect(first).toEqual({ code: 0, out: 'updated party: now first-party (no consent page)\n', err: '' });
      expect(JSON.parse((await run('client', 'show', 'party', '--json')).out)).toMatchObject({ first_party: true, policy: { mfa: 'required' } });
      expect([await versions(), await events('client.policy_changed'), await events('client.updated')]).toEqual([1, 1, 1]);

      // Again: nothing to change, nothing stored or audited.
      expect(await run('client', 'update', 'party', '--first-party')).toEqual({
        code: 0,
        out: 'nothing changed: party is already first-party (no consent page)\n',
        err: '',
      });
      const none = await run('client', 'update', 'party');
      expect(none).toMatchObject({ code: 2, out: '' });
      expect(none.err).toMatch(
        /^twofold: nothing changed: give policy flags, --clear-policy, --first-party, --third-party, or settings such as --pkce or --resource-server \(see `twofold client update --help`\)\n$/,
      );
      expect([await versions(), await events('client.policy_changed'), await events('client.updated')]).toEqual([1, 1, 1]);

      // A policy flag with a party flag: one version, both said.
      const both = await run('client', 'update', 'party', '--third-party', '--max-auth-age', '600');
      expect(both.out).toBe('updated party: policy {"mfa":"required","maxAuthAge":600} (version 2); now third-party (users are asked for consent)\n');
      expect([await versions(), await events('client.policy_changed'), await events('client.updated')]).toEqual([2, 2, 2]);
      expect((await run('client', 'update', 'party', '--first-party', '--third-party')).code).toBe(1);
    });

    test('client show after --clear-policy prints absent fields as -, never undefined', async () => {
      await run(
        'client',
        'add',
        'cleared',
        '--redirect-uri',
        'https://cleared.example.test/cb',
        '--default-acr-values',
        'https://refeds.org/profile/mfa',
        '--json',
      );
      expect((await run('client', 'show', 'cleared')).out).toMatch(/^default_acr_values\s+https:\/\/refeds\.org\/profile\/mfa$/m);
      await run('client', 'update', 'cleared', '--clear-policy');
      const shown = (await run('client', 'show', 'cleared')).out;
      expect(shown).not.toContain('undefined');
      expect(shown).toMatch(/^default_acr_values\s+-$/m);
      expect(shown).toMatch(/^post_logout_redirect_uris\s+-$/m);
      expect(shown).toMatch(/^policy\s+\{\}$/m);
      expect(shown).toMatch(/^redirect_uris\s+https:\/\/cleared\.example\.test\/cb$/m);
      // user show prints absent values the same way.
      expect((await run('user', 'show', 'erin')).out).toMatch(/^email\s+-$/m);
    });

    test('user devices --revoke-all with nothing to revoke says so and audits nothing', async () => {
      const gus = await createAccount(opened.services.db, opened.services.hasher, { username: 'gus', password: 'gus password' });
      const revoked = async () => (await listAudit(opened.services.db, { type: 'device.revoked', limit: 100 })).filter((e) => e.account_id === gus.id);
      expect(await run('user', 'devices', 'gus', '--revoke-all')).toEqual({ code: 0, out: 'no devices to revoke for gus\n', err: '' });
      expect(await revoked()).toEqual([]);
      await trustDevice(opened.services.db, gus.id, 'Firefox/140.0 (Windows)', 30, 'totp');
      expect((await run('user', 'devices', 'gus', '--revoke-all')).out).toBe('revoked 1 device(s) of gus\n');
      expect((await revoked()).map((e) => e.details)).toEqual([{ all: true, count: 1 }]);
      // Already revoked: nothing left to revoke.
      expect((await run('user', 'devices', 'gus', '--revoke-all')).out).toBe('no devices to revoke for gus\n');
      expect(await revoked()).toHaveLength(1);
      const table = (await run('user', 'devices', 'gus')).out.split('\n');
      expect(table[0]!.split(/\s+/)).toEqual(['ID', 'LABEL', 'STATE', 'FACTOR_ID', 'CREATED_AT', 'LAST_USED_AT', 'EXPIRES_AT', 'REVOKED_AT']);
    });

    test('user devices lists and revokes', async () => {
      const dave = await opened.services.db.selectFrom('accounts').selectAll().where('username', '=', 'dave').executeTakeFirstOrThrow();
      const device = await trustDevice(opened.services.db, dave.id, 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0', 30, 'totp');
      const list = JSON.parse((await run('user', 'devices', 'dave', '--json')).out) as Array<{ id: string; label: string; revoked_at: string | null }>;
      expect(list).toEqual([expect.objectContaining({ id: device.id, label: 'Chrome on Linux', factor_id: 'totp', revoked_at: null, state: 'live' })]);
      expect((await run('user', 'devices', 'dave', '--revoke', device.id)).code).toBe(0);
      expect((await run('user', 'devices', 'dave', '--revoke', device.id)).code).toBe(1);
      expect(JSON.parse((await run('user', 'devices', 'dave', '--json')).out)[0]).toMatchObject({ state: 'revoked', revoked_at: expect.any(String) });
    });

    test('user devices shows the real state: a device voided by a new factor or a password change is not live, nor an expired one', async () => {
      const frank = await createAccount(opened.services.db, opened.services.hasher, { username: 'frank', password: 'frank password' });
      await enrolTotp(opened.services, frank.id);
      const state = async () =>
        Object.fromEntries(
          (JSON.parse((await run('user', 'devices', 'frank', '--json')).out) as Array<{ id: string; state: string }>).map((d) => [d.id, d.state]),
        );
      const expired = await trustDevice(opened.services.db, frank.id, 'Firefox/140.0 (Windows)', 30, 'totp');
      await opened.services.db
        .updateTable('trusted_devices')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('id', '=', expired.id)
        .execute();
      const voided = await trustDevice(opened.services.db, frank.id, 'Chrome/156.0 (Linux)', 30, 'totp');
      expect(await state()).toEqual({ [expired.id]: 'expired', [voided.id]: 'live' });
      expect(await changePassword(opened.services, { accountId: frank.id, password: 'a brand new password', via: 'admin', actor: 'admin:test' })).toMatchObject(
        { ok: true },
      );
      expect(await state()).toEqual({ [expired.id]: 'expired', [voided.id]: 'void (factors or password changed)' });
      const table = await run('user', 'devices', 'frank');
      expect(table.out).toContain('void (factors or password changed)');
    });
  });
}
