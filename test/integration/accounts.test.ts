/**
 * Proves accounts and groups on every database in the matrix: creation,
 * case-insensitive uniqueness of usernames and emails, login by username or
 * email, one indistinguishable failure for unknown / wrong / disabled /
 * passwordless accounts, the argon2id parameter upgrade on a successful login,
 * and group membership.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import {
  AccountConflictError,
  authenticatePassword,
  createAccount,
  findAccountById,
  findAccountByLogin,
  removeAccount,
  setDisabled,
} from '../../src/accounts/accounts.ts';
import { changePassword } from '../../src/accounts/password-change.ts';
import { PasswordHasher } from '../../src/accounts/password-hasher.ts';
import { FactorRegistry } from '../../factors/registry.ts';
import { Catalogue } from '../../src/i18n/catalogue.ts';
import { createMessaging } from '../../src/messaging/index.ts';
import { testConfig } from '../helpers/server.ts';
import {
  GroupConflictError,
  addMember,
  createGroup,
  findGroup,
  groupsOf,
  listGroups,
  membersOf,
  removeGroup,
  removeMember,
} from '../../src/accounts/groups.ts';

const gate = { concurrency: 4, queueLimit: 64 };
const hasher = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, ...gate });
const FAILURE = { ok: false, reason: 'invalid_credentials' };

for (const kind of DIALECTS) {
  describe(`accounts on ${kind}`, () => {
    let database: TestDatabase;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
    });

    afterAll(async () => {
      await database?.close();
    });

    async function storedHash(id: string): Promise<string | null> {
      return (await findAccountById(database.db, id))!.password_hash;
    }

    test('create stores a random id, the profile and an argon2id hash (never the password)', async () => {
      const account = await createAccount(database.db, hasher, {
        username: 'alice',
        email: 'Alice@Example.test',
        emailVerified: true,
        displayName: 'Alice Liddell',
        password: 'correct horse battery',
      });
      expect(account.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(account).toMatchObject({ username: 'alice', email: 'Alice@Example.test', email_verified: true, display_name: 'Alice Liddell', disabled: false });
      expect(account.password_hash).toMatch(/^\$argon2id\$v=19\$m=8192,t=1,p=1\$/);
      expect(account.password_hash).not.toContain('correct horse battery');
      expect(account.password_changed_at).toBeInstanceOf(Date);
      expect(await findAccountById(database.db, account.id)).toMatchObject({ username: 'alice' });

      const other = await createAccount(database.db, hasher, { username: 'no-password' });
      expect(other.password_hash).toBeNull();
      expect(other.password_changed_at).toBeNull();
      expect(other.id).not.toBe(account.id);
    });

    test('invalid input is refused before touching the database', async () => {
      await expect(createAccount(database.db, hasher, { username: ' ', password: 'long enough' })).rejects.toThrow();
      await expect(createAccount(database.db, hasher, { username: '-dash', password: 'long enough' })).rejects.toThrow();
      await expect(createAccount(database.db, hasher, { username: 'shortpw', password: 'short' })).rejects.toThrow();
      await expect(createAccount(database.db, hasher, { username: 'bademail', email: 'not-an-email' })).rejects.toThrow();
      expect(await findAccountByLogin(database.db, 'shortpw')).toBeUndefined();
    });

    test('a duplicate username, in any case, is an AccountConflictError', async () => {
      await createAccount(database.db, hasher, { username: 'Carol' });
      await expect(createAccount(database.db, hasher, { username: 'carol' })).rejects.toBeInstanceOf(AccountConflictError);
      await expect(createAccount(database.db, hasher, { username: 'CAROL' })).rejects.toBeInstanceOf(AccountConflictError);
    });

    test('a duplicate email, in any case, is an AccountConflictError', async () => {
      await createAccount(database.db, hasher, { username: 'dave', email: 'dave@example.test' });
      await expect(createAccount(database.db, hasher, { username: 'dave2', email: 'DAVE@example.TEST' })).rejects.toBeInstanceOf(AccountConflictError);
      // Accounts without an email do not collide with each other.
      await createAccount(database.db, hasher, { username: 'noemail1' });
      await createAccount(database.db, hasher, { username: 'noemail2' });
    });

    test('simultaneous creation of one username yields one account and conflicts', async () => {
      const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => createAccount(database.db, hasher, { username: i % 2 ? 'race' : 'RACE' })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AccountConflictError);
    });

    test('login by username or email, case-insensitively', async () => {
      const alice = (await findAccountByLogin(database.db, 'alice'))!;
      expect((await findAccountByLogin(database.db, '  ALICE '))?.id).toBe(alice.id);
      expect((await findAccountByLogin(database.db, 'alice@example.test'))?.id).toBe(alice.id);
      expect((await findAccountByLogin(database.db, 'ALICE@EXAMPLE.TEST'))?.id).toBe(alice.id);
      expect(await findAccountByLogin(database.db, '')).toBeUndefined();
      expect(await findAccountByLogin(database.db, 'nobody')).toBeUndefined();

      expect(await authenticatePassword(database.db, hasher, 'alice@example.test', 'correct horse battery')).toMatchObject({
        ok: true,
        account: { id: alice.id },
      });
      expect(await authenticatePassword(database.db, hasher, 'Alice', 'correct horse battery')).toMatchObject({ ok: true, account: { id: alice.id } });
    });

    test("a username that looks like another account's email signs in as the username's owner", async () => {
      const owner = await createAccount(database.db, hasher, { username: 'erin@example.test', password: 'erin username pw' });
      await createAccount(database.db, hasher, { username: 'frank', email: 'erin@example.test', password: 'frank email pw' });
      expect((await findAccountByLogin(database.db, 'ERIN@example.test'))?.id).toBe(owner.id);
    });

    test('unknown, wrong, disabled and passwordless all fail identically', async () => {
      const bob = await createAccount(database.db, hasher, { username: 'bob', password: 'bob password 1' });
      await setDisabled(database.db, bob.id, true);

      const answers = [
        await authenticatePassword(database.db, hasher, 'nobody', 'whatever pass'),
        await authenticatePassword(database.db, hasher, 'alice', 'wrong password'),
        await authenticatePassword(database.db, hasher, 'bob', 'bob password 1'),
        await authenticatePassword(database.db, hasher, 'no-password', 'anything at all'),
        await authenticatePassword(database.db, hasher, 'nobody@example.test', ''),
      ];
      for (const answer of answers) expect(answer).toEqual(FAILURE);

      // Enabled again, the same password works: disabled was the only reason.
      await setDisabled(database.db, bob.id, false);
      expect(await authenticatePassword(database.db, hasher, 'bob', 'bob password 1')).toMatchObject({ ok: true });
    });

    test('unknown, wrong, disabled and passwordless each cost exactly one argon2 verification and no hash', async () => {
      const counted = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, ...gate });
      await createAccount(database.db, counted, { username: 'work-carol', password: 'carol password 1' });
      const dave = await createAccount(database.db, counted, { username: 'work-dave', password: 'dave password 1' });
      await setDisabled(database.db, dave.id, true);
      await createAccount(database.db, counted, { username: 'work-erin' });
      // What the provider does at start-up: the dummy hash exists before the first unknown login.
      await counted.prepare();
      const paths: Array<[string, string, string]> = [
        ['unknown', 'nobody-here', 'whatever pass'],
        ['unknown email', 'nobody@example.test', 'whatever pass'],
        ['wrong password', 'work-carol', 'wrong password'],
        ['disabled, right password', 'work-dave', 'dave password 1'],
        ['disabled, wrong password', 'work-dave', 'wrong password'],
        ['no password', 'work-erin', 'anything at all'],
      ];
      for (const [path, login, password] of paths) {
        const before = counted.work;
        expect(await authenticatePassword(database.db, counted, login, password)).toEqual(FAILURE);
        expect({ path, ...counted.work }).toEqual({ path, hashes: before.hashes, verifications: before.verifications + 1 });
      }
      // The success path does the same verification (and nothing more while the parameters are current).
      const before = counted.work;
      expect(await authenticatePassword(database.db, counted, 'work-carol', 'carol password 1')).toMatchObject({ ok: true });
      expect(counted.work).toEqual({ hashes: before.hashes, verifications: before.verifications + 1 });
    });

    test('without prepare() the first unknown login would also pay for the dummy hash (why the provider prepares at start)', async () => {
      const lazy = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, ...gate });
      expect(await authenticatePassword(database.db, lazy, 'nobody-at-all', 'whatever pass')).toEqual(FAILURE);
      expect(lazy.work).toEqual({ hashes: 1, verifications: 1 });
      expect(await authenticatePassword(database.db, lazy, 'nobody-at-all', 'whatever pass')).toEqual(FAILURE);
      expect(lazy.work).toEqual({ hashes: 1, verifications: 2 });
    });

    test('disabling an account removes its sessions and tokens', async () => {
      const gina = await createAccount(database.db, hasher, { username: 'gina', password: 'gina password' });
      await database.db
        .insertInto('oidc_payloads')
        .values([
          {
            kind: 'Session',
            id: 'h1.gina-session',
            payload: JSON.stringify({ accountId: gina.id }),
            grant_id: null,
            user_code: null,
            uid: 'gina-uid',
            expires_at: null,
          },
          {
            kind: 'Session',
            id: 'h1.other-session',
            payload: JSON.stringify({ accountId: 'someone-else' }),
            grant_id: null,
            user_code: null,
            uid: 'other-uid',
            expires_at: null,
          },
        ])
        .execute();
      await setDisabled(database.db, gina.id, true);
      const left = await database.db.selectFrom('oidc_payloads').select('id').where('id', 'in', ['h1.gina-session', 'h1.other-session']).execute();
      expect(left.map((r) => r.id)).toEqual(['h1.other-session']);
    });

    test('a login with new hash parameters upgrades the stored hash', async () => {
      const weak = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, ...gate });
      const strong = new PasswordHasher({ memoryCost: 9216, timeCost: 2, parallelism: 1, ...gate });
      const henry = await createAccount(database.db, weak, { username: 'henry', password: 'henry password' });
      const original = await storedHash(henry.id);
      expect(original).toMatch(/^\$argon2id\$v=19\$m=8192,t=1,p=1\$/);

      // A failed login changes nothing.
      expect(await authenticatePassword(database.db, strong, 'henry', 'not the password')).toEqual(FAILURE);
      expect(await storedHash(henry.id)).toBe(original);

      expect(await authenticatePassword(database.db, strong, 'henry', 'henry password')).toMatchObject({ ok: true });
      const upgraded = await storedHash(henry.id);
      expect(upgraded).toMatch(/^\$argon2id\$v=19\$m=9216,t=2,p=1\$/);
      expect(strong.needsRehash(upgraded!)).toBe(false);

      // The upgraded hash verifies; a further login with the same parameters leaves it alone.
      expect(await authenticatePassword(database.db, strong, 'henry', 'henry password')).toMatchObject({ ok: true });
      expect(await storedHash(henry.id)).toBe(upgraded);
      // The old parameters still verify the new hash (and would upgrade it back, which is the operator's choice).
      expect(await weak.verify(upgraded!, 'henry password')).toEqual({ ok: true, needsRehash: true });
    });

    test('changePassword replaces the hash and the old password stops working; a bad password or an unknown account is a value, nothing changed', async () => {
      const ivy = await createAccount(database.db, hasher, { username: 'ivy', password: 'first password' });
      const config = testConfig(3000);
      const services = {
        db: database.db,
        hasher,
        sessionsEnded: [],
        config,
        factors: { registry: new FactorRegistry() },
        messaging: createMessaging(config),
        catalogue: new Catalogue(),
      };
      expect(await changePassword(services, { accountId: ivy.id, password: 'second password', via: 'admin', actor: 'admin:test' })).toMatchObject({ ok: true });
      expect(await authenticatePassword(database.db, hasher, 'ivy', 'first password')).toEqual(FAILURE);
      expect(await authenticatePassword(database.db, hasher, 'ivy', 'second password')).toMatchObject({ ok: true });
      expect(await changePassword(services, { accountId: ivy.id, password: 'short', via: 'admin', actor: 'admin:test' })).toMatchObject({
        ok: false,
        reason: 'refused',
        refusal: 'too_short',
      });
      expect(await changePassword(services, { accountId: 'nobody', password: 'third password', via: 'admin', actor: 'admin:test' })).toEqual({
        ok: false,
        reason: 'unknown_account',
      });
      // Only a person changing their own password keeps a session.
      expect(
        await changePassword(services, { accountId: ivy.id, password: 'third password', via: 'admin', actor: 'admin:test', keepSessionUid: 'x' }),
      ).toMatchObject({ ok: false, reason: 'invalid_input' });
      expect(await authenticatePassword(database.db, hasher, 'ivy', 'second password')).toMatchObject({ ok: true });
    });

    test('groups: create, add members, list, remove', async () => {
      const admins = await createGroup(database.db, 'admins', 'People who run things');
      const staff = await createGroup(database.db, 'staff');
      await expect(createGroup(database.db, 'admins')).rejects.toBeInstanceOf(GroupConflictError);
      await expect(createGroup(database.db, 'bad name!')).rejects.toThrow();
      expect((await findGroup(database.db, 'admins'))?.id).toBe(admins.id);

      const alice = (await findAccountByLogin(database.db, 'alice'))!;
      const bob = (await findAccountByLogin(database.db, 'bob'))!;
      await addMember(database.db, admins.id, alice.id);
      await addMember(database.db, admins.id, alice.id); // idempotent
      await addMember(database.db, admins.id, bob.id);
      await addMember(database.db, staff.id, alice.id);

      expect((await membersOf(database.db, admins.id)).map((m) => m.username)).toEqual(['alice', 'bob']);
      expect((await groupsOf(database.db, alice.id)).map((g) => g.name)).toEqual(['admins', 'staff']);
      const listed = await listGroups(database.db);
      expect(listed.map((g) => [g.name, g.members])).toEqual([
        ['admins', 2],
        ['staff', 1],
      ]);

      expect(await removeMember(database.db, admins.id, bob.id)).toBe(true);
      expect(await removeMember(database.db, admins.id, bob.id)).toBe(false);
      expect((await membersOf(database.db, admins.id)).map((m) => m.username)).toEqual(['alice']);
      expect(await groupsOf(database.db, bob.id)).toEqual([]);

      await removeGroup(database.db, staff.id);
      expect((await groupsOf(database.db, alice.id)).map((g) => g.name)).toEqual(['admins']);
      expect(await findGroup(database.db, 'staff')).toBeUndefined();
    });

    test('removing an account removes its memberships and its sessions', async () => {
      const jack = await createAccount(database.db, hasher, { username: 'jack', password: 'jack password' });
      const group = await createGroup(database.db, 'jacks');
      await addMember(database.db, group.id, jack.id);
      await database.db
        .insertInto('oidc_payloads')
        .values({
          kind: 'Session',
          id: 'h1.jack-session',
          payload: JSON.stringify({ accountId: jack.id }),
          grant_id: null,
          user_code: null,
          uid: null,
          expires_at: null,
        })
        .execute();
      expect((await removeAccount(database.db, jack.id)).removed).toBe(true);
      expect((await removeAccount(database.db, jack.id)).removed).toBe(false);
      expect(await membersOf(database.db, group.id)).toEqual([]);
      expect(await database.db.selectFrom('oidc_payloads').select('id').where('id', '=', 'h1.jack-session').executeTakeFirst()).toBeUndefined();
      expect(await authenticatePassword(database.db, hasher, 'jack', 'jack password')).toEqual(FAILURE);
    });
  });
}
