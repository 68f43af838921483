/**
 * Key rotation that apps survive, on every database in the matrix: a rotation
 * publishes the next keys at once and signs with them only KEY_PUBLISH_DELAY
 * later, so an app that cached the JWKS (jose's createRemoteJWKSet with a long
 * cooldown, as oauth4webapi and mod_auth_openidc cache theirs) verifies every
 * token without fetching it again. Two providers on one database (separate
 * pools on PostgreSQL, as two processes have) see the same state: the first
 * to look after the activation time makes the switch, once, and the other
 * follows. An emergency rotation switches at once. The delay is crossed with
 * the services' controllable clock, never by waiting.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify } from 'jose';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { ManualClock } from '../helpers/clock.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty } from '../helpers/relying-party.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { listKeys, rotateKeys, type RotationOptions } from '../../src/oidc/keys.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';
const HOUR = 3600_000;

for (const kind of DIALECTS) {
  describe(`key publication on ${kind}`, () => {
    let database: TestDatabase;
    let secondHandle: DatabaseHandle | undefined;
    const clock = new ManualClock();
    let a: TestServer;
    let b: TestServer;
    let client: { clientId: string; clientSecret: string | null };

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      a = await startTestServer(database, {}, { clock });
      // A second provider process: its own pool on PostgreSQL; PGlite is one process by design.
      secondHandle = kind === 'postgres' ? await openDatabase({ url: database.url!, poolSize: 2 }) : undefined;
      b = await startTestServer(secondHandle ?? database, {}, { clock });
      const { db, hasher, sealer } = a.opened.services;
      await createAccount(db, hasher, { username: 'alice', password: 'correct horse battery' });
      client = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
    });

    afterAll(async () => {
      await b?.close();
      await a?.close();
      await secondHandle?.close();
      await database?.close();
    });

    const rotation = (extra: Partial<RotationOptions> = {}): RotationOptions => ({
      retirementTtlSeconds: a.config.KEY_RETIREMENT_TTL,
      publishDelaySeconds: a.config.KEY_PUBLISH_DELAY,
      now: clock.now(),
      ...extra,
    });

    async function idToken(server: TestServer): Promise<string> {
      const rp = await relyingParty(server.issuer, client.clientId, client.clientSecret, REDIRECT);
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      expect(done.location).toMatch(/callback\?code=/);
      return (await rp.redeem(done.location!, auth)).id_token!;
    }

    const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid!;

    async function published(server: TestServer): Promise<{ kids: string[]; cacheControl: string | null }> {
      const res = await fetch(new URL('/jwks', server.issuer));
      expect(res.status).toBe(200);
      const body = (await res.json()) as { keys: Array<{ kid: string; d?: string }> };
      expect(body.keys.every((k) => k.d === undefined)).toBe(true);
      return { kids: body.keys.map((k) => k.kid).sort(), cacheControl: res.headers.get('cache-control') };
    }

    async function kidsWith(status: string, alg?: string): Promise<string[]> {
      return (await listKeys(database.db))
        .filter((k) => k.status === status && (!alg || k.alg === alg))
        .map((k) => k.kid)
        .sort();
    }

    /** An app's JWKS cache that never refetches within the test (as one filled just before a rotation), counting its fetches. */
    function cachedJwks(server: TestServer) {
      const counter = { fetches: 0 };
      const jwks = createRemoteJWKSet(new URL('/jwks', server.issuer), {
        cacheMaxAge: HOUR,
        cooldownDuration: HOUR,
        [customFetch]: (url, options) => {
          counter.fetches += 1;
          return fetch(url, options);
        },
      });
      return { jwks, counter };
    }

    test('the next keys are published first and sign after the delay; apps with a cached JWKS verify throughout; both processes agree', async () => {
      expect(a.config.KEY_PUBLISH_DELAY).toBe(3600);
      const oldRs = (await kidsWith('active', 'RS256'))[0]!;
      const oldKids = await kidsWith('active');
      expect((await published(a)).cacheControl).toBe('public, max-age=600');

      // An app that fetched the JWKS before the rotation and will not fetch it again for an hour.
      const before = cachedJwks(a);
      const t0 = await idToken(a);
      await jwtVerify(t0, before.jwks, { issuer: a.issuer, audience: client.clientId });
      expect(before.counter.fetches).toBe(1);

      const scheduled = await rotateKeys(database.db, a.opened.services.sealer, rotation());
      expect(scheduled.outcome).toBe('scheduled');
      if (scheduled.outcome !== 'scheduled') return;
      expect(scheduled.activatesAt.getTime() - clock.now().getTime()).toBeGreaterThan(3590_000);
      expect(await kidsWith('next')).toEqual([...scheduled.created].sort());
      // A second rotation while one is pending changes nothing.
      const again = await rotateKeys(database.db, a.opened.services.sealer, rotation());
      expect(again).toMatchObject({ outcome: 'pending', pending: expect.arrayContaining(scheduled.created) });
      expect(await kidsWith('next')).toEqual([...scheduled.created].sort());

      expect(await a.holder.refresh()).toBe(true);
      expect(await b.holder.refresh()).toBe(true);
      const both = [...oldKids, ...scheduled.created].sort();
      expect((await published(a)).kids).toEqual(both);
      expect((await published(b)).kids).toEqual(both);

      // Right after the rotation, tokens are still signed with the old key: the app's cached JWKS verifies them.
      const t1 = await idToken(a);
      expect(kidOf(t1)).toBe(oldRs);
      expect(kidOf(await idToken(b))).toBe(oldRs);
      await jwtVerify(t1, before.jwks, { issuer: a.issuer, audience: client.clientId });
      expect(before.counter.fetches).toBe(1);

      // An app that refreshes its cache within the delay holds the next keys before they sign.
      const during = cachedJwks(a);
      await jwtVerify(t1, during.jwks, { issuer: a.issuer, audience: client.clientId });
      expect(during.counter.fetches).toBe(1);

      // Not yet: a minute before the activation time nothing changes.
      clock.advance(a.config.KEY_PUBLISH_DELAY - 60);
      expect(await a.holder.refresh()).toBe(false);
      expect(await b.holder.refresh()).toBe(false);
      expect(kidOf(await idToken(a))).toBe(oldRs);

      // The time comes: the second process looks first and makes the switch; the first follows on its next look.
      clock.advance(61);
      expect(await b.holder.refresh()).toBe(true);
      expect(await a.holder.refresh()).toBe(true);
      const activated = await database.db.selectFrom('audit_events').selectAll().where('type', '=', 'keys.activated').execute();
      expect(activated).toHaveLength(1);
      expect(activated[0]).toMatchObject({ actor: 'system', details: { activated: expect.arrayContaining(scheduled.created) } });

      const newRs = (await kidsWith('active', 'RS256'))[0]!;
      expect(scheduled.created).toContain(newRs);
      expect(await kidsWith('retired')).toEqual(oldKids);
      const t2 = await idToken(a);
      expect(kidOf(t2)).toBe(newRs);
      expect(kidOf(await idToken(b))).toBe(newRs);
      // The old keys are still published (for what they signed), and the app verifies new tokens without a fetch.
      expect((await published(a)).kids).toEqual(both);
      expect((await published(b)).kids).toEqual(both);
      await jwtVerify(t2, during.jwks, { issuer: a.issuer, audience: client.clientId });
      await jwtVerify(t1, during.jwks, { issuer: a.issuer, audience: client.clientId });
      expect(during.counter.fetches).toBe(1);

      const retired = (await listKeys(database.db)).filter((k) => k.status === 'retired');
      for (const key of retired) expect(key.expires_at!.getTime() - key.retired_at!.getTime()).toBe(a.config.KEY_RETIREMENT_TTL * 1000);
    });

    test('an emergency rotation switches at once (a pending pair is dropped); --withdraw stops publishing the replaced keys', async () => {
      const sealer = a.opened.services.sealer;
      const pending = await rotateKeys(database.db, sealer, rotation());
      expect(pending.outcome).toBe('scheduled');
      const replaced = await kidsWith('active');
      const earlierRetired = await kidsWith('retired');

      const emergency = await rotateKeys(database.db, sealer, rotation({ immediate: true }));
      expect(emergency.outcome).toBe('switched');
      if (emergency.outcome !== 'switched' || pending.outcome !== 'scheduled') return;
      expect(emergency.dropped.sort()).toEqual([...pending.created].sort());
      expect(emergency.retired.sort()).toEqual(replaced);
      expect(await kidsWith('next')).toEqual([]);
      expect(await a.holder.refresh()).toBe(true);
      expect(await b.holder.refresh()).toBe(true);
      const newRs = (await kidsWith('active', 'RS256'))[0]!;
      expect(kidOf(await idToken(a))).toBe(newRs);
      expect(kidOf(await idToken(b))).toBe(newRs);
      expect((await published(a)).kids).toEqual([...emergency.created, ...replaced, ...earlierRetired].sort());

      const withdrawn = await rotateKeys(database.db, sealer, rotation({ immediate: true, withdraw: true }));
      if (withdrawn.outcome !== 'switched') throw new Error(withdrawn.outcome);
      expect(await a.holder.refresh()).toBe(true);
      expect((await published(a)).kids).toEqual([...withdrawn.created].sort());
      expect(await b.holder.refresh()).toBe(true);
      expect((await published(b)).kids).toEqual([...withdrawn.created].sort());
    });
  });
}
