/**
 * Proves the provider's storage adapter on every database in the matrix:
 * upsert and find (by id, uid, user code), expiry hiding rows, consume-once,
 * destroy, revokeByGrantId removing every kind of token of a grant (and
 * nothing else), and purgeExpired deleting only rows expired beyond the grace.
 * Rows are stored under a keyed hash of their id and user code, with the
 * bearer values inside payloads sealed: the table never holds one, and the
 * library reads back exactly what it wrote.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { createAdapter, purgeExpired, storedPayloadId } from '../../src/oidc/adapter.ts';
import { Sealer } from '../../src/security/sealer.ts';
import { KeyedHasher } from '../../src/security/keyed-hash.ts';
import { createClient } from '../../src/oidc/clients.ts';

const id = () => crypto.randomBytes(12).toString('base64url');
const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);

for (const kind of DIALECTS) {
  describe(`oidc adapter on ${kind}`, () => {
    let database: TestDatabase;
    let AdapterClass: new (name: string) => Adapter;
    const masterKey = crypto.randomBytes(32);
    const sealer = new Sealer(masterKey);
    const hasher = new KeyedHasher(masterKey);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      AdapterClass = createAdapter(database.db, sealer, hasher);
    });

    afterAll(async () => {
      await database?.close();
    });

    const rowId = (model: string, key: string) => storedPayloadId(hasher, model, key);

    async function setExpiry(model: string, key: string, expires: Date | null) {
      await database.db.updateTable('oidc_payloads').set({ expires_at: expires }).where('kind', '=', model).where('id', '=', rowId(model, key)).execute();
    }

    async function exists(model: string, key: string): Promise<boolean> {
      const row = await database.db.selectFrom('oidc_payloads').select('id').where('kind', '=', model).where('id', '=', rowId(model, key)).executeTakeFirst();
      return row !== undefined;
    }

    test('upsert then find returns the payload; a second upsert replaces it', async () => {
      const sessions = new AdapterClass('Session');
      const key = id();
      const payload: AdapterPayload = { accountId: 'acc1', loginTs: 1700000000, kind: 'Session', jti: key, nested: { amr: ['pwd', 'otp'] } };
      await sessions.upsert(key, payload, 3600);
      expect(await sessions.find(key)).toEqual(payload);

      await sessions.upsert(key, { ...payload, accountId: 'acc2' }, 3600);
      expect(await sessions.find(key)).toMatchObject({ accountId: 'acc2' });

      const row = await database.db
        .selectFrom('oidc_payloads')
        .selectAll()
        .where('kind', '=', 'Session')
        .where('id', '=', rowId('Session', key))
        .executeTakeFirstOrThrow();
      expect(row.expires_at!.getTime()).toBeGreaterThan(Date.now() + 3500_000);
      expect(row.expires_at!.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000);
    });

    test('models are namespaced by kind', async () => {
      const key = id();
      await new AdapterClass('AccessToken').upsert(key, { kind: 'AccessToken', jti: key }, 60);
      expect(await new AdapterClass('RefreshToken').find(key)).toBeUndefined();
      expect(await new AdapterClass('AccessToken').find(key)).toMatchObject({ jti: key });
    });

    test('unknown ids find nothing', async () => {
      const tokens = new AdapterClass('AccessToken');
      expect(await tokens.find('nope')).toBeUndefined();
      expect(await tokens.findByUid('nope')).toBeUndefined();
      expect(await tokens.findByUserCode('nope')).toBeUndefined();
    });

    test('a row without expiry lives until destroyed', async () => {
      const grants = new AdapterClass('Grant');
      const key = id();
      await grants.upsert(key, { kind: 'Grant', jti: key });
      expect(await grants.find(key)).toMatchObject({ jti: key });
      const row = await database.db
        .selectFrom('oidc_payloads')
        .select('expires_at')
        .where('kind', '=', 'Grant')
        .where('id', '=', rowId('Grant', key))
        .executeTakeFirstOrThrow();
      expect(row.expires_at).toBeNull();
    });

    test('find after expiry returns undefined (by id and uid); an expired device code is still found, for expired_token', async () => {
      const sessions = new AdapterClass('Session');
      const codes = new AdapterClass('DeviceCode');
      const key = id();
      const uid = id();
      const userCode = 'ABCD-' + id().slice(0, 4);
      const deviceKey = id();
      await sessions.upsert(key, { kind: 'Session', uid }, 60);
      await codes.upsert(deviceKey, { kind: 'DeviceCode', userCode }, 60);
      expect(await sessions.findByUid(uid)).toBeDefined();
      expect(await codes.findByUserCode(userCode)).toBeDefined();

      await setExpiry('Session', key, ago(1));
      await setExpiry('DeviceCode', deviceKey, ago(1));
      expect(await sessions.find(key)).toBeUndefined();
      expect(await sessions.findByUid(uid)).toBeUndefined();
      // The library checks a device code's expiry itself, to tell the device expired_token (RFC 8628 §3.5) and the
      // person that the code expired; the purge removes the row later.
      expect(await codes.findByUserCode(userCode)).toMatchObject({ userCode });
      expect(await codes.find(deviceKey)).toMatchObject({ userCode });
    });

    test('a row really expires with the clock (1 second lifetime)', async () => {
      const tokens = new AdapterClass('AccessToken');
      const key = id();
      await tokens.upsert(key, { kind: 'AccessToken' }, 1);
      expect(await tokens.find(key)).toBeDefined();
      await new Promise((r) => setTimeout(r, 1100));
      expect(await tokens.find(key)).toBeUndefined();
    });

    test('consume sets `consumed` (seconds) once; a later consume does not move it', async () => {
      const codes = new AdapterClass('AuthorizationCode');
      const key = id();
      await codes.upsert(key, { kind: 'AuthorizationCode', grantId: id() }, 60);
      expect((await codes.find(key))!.consumed).toBeUndefined();

      const before = Math.floor(Date.now() / 1000);
      await codes.consume(key);
      const first = await codes.find(key);
      expect(typeof first!.consumed).toBe('number');
      expect(first!.consumed).toBeGreaterThanOrEqual(before - 1);
      expect(first!.consumed).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);

      const row1 = await database.db
        .selectFrom('oidc_payloads')
        .select('consumed_at')
        .where('kind', '=', 'AuthorizationCode')
        .where('id', '=', rowId('AuthorizationCode', key))
        .executeTakeFirstOrThrow();
      await new Promise((r) => setTimeout(r, 20));
      await codes.consume(key);
      const row2 = await database.db
        .selectFrom('oidc_payloads')
        .select('consumed_at')
        .where('kind', '=', 'AuthorizationCode')
        .where('id', '=', rowId('AuthorizationCode', key))
        .executeTakeFirstOrThrow();
      expect(row2.consumed_at!.getTime()).toBe(row1.consumed_at!.getTime());
    });

    test('findByUid and findByUserCode find the right row of the right kind', async () => {
      const sessions = new AdapterClass('Session');
      const interactions = new AdapterClass('Interaction');
      const devices = new AdapterClass('DeviceCode');
      const uid = id();
      const sessionKey = id();
      await sessions.upsert(sessionKey, { kind: 'Session', uid, accountId: 'a' }, 60);
      await sessions.upsert(id(), { kind: 'Session', uid: id(), accountId: 'b' }, 60);
      expect(await sessions.findByUid(uid)).toMatchObject({ uid, accountId: 'a' });
      expect(await interactions.findByUid(uid)).toBeUndefined();

      const userCode = 'WXYZ-' + id().slice(0, 4);
      const deviceKey = id();
      await devices.upsert(deviceKey, { kind: 'DeviceCode', userCode, params: { scope: 'openid' } }, 60);
      expect(await devices.findByUserCode(userCode)).toMatchObject({ userCode, params: { scope: 'openid' } });
      expect(await sessions.findByUserCode(userCode)).toBeUndefined();
    });

    test('destroy removes one row of one kind', async () => {
      const sessions = new AdapterClass('Session');
      const interactions = new AdapterClass('Interaction');
      const key = id();
      await sessions.upsert(key, { kind: 'Session' }, 60);
      await interactions.upsert(key, { kind: 'Interaction' }, 60);
      await sessions.destroy(key);
      expect(await sessions.find(key)).toBeUndefined();
      expect(await interactions.find(key)).toBeDefined();
      await expect(sessions.destroy(key)).resolves.toBeUndefined();
    });

    test('revokeByGrantId removes every kind with that grant and nothing else', async () => {
      const grantId = id();
      const otherGrant = id();
      const kinds = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'Grant', 'BackchannelAuthenticationRequest'];
      const mine: Array<[string, string]> = [];
      const theirs: Array<[string, string]> = [];
      for (const model of kinds) {
        const a = id();
        const b = id();
        await new AdapterClass(model).upsert(a, { kind: model, grantId }, 600);
        await new AdapterClass(model).upsert(b, { kind: model, grantId: otherGrant }, 600);
        mine.push([model, a]);
        theirs.push([model, b]);
      }
      const loose = id();
      await new AdapterClass('Session').upsert(loose, { kind: 'Session' }, 600);

      // Called through any one model, it reaches all of them.
      await new AdapterClass('RefreshToken').revokeByGrantId(grantId);
      for (const [model, key] of mine) expect(await exists(model, key)).toBe(false);
      for (const [model, key] of theirs) expect(await new AdapterClass(model).find(key)).toMatchObject({ grantId: otherGrant });
      expect(await exists('Session', loose)).toBe(true);
    });

    test('purgeExpired deletes only rows expired beyond the grace, in batches', async () => {
      const model = `Purge${id()}`;
      const adapter = new AdapterClass(model);
      const longGone = Array.from({ length: 5 }, () => id());
      const justExpired = id();
      const live = id();
      const forever = id();
      for (const key of longGone) {
        await adapter.upsert(key, { kind: model }, 60);
        await setExpiry(model, key, ago(3600));
      }
      await adapter.upsert(justExpired, { kind: model }, 60);
      await setExpiry(model, justExpired, ago(10));
      await adapter.upsert(live, { kind: model }, 600);
      await adapter.upsert(forever, { kind: model });
      // Counters past their window go too, beyond the same grace.
      await database.db
        .insertInto('rate_limits')
        .values([
          { key: `purge:old:${model}`, points: 3, expires_at: ago(3600) },
          { key: `purge:recent:${model}`, points: 3, expires_at: ago(10) },
        ])
        .execute();

      // Rows left expired by earlier tests count too, so measure them first.
      const cutoff = ago(60);
      const expected = await database.db
        .selectFrom('oidc_payloads')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('expires_at', '<', cutoff)
        .executeTakeFirstOrThrow();
      expect(Number(expected.n)).toBeGreaterThanOrEqual(5);

      const purged = await purgeExpired(database.db, 60, 2);
      expect(purged).toBe(Number(expected.n));
      for (const key of longGone) expect(await exists(model, key)).toBe(false);
      expect(await exists(model, justExpired)).toBe(true);
      expect(await exists(model, live)).toBe(true);
      expect(await exists(model, forever)).toBe(true);
      const counters = await database.db.selectFrom('rate_limits').select('key').where('key', 'like', `purge:%:${model}`).execute();
      expect(counters.map((c) => c.key)).toEqual([`purge:recent:${model}`]);

      expect(await purgeExpired(database.db, 60, 2)).toBe(0);
      // With no grace, the just-expired row goes as well.
      expect(await purgeExpired(database.db, 0)).toBeGreaterThanOrEqual(1);
      expect(await exists(model, justExpired)).toBe(false);
      expect(await exists(model, live)).toBe(true);
    });

    test('no bearer value is stored: ids and user codes are keyed hashes, bearer fields are sealed, the library reads back what it wrote', async () => {
      const token = id() + id();
      const sessionId = id();
      const interactionUid = id();
      const userCode = 'QRST-' + id().slice(0, 4);
      const logoutSecret = id();
      const written: Array<[string, string, AdapterPayload]> = [
        ['RefreshToken', token, { kind: 'RefreshToken', jti: token, accountId: 'acc-r', clientId: 'app', grantId: 'g1', sessionUid: 'su1' }],
        ['Session', sessionId, { kind: 'Session', jti: sessionId, uid: 'su1', accountId: 'acc-r', state: { secret: logoutSecret, clientId: 'app' } }],
        [
          'Interaction',
          interactionUid,
          {
            kind: 'Interaction',
            jti: interactionUid,
            returnTo: `http://localhost/auth/${interactionUid}`,
            session: { accountId: 'acc-r', uid: 'su1', cookie: sessionId, amr: ['pwd'] },
            params: { client_id: 'app', scope: 'openid' },
          },
        ],
        ['DeviceCode', token.slice(3), { kind: 'DeviceCode', jti: token.slice(3), userCode, accountId: 'acc-r' }],
      ];
      for (const [model, key, payload] of written) await new AdapterClass(model).upsert(key, payload, 600);

      const rows = await database.db
        .selectFrom('oidc_payloads')
        .selectAll()
        .where(
          'id',
          'in',
          written.map(([model, key]) => rowId(model, key)),
        )
        .execute();
      expect(rows).toHaveLength(written.length);
      const stored = JSON.stringify(rows);
      for (const secret of [token, token.slice(3), sessionId, interactionUid, userCode, logoutSecret]) expect(stored).not.toContain(secret);
      // What SQL needs stays readable: whose, which app, which grant, which session.
      expect(rows.find((r) => r.kind === 'RefreshToken')!.payload).toMatchObject({ accountId: 'acc-r', clientId: 'app', grantId: 'g1', sessionUid: 'su1' });
      expect(rows.find((r) => r.kind === 'Interaction')!.payload).toMatchObject({ session: { accountId: 'acc-r', uid: 'su1' } });

      for (const [model, key, payload] of written) expect(await new AdapterClass(model).find(key)).toEqual(payload);
      expect(await new AdapterClass('Session').findByUid('su1')).toEqual(written[1]![2]);
      expect(await new AdapterClass('DeviceCode').findByUserCode(userCode)).toEqual(written[3]![2]);

      // Under another SECRET_KEY nothing is found: a stored hash is no lookup key without the key.
      const other = createAdapter(database.db, sealer, new KeyedHasher(crypto.randomBytes(32)));
      expect(await new other('RefreshToken').find(token)).toBeUndefined();
      // A stored hash presented as the token hashes to something else.
      expect(await new AdapterClass('RefreshToken').find(rowId('RefreshToken', token))).toBeUndefined();
    });

    test('a sealed part moved to another row does not open there: the row reads as absent', async () => {
      const sessions = new AdapterClass('Session');
      const victim = id();
      const attacker = id();
      await sessions.upsert(victim, { kind: 'Session', jti: victim, accountId: 'victim' }, 600);
      await sessions.upsert(attacker, { kind: 'Session', jti: attacker, accountId: 'attacker' }, 600);
      const source = await database.db
        .selectFrom('oidc_payloads')
        .select('payload')
        .where('kind', '=', 'Session')
        .where('id', '=', rowId('Session', victim))
        .executeTakeFirstOrThrow();
      await database.db
        .updateTable('oidc_payloads')
        .set({ payload: JSON.stringify({ ...source.payload, accountId: 'attacker' }) })
        .where('kind', '=', 'Session')
        .where('id', '=', rowId('Session', attacker))
        .execute();
      expect(await sessions.find(attacker)).toBeUndefined();
      expect(await sessions.find(victim)).toMatchObject({ jti: victim, accountId: 'victim' });
    });

    test('clients come from the clients table and cannot be written by the provider', async () => {
      const clients = new AdapterClass('Client');
      const created = await createClient(database.db, sealer, { name: `adapter-${id()}`, redirectUris: ['http://app.example.test/cb'] });
      const found = await clients.find(created.clientId);
      expect(found).toMatchObject({ client_id: created.clientId, redirect_uris: ['http://app.example.test/cb'] });
      expect(found!.client_secret).toBe(created.clientSecret);
      expect(await clients.find('no-such-client')).toBeUndefined();
      // client_id is the protocol identifier; a client's display name is not an alias for it.
      expect(await clients.find(created.name)).toBeUndefined();
      await expect(clients.upsert(created.clientId, {}, 60)).rejects.toThrow();
    });
  });
}
