/**
 * `twofold user factor remove` refuses to take away the last factor a policy
 * needs (enrol another first, or --force, audited), and never leaves backup
 * codes as an account's only factor (they go with the last other one), on
 * both databases.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { enrolBackupCodes, enrolTotp } from '../helpers/factors.ts';
import { newSeedKey, seedWebAuthnCredential } from '../helpers/webauthn.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { runCli } from '../../src/cli/run.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { groupScope, savePolicy } from '../../src/policy/store.ts';
import { checkRemoval } from '../../src/mfa/removal.ts';
import { listAudit } from '../../src/security/audit.ts';

for (const kind of DIALECTS) {
  describe(`removing the last factor a policy needs, on ${kind}`, () => {
    let database: TestDatabase;
    let required: Opened; // MFA=required
    let optional: Opened; // MFA=optional, same database
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      required = await openServices(testConfig(3998, { MFA: 'required' }), { handle: database, migrate: true });
      optional = await openServices(testConfig(3998, { MFA: 'optional' }), { handle: database, migrate: false });
    });
    afterAll(async () => {
      await required?.close();
      await optional?.close();
      await database?.close();
    });

    async function run(opened: Opened, ...argv: string[]) {
      let out = '';
      let err = '';
      const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) }, opened.services, 'admin:test');
      return { code, out, err };
    }

    async function user(options: { password?: boolean } = {}) {
      const username = `removal${++users}`;
      const account = await createAccount(required.services.db, required.services.hasher, {
        username,
        ...(options.password === false ? {} : { password: 'a long password' }),
      });
      return { account, username };
    }

    const credentialIds = async (accountId: string) => (await required.services.factors.store.list(accountId)).map((c) => c.id);

    test('MFA=required: the only second factor cannot be removed; with another one enrolled it can', async () => {
      const { account, username } = await user();
      await enrolTotp(required.services, account.id);
      const [totp] = await credentialIds(account.id);
      const refused = await run(required, 'user', 'factor', 'remove', username, totp!);
      expect(refused).toMatchObject({ code: 1 });
      expect(refused.err).toMatch(/^twofold: refused: the policy requires level 2 .*enrol another factor first, or pass --force\n$/);
      expect(await credentialIds(account.id)).toEqual([totp]);

      const key = await seedWebAuthnCredential(required.services, account.id, newSeedKey());
      expect((await run(required, 'user', 'factor', 'remove', username, totp!)).code).toBe(0);
      // Now the key is the last one.
      expect((await run(required, 'user', 'factor', 'remove', username, key)).code).toBe(1);
      expect(await credentialIds(account.id)).toEqual([key]);
    });

    test('--force removes it anyway and says so in the audit log', async () => {
      const { account, username } = await user();
      const key = await seedWebAuthnCredential(required.services, account.id, newSeedKey());
      const forced = await run(required, 'user', 'factor', 'remove', username, key, '--force');
      expect(forced.code).toBe(0);
      expect(forced.out).toContain('forced');
      expect(await credentialIds(account.id)).toEqual([]);
      const types = (await listAudit(required.services.db, { accountId: account.id })).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['factor.removed', 'factor.removal_forced']));
    });

    test('MFA=optional: the only factor may go (the account signs in with its password again)', async () => {
      const { account, username } = await user();
      await enrolTotp(optional.services, account.id);
      const [totp] = await credentialIds(account.id);
      expect((await run(optional, 'user', 'factor', 'remove', username, totp!)).code).toBe(0);
    });

    test('a group requiring level 3: the phishing-resistant key stays while TOTP cannot replace it; TOTP may go', async () => {
      const { account } = await user();
      const group = await createGroup(required.services.db, `admins${users}`);
      await addMember(required.services.db, group.id, account.id);
      await savePolicy(required.services.db, groupScope(group.id), { level: 3 }, 'admin:test');
      await enrolTotp(optional.services, account.id);
      const key = await seedWebAuthnCredential(optional.services, account.id, newSeedKey());
      const [totp] = (await optional.services.factors.store.list(account.id, 'totp')).map((c) => c.id);
      expect(await checkRemoval(optional.services, account.id, [key])).toEqual({
        ok: false,
        code: 'policy',
        level: 3,
        rule: expect.stringContaining('level 3'),
        reason: expect.stringContaining('level 3'),
        recovery: [],
      });
      expect(await checkRemoval(optional.services, account.id, [totp!])).toEqual({ ok: true, recovery: [] });
      // A second key makes either key removable.
      const spare = await seedWebAuthnCredential(optional.services, account.id, newSeedKey());
      expect(await checkRemoval(optional.services, account.id, [key])).toEqual({ ok: true, recovery: [] });
      expect(await checkRemoval(optional.services, account.id, [key, spare])).toMatchObject({ ok: false });
    });

    test('the last factor takes the backup codes with it (MFA=optional), audited; a second factor keeps them', async () => {
      const { account, username } = await user();
      await enrolTotp(optional.services, account.id);
      const codes = await enrolBackupCodes(optional.services, account.id, ['aaaa-bbbb-cccc-dddd']);
      const key = await seedWebAuthnCredential(optional.services, account.id, newSeedKey());
      const [totp] = (await optional.services.factors.store.list(account.id, 'totp')).map((c) => c.id);
      // With the key left, the codes stay.
      expect(await checkRemoval(optional.services, account.id, [totp!])).toEqual({ ok: true, recovery: [] });
      expect((await run(optional, 'user', 'factor', 'remove', username, totp!)).code).toBe(0);
      expect((await credentialIds(account.id)).sort()).toEqual([codes, key].sort());
      // The key is the last factor that is not recovery-only: the codes go with it.
      expect(await checkRemoval(optional.services, account.id, [key])).toEqual({ ok: true, recovery: [codes] });
      const r = await run(optional, 'user', 'factor', 'remove', username, key);
      expect(r.code).toBe(0);
      expect(r.out).toContain('removed the backup codes too');
      expect(await credentialIds(account.id)).toEqual([]);
      const events = await listAudit(optional.services.db, { accountId: account.id });
      expect(events.find((e) => e.type === 'factor.recovery_removed')).toMatchObject({ actor: 'admin:test' });
    });

    test('MFA=required: removing the last factor beside backup codes is refused; --force removes both', async () => {
      const { account, username } = await user();
      await enrolTotp(required.services, account.id);
      const codes = await enrolBackupCodes(required.services, account.id, ['aaaa-bbbb-cccc-eeee']);
      const [totp] = (await required.services.factors.store.list(account.id, 'totp')).map((c) => c.id);
      expect(await checkRemoval(required.services, account.id, [totp!])).toMatchObject({ ok: false, recovery: [codes] });
      expect((await run(required, 'user', 'factor', 'remove', username, totp!)).code).toBe(1);
      expect((await credentialIds(account.id)).sort()).toEqual([codes, totp].sort());
      expect((await run(required, 'user', 'factor', 'remove', username, totp!, '--force')).code).toBe(0);
      expect(await credentialIds(account.id)).toEqual([]);
    });

    test('an account without a password keeps its last passkey', async () => {
      const { account } = await user({ password: false });
      const passkey = await seedWebAuthnCredential(optional.services, account.id, newSeedKey(), { factorId: 'passkey' });
      expect(await checkRemoval(optional.services, account.id, [passkey])).toEqual({
        ok: false,
        code: 'last_sign_in',
        reason: expect.stringContaining('no password'),
        recovery: [],
      });
      const second = await seedWebAuthnCredential(optional.services, account.id, newSeedKey(), { factorId: 'webauthn' });
      // A key registered as a second factor also signs in as a passkey (the passkey factor accepts it).
      expect(await checkRemoval(optional.services, account.id, [passkey])).toEqual({ ok: true, recovery: [] });
      expect(await checkRemoval(optional.services, account.id, [passkey, second])).toMatchObject({ ok: false });
    });
  });
}
