/**
 * Migration 0007 on every database in the matrix: rows stored under their
 * bearer value before it (sessions, interactions, codes, tokens, grants, the
 * state of in-flight interactions, the evidence of the sessions) are gone after
 * it, replay-detection rows stay, and the database then refuses a provider row
 * stored under an id or user code in clear.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Migrator } from 'kysely/migration';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { migrations } from '../../migrations/index.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createAdapter } from '../../src/oidc/adapter.ts';
import { Sealer } from '../../src/security/sealer.ts';
import { KeyedHasher } from '../../src/security/keyed-hash.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { PasswordHasher } from '../../src/accounts/password-hasher.ts';

const id = () => crypto.randomBytes(16).toString('base64url');
const later = () => new Date(Date.now() + 3600_000);

for (const kind of DIALECTS) {
  describe(`migration 0007 (hashed provider ids) on ${kind}`, () => {
    let database: TestDatabase;
    const clear = { session: id(), refresh: id() + id(), code: id(), interaction: id(), grant: id(), replay: id() };
    let accountId: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind, { migrate: false });
      const migrator = new Migrator({ db: database.db, provider: { getMigrations: async () => migrations } });
      const { error } = await migrator.migrateTo('0006_trusted_device_factor');
      if (error) throw error;
      const hasher = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, concurrency: 1, queueLimit: 4 });
      accountId = (await createAccount(database.db, hasher, { username: 'olive', password: 'olive password 1' })).id;
      // What the adapter stored before 0007: every row under its bearer value, jti in clear.
      const row = (model: string, key: string, payload: Record<string, unknown>) => ({
        kind: model,
        id: key,
        payload: JSON.stringify({ kind: model, jti: key, ...payload }),
        grant_id: (payload.grantId as string | undefined) ?? null,
        user_code: null,
        uid: (payload.uid as string | undefined) ?? null,
        expires_at: later(),
      });
      await database.db
        .insertInto('oidc_payloads')
        .values([
          row('Session', clear.session, { uid: 'session-uid', accountId }),
          row('RefreshToken', clear.refresh, { accountId, grantId: clear.grant }),
          row('AuthorizationCode', clear.code, { accountId, grantId: clear.grant }),
          row('Interaction', clear.interaction, { session: { accountId, uid: 'session-uid', cookie: clear.session } }),
          row('Grant', clear.grant, { accountId, clientId: 'app' }),
          row('ReplayDetection', clear.replay, { iss: 'app' }),
        ])
        .execute();
      await database.db
        .insertInto('interaction_state')
        .values({ uid: clear.interaction, key: 'signin', value_sealed: 'v1.x.y.z', expires_at: later() })
        .execute();
      await database.db
        .insertInto('session_evidence')
        .values({ session_uid: 'session-uid', account_id: accountId, evidence: '[]', expires_at: later() })
        .execute();
    });

    afterAll(async () => {
      await database?.close();
    });

    test('rows stored under a bearer value are deleted; replay detection stays; the migration applies once', async () => {
      expect((await migrateToLatest(database.db)).applied).toContain('0007_hashed_payload_ids');
      const left = await database.db.selectFrom('oidc_payloads').select(['kind', 'id']).execute();
      expect(left).toEqual([{ kind: 'ReplayDetection', id: clear.replay }]);
      expect(await database.db.selectFrom('interaction_state').selectAll().execute()).toEqual([]);
      expect(await database.db.selectFrom('session_evidence').selectAll().execute()).toEqual([]);

      // A replay-detection row is still found where the library looks for it: an assertion used before the upgrade stays used.
      const key = crypto.randomBytes(32);
      const Adapter = createAdapter(database.db, new Sealer(key), new KeyedHasher(key));
      expect(await new Adapter('ReplayDetection').find(clear.replay)).toMatchObject({ iss: 'app' });
    });

    test('afterwards the database refuses a provider row under an id or a user code in clear', async () => {
      const base = { kind: 'RefreshToken', payload: '{}', grant_id: null, uid: null, expires_at: later() };
      await expect(
        database.db
          .insertInto('oidc_payloads')
          .values({ ...base, id: id(), user_code: null })
          .execute(),
      ).rejects.toThrow(/oidc_payloads_id_hashed/);
      await expect(
        database.db
          .insertInto('oidc_payloads')
          .values({ ...base, kind: 'DeviceCode', id: `h1.${id()}`, user_code: 'BCDF-GHJK' })
          .execute(),
      ).rejects.toThrow(/oidc_payloads_user_code_hashed/);
      // Through the adapter, rows go in.
      const key = crypto.randomBytes(32);
      const Adapter = createAdapter(database.db, new Sealer(key), new KeyedHasher(key));
      const device = id();
      await new Adapter('DeviceCode').upsert(device, { kind: 'DeviceCode', jti: device, userCode: 'BCDF-GHJK' }, 60);
      expect(await new Adapter('DeviceCode').findByUserCode('BCDF-GHJK')).toMatchObject({ jti: device });
    });
  });
}
