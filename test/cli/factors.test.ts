/** The admin's factor commands: import a TOTP secret, list, rename, remove, reset; all audited. */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { cliRunner } from '../helpers/cli.ts';
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
      const imported = await run('user', 'totp', 'import', 'carol', '--secret', 'JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP', '--label', 'Old phone', '--json');
      expect(imported.code).toBe(0);
      const { id } = JSON.parse(imported.out) as { id: string };
      const listed = JSON.parse((await run('user', 'factors', 'carol', '--json')).out) as Array<{ id: string; factorId: string; label: string }>;
      expect(listed).toEqual([expect.objectContaining({ id, factorId: 'totp', label: 'Old phone' })]);
      expect((await run('user', 'factor', 'rename', 'carol', id, 'New phone')).code).toBe(0);
      expect((JSON.parse((await run('user', 'factors', 'carol', '--json')).out) as Array<{ label: string }>)[0]!.label).toBe('New phone');
      expect((await run('user', 'factor', 'remove', 'carol', id)).code).toBe(0);
      expect((await run('user', 'factor', 'remove', 'carol', id)).code).toBe(1);
      await run('user', 'totp', 'import', 'carol', '--secret', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
      const reset = await run('user', 'reset-factors', 'carol');
      expect(reset.out).toContain('removed 1');
      expect(JSON.parse((await run('user', 'factors', 'carol', '--json')).out)).toEqual([]);
      const types = (await listAudit(opened.services.db, { limit: 50 })).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['factor.imported', 'factor.renamed', 'factor.removed', 'factor.reset']));
    });

    test('the listing shows how many backup codes are left, in the table and in JSON', async () => {
      const dave = await createAccount(opened.services.db, opened.services.hasher, { username: 'dave', password: 'dave password' });
      await run('user', 'totp', 'import', 'dave', '--secret', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', '--label', 'Phone');
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
      const bad = await run('user', 'totp', 'import', 'carol', '--secret', 'not base32!');
      expect(bad.code).toBe(1);
      expect(bad.err.trim().split('\n')).toHaveLength(1);
      expect(bad.err).toContain('base32');
    });
  });
}
