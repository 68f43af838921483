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
      const bad = await run('policy', 'set', '--file', file('bad.yaml', 'mfa: required\nthrottle:\n  perAccountDay:\n    points: 500\n    windowSeconds: 86400\n'));
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
      expect(explained.out).toContain('sessions older than 3600s');
      const json = JSON.parse((await run('policy', 'explain', '--user', 'dave', '--client', 'payroll', '--acr-values', 'urn:twofold:acr:2', '--json')).out);
      expect(json.decision).toMatchObject({ type: 'step_up', target: 2, factors: ['totp'] });
    });

    test('client update: policy flags validated, stored, audited; --clear-policy', async () => {
      const bad = await run('client', 'update', 'payroll', '--min-acr', 'urn:example:gold');
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('--min-acr');
      const badFactor = await run('client', 'update', 'payroll', '--factors', 'totp,telepathy');
      expect(badFactor.err).toContain('telepathy');
      const ok = await run('client', 'update', 'payroll', '--factors', 'totp', '--trusted-devices', 'deny', '--default-acr-values', 'https://refeds.org/profile/mfa', '--json');
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.out)).toMatchObject({ policy: { mfa: 'required', maxAuthAge: 3600, factors: ['totp'], trustedDevices: 'deny' }, default_acr_values: ['https://refeds.org/profile/mfa'] });
      const cleared = JSON.parse((await run('client', 'update', 'payroll', '--clear-policy', '--json')).out);
      expect(cleared.policy).toEqual({});
      expect(cleared.default_acr_values).toBeUndefined();
      expect((await listAudit(opened.services.db, { type: 'client.policy_changed' })).length).toBeGreaterThanOrEqual(3);
    });

    test('user devices lists and revokes', async () => {
      const dave = (await opened.services.db.selectFrom('accounts').selectAll().where('username', '=', 'dave').executeTakeFirstOrThrow());
      const device = await trustDevice(opened.services.db, dave.id, 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0', 30);
      const list = JSON.parse((await run('user', 'devices', 'dave', '--json')).out) as Array<{ id: string; label: string; revoked_at: string | null }>;
      expect(list).toEqual([expect.objectContaining({ id: device.id, label: 'Chrome on Linux', revoked_at: null })]);
      expect((await run('user', 'devices', 'dave', '--revoke', device.id)).code).toBe(0);
      expect((await run('user', 'devices', 'dave', '--revoke', device.id)).code).toBe(1);
      expect(JSON.parse((await run('user', 'devices', 'dave', '--json')).out)[0].revoked_at).not.toBeNull();
    });
  });
}
