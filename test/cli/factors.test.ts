/** The admin's factor commands: import a TOTP secret, list, rename, remove, reset; all audited. */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';

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

    test('a malformed secret is refused in one line', async () => {
      const bad = await run('user', 'totp', 'import', 'carol', '--secret', 'not base32!');
      expect(bad.code).toBe(1);
      expect(bad.err.trim().split('\n')).toHaveLength(1);
      expect(bad.err).toContain('base32');
    });
  });
}
