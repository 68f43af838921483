/**
 * The password rules hold in the `twofold` command: `user add` (a new
 * account's password is its only factor: 15 characters) and `user
 * set-password` (8 once the account has a second factor), refusing a common
 * password, one with the username, the email or the product's name, each with
 * the catalogue's words on one line, exit 1, nothing stored.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { enrolTotp } from '../helpers/factors.ts';
import { runCli } from '../../src/cli/run.ts';
import type { Services } from '../../src/services.ts';
import { authenticatePassword, findAccountByLogin } from '../../src/accounts/accounts.ts';
import { listAudit } from '../../src/security/audit.ts';

for (const kind of DIALECTS) {
  describe(`the password rules in the twofold command, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { BRAND_NAME: 'Acme Login' });
      services = server.opened.services;
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function run(argv: string[], stdin?: string) {
      let stdout = '';
      let stderr = '';
      const code = await runCli(argv, { out: (t) => (stdout += t), err: (t) => (stderr += t), stdin }, services, 'admin:test');
      return { code, stdout, stderr };
    }

    const refused = (result: { code: number; stdout: string; stderr: string }, words: RegExp) => {
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^twofold: password refused: [^\n]+\n$/);
      expect(result.stderr).toMatch(words);
    };

    test("user add: 15 characters for a password-only account, then the blocklist and the account's own words", async () => {
      const add = (password: string) => run(['user', 'add', 'maximilian', '--email', 'max.power@example.test', '--password-stdin'], `${password}\n`);
      refused(await add('fourteen chars'), /Use at least 15 characters: this password is the only way to sign in/);
      refused(await add('passwordpassword'), /too common/);
      refused(await add('Maximilian rides again'), /must not contain your username/);
      refused(await add('call max.power any time'), /must not contain your email address/);
      refused(await add('acme login forever and ever'), /must not contain the name Acme Login/);
      expect(await findAccountByLogin(services.db, 'maximilian')).toBeUndefined();
      expect(await listAudit(services.db, { type: 'account.created' })).toEqual([]);

      const ok = await add('fifteen chars ok');
      expect(ok).toMatchObject({ code: 0, stderr: '' });
      expect((await authenticatePassword(services.db, services.hasher, 'maximilian', 'fifteen chars ok')).ok).toBe(true);
    });

    test('user set-password: 15 while the password is the only factor, 8 once a second factor is enrolled', async () => {
      await run(['user', 'add', 'nora'], undefined);
      const set = (password: string) => run(['user', 'set-password', 'nora', '--password-stdin'], `${password}\n`);
      refused(await set('short but ok'), /Use at least 15 characters/);
      const nora = (await findAccountByLogin(services.db, 'nora'))!;
      expect(nora.password_hash).toBeNull();

      await enrolTotp(services, nora.id);
      expect(await set('short ok')).toMatchObject({ code: 0 });
      refused(await set('iloveyou'), /too common/);
      refused(await set('seven c'), /Use at least 8 characters\./);
      expect((await authenticatePassword(services.db, services.hasher, 'nora', 'short ok')).ok).toBe(true);
    });

    test('the password is stored in NFKC: typed in full-width letters, it signs in typed plainly', async () => {
      expect(await run(['user', 'add', 'olga', '--password-stdin'], 'ｗｉｄｅ ｌｅｔｔｅｒｓ ｈｅｒｅ\n')).toMatchObject({ code: 0 });
      expect((await authenticatePassword(services.db, services.hasher, 'olga', 'wide letters here')).ok).toBe(true);
    });
  });
}
