/**
 * The admin's factor commands: which factors run (`twofold factors`); a user's
 * credentials: import one made elsewhere (through the factor's
 * importCredential), list, rename, remove, reset; all audited.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { cliRunner } from '../helpers/cli.ts';
import { runCli } from '../../src/cli/run.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';
import { enrolBackupCodes } from '../helpers/factors.ts';

for (const kind of DIALECTS) {
  describe(`twofold user factors on ${kind}`, () => {
    let database: TestDatabase;
    let opened: Opened;
    const run = cliRunner(() => opened.services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      opened = await openServices(testConfig(3999), { handle: database, migrate: true });
      await createAccount(opened.services.db, opened.services.hasher, { username: 'carol', password: 'carol password' });
    });
    afterAll(async () => {
      await opened?.close();
      await database?.close();
    });

    test('import, list, rename, remove and reset, each audited', async () => {
      const imported = await run(
        'user',
        'factor',
        'import',
        'carol',
        'totp',
        'secret=JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP',
        '--label',
        'Old phone',
        '--json',
      );
      expect(imported.code).toBe(0);
      const { id } = JSON.parse(imported.out) as { id: string };
      const listed = JSON.parse((await run('user', 'factors', 'carol', '--json')).out) as Array<{ id: string; factorId: string; label: string }>;
      expect(listed).toEqual([expect.objectContaining({ id, factorId: 'totp', label: 'Old phone' })]);
      expect((await run('user', 'factor', 'rename', 'carol', id, 'New phone')).code).toBe(0);
      expect((JSON.parse((await run('user', 'factors', 'carol', '--json')).out) as Array<{ label: string }>)[0]!.label).toBe('New phone');
      expect((await run('user', 'factor', 'remove', 'carol', id)).code).toBe(0);
      expect((await run('user', 'factor', 'remove', 'carol', id)).code).toBe(1);
      await run('user', 'factor', 'import', 'carol', 'totp', 'secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
      const reset = await run('user', 'reset-factors', 'carol');
      expect(reset.out).toContain('removed 1');
      expect(JSON.parse((await run('user', 'factors', 'carol', '--json')).out)).toEqual([]);
      const types = (await listAudit(opened.services.db, { limit: 50 })).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['factor.imported', 'factor.renamed', 'factor.removed', 'factor.reset']));
    });

    test('the listing shows how many backup codes are left, in the table and in JSON', async () => {
      const dave = await createAccount(opened.services.db, opened.services.hasher, { username: 'dave', password: 'dave password' });
      await run('user', 'factor', 'import', 'dave', 'totp', 'secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', '--label', 'Phone');
      const codes = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
      const setId = await enrolBackupCodes(opened.services, dave.id, codes);
      expect(await opened.services.factors.store.consumeOneTimeCode(setId, codes[1]!)).toBe(true);

      const listed = JSON.parse((await run('user', 'factors', 'dave', '--json')).out) as Array<Record<string, unknown>>;
      expect(listed).toEqual([
        expect.objectContaining({ factorId: 'totp', label: 'Phone' }),
        expect.objectContaining({ id: setId, factorId: 'backup-codes', remaining: 2 }),
      ]);
      // A factor without one-time codes has no count at all (not 0).
      expect(listed[0]).not.toHaveProperty('remaining');

      const table = (await run('user', 'factors', 'dave')).out.trimEnd().split('\n');
      // Headers are upper snake case like every other table (FACTOR_ID, as in `user devices`).
      expect(table[0]!.split(/\s+/)).toEqual(['ID', 'FACTOR_ID', 'LABEL', 'CREATED_AT', 'LAST_USED_AT', 'REMAINING']);
      const setRow = table.find((line) => line.startsWith(setId))!.split(/\s+/);
      expect(setRow[1]).toBe('backup-codes');
      expect(setRow.at(-1)).toBe('2');
      const totpRow = table.find((line) => line.includes('totp'))!.split(/\s+/);
      expect(totpRow).toHaveLength(4); // id, factor, label, created; never used, no count
    });

    test('a malformed secret is refused in one line', async () => {
      const bad = await run('user', 'factor', 'import', 'carol', 'totp', 'secret=not base32!');
      expect(bad.code).toBe(1);
      expect(bad.err).toBe('twofold: secret: a base32 key of at least 80 bits (16 characters)\n');
    });

    test('import takes what the factor says it takes: its parameters, its default name, the secret from standard input', async () => {
      const erin = await createAccount(opened.services.db, opened.services.hasher, { username: 'erin', password: 'erin password' });
      const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ';
      let out = '';
      const code = await runCli(
        ['user', 'factor', 'import', 'erin', 'totp', 'algorithm=sha256', 'digits=8', 'period=60', '--secret-stdin', '--json'],
        { out: (t) => (out += t), err: () => {}, stdin: `${secret}\n` },
        opened.services,
        'admin:test',
      );
      expect(code).toBe(0);
      const { id, label } = JSON.parse(out) as { id: string; label: string };
      // No name given: the factor's own, in the default language.
      expect(label).toBe('Authenticator app');
      const [stored] = await opened.services.factors.store.list(erin.id, 'totp');
      expect(stored).toEqual(expect.objectContaining({ id, secret, data: { algorithm: 'SHA256', digits: 8, period: 60 }, counter: null }));
      const audit = (await listAudit(opened.services.db, { limit: 50 })).find(
        (e) => e.type === 'factor.imported' && (e.details as { credential?: string }).credential === id,
      );
      expect(audit).toEqual(expect.objectContaining({ actor: 'admin:test', account_id: erin.id }));
      expect(JSON.stringify(audit)).not.toContain(secret);
    });

    test('import refuses, in one line each, what the factor does not take', async () => {
      const refused = async (...argv: string[]) => {
        const r = await run('user', 'factor', 'import', 'carol', ...argv);
        expect(r.code).toBe(1);
        return r.err;
      };
      expect(await refused('totp', 'digits=7', 'secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP')).toBe('twofold: digits: 6 or 8\n');
      expect(await refused('totp', 'colour=blue', 'secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP')).toBe(
        'twofold: factor totp takes no colour (it takes secret, algorithm, digits, period)\n',
      );
      expect(await refused('totp', 'digits=6')).toBe('twofold: factor totp needs secret\n');
      expect(await refused('totp', 'JBSWY3DPEHPK3PXP')).toBe('twofold: "JBSWY3DPEHPK3PXP": give each field as name=value\n');
      expect(await refused('webauthn', 'key=x')).toBe('twofold: factor webauthn cannot import a credential (factors that can: totp)\n');
      expect(await refused('nope', 'key=x')).toMatch(/^twofold: no factor nope \(FACTORS loads: totp, webauthn, /);
      expect(await refused('webauthn', '--secret-stdin')).toBe('twofold: --secret-stdin: factor webauthn imports no secret field\n');
    });

    test('`twofold factors` lists what runs: on or off and why, the settings (secrets redacted), what import takes', async () => {
      const listed = JSON.parse((await run('factors', '--json')).out) as Array<{
        id: string;
        on: boolean;
        reason?: string;
        settings: unknown;
        import?: Record<string, unknown>;
      }>;
      expect(listed.map((f) => f.id)).toEqual(['totp', 'webauthn', 'passkey', 'backup-codes', 'email-code', 'sms-code']);
      expect(listed[0]).toEqual({
        id: 'totp',
        on: true,
        settings: { algorithm: 'SHA1', digits: 6, period: 30, window: 1 },
        import: expect.objectContaining({ secret: expect.objectContaining({ required: true, secret: true }) }),
      });
      expect(listed.find((f) => f.id === 'sms-code')).toEqual(
        expect.objectContaining({ on: false, reason: 'no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET' }),
      );
      const text = (await run('factors')).out;
      expect(text).toContain('sms-code  off: no SMS gateway: set SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET\n');
      expect(text).toContain(
        'totp  on\n  settings  {"algorithm":"SHA1","digits":6,"period":30,"window":1}\n  import    secret (required) (secret: --secret-stdin): ',
      );
    });
  });
}

describe('twofold factors with a factor from outside the tree', () => {
  let database: TestDatabase;
  let opened: Opened;
  const run = cliRunner(() => opened.services);
  const pepper = 'pepper-0123456789abcdef';

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    opened = await openServices(testConfig(3998, { FACTORS: './test/fixtures/factor-pin,totp', FACTOR_SETTINGS: JSON.stringify({ pin: { pepper } }) }), {
      handle: database,
      migrate: true,
    });
  });
  afterAll(async () => {
    await opened?.close();
    await database?.close();
  });

  test('lists only what FACTORS loads, and never a secret setting', async () => {
    const out = (await run('factors')).out;
    expect(out).toBe('pin  on\n  settings  {"length":6,"pepper":"[redacted]"}\ntotp  on\n' + out.slice(out.indexOf('  settings  {"algorithm"')));
    expect((await run('factors', '--json')).out).not.toContain(pepper);
  });
});
