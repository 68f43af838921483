/**
 * Inside a request, the policy input reads the account's credentials and
 * policies in one statement (src/mfa/requirement.ts) and leaves them for the
 * reads that follow; outside, each is read on its own. Both must agree, field
 * for field (dates, bigint counters, version order), and a write within the
 * request must be seen by the next decision of that request.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { testConfig } from '../helpers/server.ts';
import { enrolBackupCodes, enrolTotp } from '../helpers/factors.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { GLOBAL, globalPolicy, groupScope, savePolicy } from '../../src/policy/store.ts';
import { policyInput, type SignInFacts } from '../../src/mfa/requirement.ts';
import { withRequestMemo } from '../../src/db/request-memo.ts';
import { PASSWORD_EVIDENCE } from '../../src/policy/levels.ts';

for (const kind of DIALECTS) {
  describe(`policy input on ${kind}`, () => {
    let database: TestDatabase;
    let opened: Opened;
    let facts: SignInFacts;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      // No server: the port only names the issuer.
      opened = await openServices(testConfig(9), { handle: database, migrate: false });
      const { services } = opened;
      const { db } = services;
      const account = await createAccount(db, services.hasher, { username: 'pat' });
      await enrolTotp(services, account.id);
      await enrolBackupCodes(services, account.id, ['aaaa-bbbb', 'cccc-dddd']);
      await services.factors.store.insert(account.id, 'webauthn', { label: 'Key', data: { transports: ['usb'] }, counter: 9_007_199_254, lookupKey: 'key-1' });
      await savePolicy(db, GLOBAL, { mfa: 'optional', levelMaxAge: { '2': 3600 } }, 'test');
      for (const name of ['finance', 'audit']) {
        const group = await createGroup(db, name);
        await addMember(db, group.id, account.id);
        await savePolicy(db, groupScope(group.id), { level: 2, enrollmentDeadline: { days: 7 } }, 'test');
        await savePolicy(db, groupScope(group.id), { level: 2, enrollmentDeadline: { days: 7 }, factors: ['totp', 'webauthn'] }, 'test');
      }
      const client = await createClient(db, services.sealer, { name: 'app', redirectUris: ['https://app.example/cb'], firstParty: true });
      facts = { accountId: account.id, clientId: client.clientId, request: { acrValues: [] }, evidence: [PASSWORD_EVIDENCE(1_000)], now: 2_000 };
    });

    afterAll(async () => {
      await opened?.close();
      await database?.close();
    });

    test('one statement inside a request gives what the separate reads give outside', async () => {
      const { services } = opened;
      const outside = {
        input: await policyInput(services, facts),
        credentials: await services.factors.store.list(facts.accountId),
        global: await globalPolicy(services.db, services.config.MFA),
      };
      const inside = await withRequestMemo(async () => ({
        input: await policyInput(services, facts),
        credentials: await services.factors.store.list(facts.accountId),
        global: await globalPolicy(services.db, services.config.MFA),
      }));
      expect(inside).toEqual(outside);
      expect(outside.input.groups?.map((g) => g.name)).toEqual(['audit', 'finance']);
      expect(outside.input.groups?.[0]?.factors).toEqual(['totp', 'webauthn']);
      expect(outside.credentials.find((c) => c.factorId === 'webauthn')?.counter).toBe(9_007_199_254);
      expect(outside.credentials[0]?.createdAt).toBeInstanceOf(Date);
    });

    test('a credential or policy written within the request is seen by its next decision', async () => {
      const { services } = opened;
      const { db } = services;
      await withRequestMemo(async () => {
        const { store } = services.factors;
        const before = await policyInput(services, facts);
        expect(before.enrolled.map((f) => f.id)).toContain('backup-codes');
        const backup = (await store.list(facts.accountId, 'backup-codes'))[0]!;
        await store.remove(facts.accountId, backup.id);
        const added = await store.insert(facts.accountId, 'webauthn', { label: 'Second key', data: {}, lookupKey: 'key-2' });
        await savePolicy(db, GLOBAL, { mfa: 'required' }, 'test');
        const after = await policyInput(services, facts);
        expect(after.enrolled.map((f) => f.id)).not.toContain('backup-codes');
        expect(after.mfa).toBe('required');
        expect((await store.list(facts.accountId, 'webauthn')).map((c) => c.id)).toContain(added);
      });
    });

    test('a stored throttle section this release refuses falls back to the built-in limits; the rest of the document stays in force', async () => {
      const { db } = opened.services;
      // Valid when an older release saved it: a daily cap over one hour, which now must span at least 24 hours.
      await savePolicy(db, GLOBAL, { mfa: 'required', minLevel: 2, throttle: { perAccountDay: { points: 100, windowSeconds: 3600 } } }, 'test');
      const { policy } = await globalPolicy(db, 'optional');
      expect(policy.mfa).toBe('required');
      expect(policy.minLevel).toBe(2);
      expect(policy.throttle.perAccountDay).toEqual({ points: 100, windowSeconds: 86400 });
      // Any other bad field still fails closed.
      await savePolicy(db, GLOBAL, { mfa: 'sometimes' }, 'test');
      await expect(globalPolicy(db, 'optional')).rejects.toThrow(/mfa/);
      await savePolicy(db, GLOBAL, { mfa: 'required' }, 'test');
    });
  });
}
