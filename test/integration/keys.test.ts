/**
 * Proves signing-key storage and rotation on every database in the matrix:
 * first start is race-free (five processes calling ensureKeys at once create
 * exactly one RS256, one ES256 and one cookie secret), private keys are sealed
 * at rest, rotation retires the old pair with an expiry and keeps publishing
 * it until then, and a running provider picks up a rotation on refresh():
 * /jwks shows old and new kids and new ID tokens are signed with the new key.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { TEST_SECRET_KEY, startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { ensureKeys, keyFingerprint, listKeys, loadKeyMaterial, rotateKeys, type RotationResult } from '../../src/oidc/keys.ts';
import { SealError, Sealer } from '../../src/security/sealer.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';
const TTL = 3600;

/** An immediate rotation (as with KEY_PUBLISH_DELAY=0 or `keys rotate --now`), for the storage tests below. */
async function rotateNow(db: DatabaseHandle['db'], sealer: Sealer, retirementTtlSeconds = TTL) {
  const result = await rotateKeys(db, sealer, { retirementTtlSeconds, publishDelaySeconds: 0 });
  return switched(result);
}

function switched(result: RotationResult) {
  if (result.outcome !== 'switched') throw new Error(`expected a switch, got ${result.outcome}`);
  return result;
}

for (const kind of DIALECTS) {
  describe(`signing keys on ${kind}`, () => {
    let database: TestDatabase;
    // The test server's key, so a provider started later on this database opens these keys.
    const sealer = new Sealer(Buffer.from(TEST_SECRET_KEY, 'hex'));

    beforeAll(async () => {
      database = await createTestDatabase(kind);
    });

    afterAll(async () => {
      await database?.close();
    });

    /** Separate pools on PostgreSQL, as separate processes would have; PGlite is one process by design. */
    async function withHandles<T>(n: number, fn: (handles: DatabaseHandle[]) => Promise<T>): Promise<T> {
      if (kind === 'pglite') return fn(Array.from({ length: n }, () => database));
      const handles = await Promise.all(Array.from({ length: n }, () => openDatabase({ url: database.url!, poolSize: 2 })));
      try {
        return await fn(handles);
      } finally {
        await Promise.all(handles.map((h) => h.close()));
      }
    }

    async function activeKeys() {
      return database.db.selectFrom('signing_keys').selectAll().where('status', '=', 'active').orderBy('alg').execute();
    }

    test('ensureKeys five times in parallel creates exactly one RS256, one ES256 and one cookie secret', async () => {
      const outcomes = await withHandles(5, (handles) => Promise.all(handles.map((h) => ensureKeys(h.db, sealer))));
      expect(outcomes.filter((o) => o.created)).toHaveLength(1);

      const keys = await database.db.selectFrom('signing_keys').select(['alg', 'status']).orderBy('alg').execute();
      expect(keys).toEqual([
        { alg: 'ES256', status: 'active' },
        { alg: 'RS256', status: 'active' },
      ]);
      const secrets = await database.db.selectFrom('provider_secrets').select(['purpose']).execute();
      expect(secrets).toEqual([{ purpose: 'cookie' }]);

      expect(await ensureKeys(database.db, sealer)).toEqual({ created: false });
    });

    test('private keys and cookie secrets are sealed at rest', async () => {
      const rows = await database.db.selectFrom('signing_keys').selectAll().execute();
      for (const row of rows) {
        expect(row.jwk_sealed).toMatch(/^v1\./);
        expect(row.jwk_sealed).not.toContain('"d":');
        expect(row.jwk_sealed).not.toContain('kty');
        const jwk = JSON.parse(sealer.openString(row.jwk_sealed, `signing_key:${row.kid}`)) as Record<string, string>;
        expect(jwk).toMatchObject({ kid: row.kid, alg: row.alg, use: 'sig' });
        expect(typeof jwk.d).toBe('string');
      }
      const secrets = await database.db.selectFrom('provider_secrets').selectAll().execute();
      for (const s of secrets) expect(s.value_sealed).toMatch(/^v1\./);

      // A sealed key copied under another kid does not open.
      expect(() => sealer.openString(rows[0]!.jwk_sealed, `signing_key:${rows[1]!.kid}`)).toThrow(SealError);
      // Nor does anything open under another SECRET_KEY.
      await expect(loadKeyMaterial(database.db, new Sealer(crypto.randomBytes(32)))).rejects.toBeInstanceOf(SealError);
    });

    test('loadKeyMaterial returns the private JWKs and the cookie key', async () => {
      const material = await loadKeyMaterial(database.db, sealer);
      expect(material.jwks.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
      expect(material.jwks.every((k) => typeof k.d === 'string')).toBe(true);
      expect(material.cookieKeys).toHaveLength(1);
      expect(material.cookieKeys[0]!.length).toBeGreaterThanOrEqual(43);
      expect(material.fingerprint).toBe(await keyFingerprint(database.db));
    });

    test('rotateKeys retires the active pair with an expiry; active keys are listed first, then retired', async () => {
      const before = await activeKeys();
      const fingerprintBefore = await keyFingerprint(database.db);
      const started = Date.now();
      const { retired, created } = await rotateNow(database.db, sealer);
      expect(retired.sort()).toEqual(before.map((k) => k.kid).sort());
      expect(created).toHaveLength(2);
      expect(created.some((kid) => retired.includes(kid))).toBe(false);

      const old = await database.db.selectFrom('signing_keys').selectAll().where('kid', 'in', retired).execute();
      for (const row of old) {
        expect(row.status).toBe('retired');
        expect(row.retired_at).toBeInstanceOf(Date);
        expect(row.expires_at!.getTime()).toBeGreaterThanOrEqual(started + TTL * 1000 - 5000);
        expect(row.expires_at!.getTime()).toBeLessThanOrEqual(Date.now() + TTL * 1000 + 5000);
      }
      const after = await activeKeys();
      expect(after.map((k) => k.alg)).toEqual(['ES256', 'RS256']);
      expect(after.map((k) => k.kid).sort()).toEqual([...created].sort());

      const material = await loadKeyMaterial(database.db, sealer);
      const kids = material.jwks.map((k) => k.kid!);
      expect(kids).toHaveLength(4);
      expect(kids.slice(0, 2).sort()).toEqual([...created].sort());
      expect(kids.slice(2).sort()).toEqual([...retired].sort());
      // The first key of each algorithm (the one the provider signs with) is the new one.
      for (const alg of ['RS256', 'ES256']) expect(created).toContain(material.jwks.find((k) => k.alg === alg)!.kid);
      expect(await keyFingerprint(database.db)).not.toBe(fingerprintBefore);
      // Rotation leaves the cookie key alone: sessions survive it.
      expect(material.cookieKeys).toHaveLength(1);

      const listed = await listKeys(database.db);
      expect(listed.map((k) => k.status)).toEqual(['active', 'active', 'retired', 'retired']);
    });

    test('retired keys past their expiry are not loaded, and the next rotation deletes them', async () => {
      const retired = await database.db.selectFrom('signing_keys').select('kid').where('status', '=', 'retired').execute();
      expect(retired).toHaveLength(2);
      const later = new Date(Date.now() + (TTL + 60) * 1000);
      const material = await loadKeyMaterial(database.db, sealer, later);
      expect(material.jwks).toHaveLength(2);
      expect(material.jwks.some((k) => retired.some((r) => r.kid === k.kid))).toBe(false);
      expect((await keyFingerprint(database.db, later)).split(',').filter((p) => p.endsWith(':retired'))).toEqual([]);

      // Let the first retired pair expire for real, then rotate again.
      await database.db
        .updateTable('signing_keys')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('status', '=', 'retired')
        .execute();
      expect((await loadKeyMaterial(database.db, sealer)).jwks).toHaveLength(2);
      const second = await rotateNow(database.db, sealer);
      const remaining = await database.db.selectFrom('signing_keys').select(['kid', 'status']).execute();
      expect(remaining).toHaveLength(4);
      expect(remaining.some((r) => retired.some((x) => x.kid === r.kid))).toBe(false);
      expect(
        remaining
          .filter((r) => r.status === 'retired')
          .map((r) => r.kid)
          .sort(),
      ).toEqual([...second.retired].sort());
    });

    test('simultaneous rotations leave exactly one active key per algorithm', async () => {
      await withHandles(3, (handles) => Promise.all(handles.map((h) => rotateNow(h.db, sealer))));
      const active = await activeKeys();
      expect(active.map((k) => k.alg)).toEqual(['ES256', 'RS256']);
      const material = await loadKeyMaterial(database.db, sealer);
      expect(
        material.jwks
          .slice(0, 2)
          .map((k) => k.kid)
          .sort(),
      ).toEqual(active.map((k) => k.kid).sort());
    });

    describe('a running provider', () => {
      let server: TestServer;
      let rp: RelyingParty;

      beforeAll(async () => {
        server = await startTestServer(database);
        const { db, hasher } = server.opened.services;
        await createAccount(db, hasher, { username: 'alice', password: 'correct horse battery' });
        const client = await createClient(db, server.opened.services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
        rp = await relyingParty(server.issuer, client.clientId, client.clientSecret, REDIRECT);
      });

      afterAll(async () => {
        await server?.close();
      });

      async function publishedKids(): Promise<string[]> {
        const res = await fetch(new URL('/jwks', server.issuer));
        expect(res.status).toBe(200);
        const body = (await res.json()) as { keys: Array<{ kid: string; d?: string }> };
        expect(body.keys.every((k) => k.d === undefined)).toBe(true);
        return body.keys.map((k) => k.kid).sort();
      }

      async function idTokenKid(): Promise<string> {
        const agent = new UserAgent(server.issuer);
        const auth = await rp.authorizationUrl();
        const page = await agent.follow(auth.url);
        const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
        expect(done.location).toMatch(/callback\?code=/);
        const tokens = await rp.redeem(done.location!, auth);
        const header = JSON.parse(Buffer.from(tokens.id_token!.split('.')[0]!, 'base64url').toString()) as { kid: string; alg: string };
        expect(header.alg).toBe('RS256');
        return header.kid;
      }

      async function activeKid(alg: string): Promise<string> {
        return (await database.db.selectFrom('signing_keys').select('kid').where('status', '=', 'active').where('alg', '=', alg).executeTakeFirstOrThrow()).kid;
      }

      test('rotation reaches the provider on refresh(): old and new kids published, new ID tokens signed with the new key', async () => {
        const svc = server.opened.services;
        // The provider started on the keys created and rotated above, retired ones included.
        expect(await server.holder.refresh()).toBe(false);
        const retiredEarlier = await database.db.selectFrom('signing_keys').select('kid').where('status', '=', 'retired').execute();
        expect(retiredEarlier.length).toBeGreaterThan(0);
        expect(await publishedKids()).toEqual(expect.arrayContaining(retiredEarlier.map((r) => r.kid)));
        // Let them lapse so the sets below are exact.
        await database.db
          .updateTable('signing_keys')
          .set({ expires_at: new Date(Date.now() - 1000) })
          .where('status', '=', 'retired')
          .execute();
        expect(await server.holder.refresh()).toBe(true);

        const oldRs = await activeKid('RS256');
        const oldEs = await activeKid('ES256');
        expect(await publishedKids()).toEqual([oldRs, oldEs].sort());
        expect(await idTokenKid()).toBe(oldRs);

        const { created, retired } = await rotateNow(svc.db, svc.sealer, svc.config.KEY_RETIREMENT_TTL);
        expect(retired.sort()).toEqual([oldRs, oldEs].sort());
        // Until it refreshes, the provider still serves the old set.
        expect(await publishedKids()).toEqual([oldRs, oldEs].sort());

        expect(await server.holder.refresh()).toBe(true);
        expect(await server.holder.refresh()).toBe(false);
        expect(await publishedKids()).toEqual([...created, ...retired].sort());
        const newRs = await activeKid('RS256');
        expect(newRs).not.toBe(oldRs);
        expect(await idTokenKid()).toBe(newRs);

        // Once the retired pair's window has passed, a refresh stops publishing it.
        await database.db
          .updateTable('signing_keys')
          .set({ expires_at: new Date(Date.now() - 1000) })
          .where('status', '=', 'retired')
          .execute();
        expect(await server.holder.refresh()).toBe(true);
        expect(await publishedKids()).toEqual([...created].sort());
        expect(await idTokenKid()).toBe(newRs);
      });
    });
  });
}
