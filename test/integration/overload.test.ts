/**
 * Proves graceful overload at the HTTP edge: with one hashing slot and no
 * queue, a burst of simultaneous login posts gets 503 + Retry-After for the
 * ones that find the slot taken, never a 500 and never a hang, while the rest
 * get their ordinary answer (a redirect onward, or 401). A refused user can
 * simply submit again once the burst is over. On every database in the matrix
 * (the refused requests' throttle counters and audit rows are written there).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'http://app.example.test/callback';
const BURST = 8;
const ONWARD = [302, 303];

for (const kind of DIALECTS) {
  describe(`password hashing overload on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, {
        HASH_CONCURRENCY: '1',
        HASH_QUEUE_LIMIT: '0',
        // Slow enough (tens to hundreds of ms per hash) that simultaneous posts overlap.
        ARGON2_MEMORY_KIB: '65536',
        ARGON2_ITERATIONS: '3',
      });
      const { db, hasher, sealer } = server.opened.services;
      expect(hasher.params).toEqual({ memoryCost: 65536, timeCost: 3, parallelism: 1 });
      for (let i = 0; i < BURST; i++) await createAccount(db, hasher, { username: `user${i}`, password: `password number ${i}` });
      const app = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    /** A browser sitting on the login form, ready to post. */
    async function atLoginForm(): Promise<{ agent: UserAgent; action: string }> {
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow((await rp.authorizationUrl()).url);
      expect(page.status).toBe(200);
      expect(page.body).toContain('name="password"');
      return { agent, action: formAction(page.body) };
    }

    /** Half right passwords, half wrong, each on its own account (so no per-login throttle is near). */
    const credentials = (i: number) => ({ login: `user${i}`, password: i % 2 ? `password number ${i}` : 'not the password' });

    test('a burst of logins gets 503 with Retry-After for some, never 500, and normal answers for the rest', async () => {
      const forms = await Promise.all(Array.from({ length: BURST }, () => atLoginForm()));
      const hops: Hop[] = await Promise.all(forms.map(({ agent, action }, i) => agent.request(action, { form: credentials(i) })));
      const statuses = hops.map((h) => h.status);

      expect(statuses).not.toContain(500);
      const busy = hops.filter((h) => h.status === 503);
      expect(busy.length).toBeGreaterThanOrEqual(1);
      for (const hop of busy) {
        const retryAfter = Number(hop.headers.get('retry-after'));
        expect(Number.isInteger(retryAfter)).toBe(true);
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(hop.body).toContain('busy');
        expect(hop.headers.get('cache-control')).toBe('no-store');
      }
      // Everyone else got the answer their password deserves.
      hops.forEach((hop, i) => {
        if (hop.status === 503) return;
        if (i % 2) expect(ONWARD).toContain(hop.status);
        else expect(hop.status).toBe(401);
      });
      expect(server.opened.services.hasher.stats.rejected).toBeGreaterThanOrEqual(busy.length);
      expect(server.opened.services.hasher.stats).toMatchObject({ active: 0, waiting: 0 });

      // Those turned away can submit again, one at a time, and get through.
      for (let i = 0; i < BURST; i++) {
        if (hops[i]!.status !== 503) continue;
        const again = await forms[i]!.agent.request(forms[i]!.action, { form: credentials(i) });
        if (i % 2) expect(ONWARD).toContain(again.status);
        else expect(again.status).toBe(401);
      }
    });
  });
}
