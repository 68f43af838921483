/**
 * `twofold user consents` lists the third-party apps a user allowed (with the
 * scopes from the grant itself), `twofold user revoke-consent` revokes one
 * (audited) and says plainly when there is nothing to revoke; removing the
 * user or the app forgets their consents. Consents are given through the real
 * sign-in pages, on both databases.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty } from '../helpers/relying-party.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long enough password';

for (const kind of DIALECTS) {
  describe(`twofold user consents / revoke-consent on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let users = 0;
    const cli = cliRunner(() => server.opened.services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
    });
    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function person() {
      const username = `cliconsent${++users}`;
      const account = await createAccount(server.opened.services.db, server.opened.services.hasher, { username, password: PASSWORD });
      return { username, account };
    }

    async function app(name: string, options: { firstParty?: boolean } = {}) {
      const client = await createClient(server.opened.services.db, server.opened.services.sealer, {
        name,
        redirectUris: [REDIRECT],
        firstParty: options.firstParty,
      });
      return { client, rp: await relyingParty(server.issuer, client.clientId, client.clientSecret, REDIRECT) };
    }

    /** Signs in to the app in a fresh browser and allows it `scope`. */
    async function allow(username: string, target: Awaited<ReturnType<typeof app>>, scope: string) {
      const agent = new UserAgent(server.issuer);
      const auth = await target.rp.authorizationUrl({ scope });
      const login = await agent.follow(auth.url);
      const page = await agent.submit(formAction(login.body), { login: username, password: PASSWORD });
      expect(page.body).toContain('/consent"');
      const done = await agent.submit(formAction(page.body), {});
      expect(done.location).toMatch(/callback\?code=/);
    }

    test('lists each app with the scopes its grant holds, and revokes one', async () => {
      const { username, account } = await person();
      const photos = await app('Photos');
      const notes = await app('Notes');
      expect(await cli('user', 'consents', username)).toEqual({ code: 0, out: '(none)\n', err: '' });

      await allow(username, photos, 'openid profile');
      await allow(username, notes, 'openid email');
      const table = await cli('user', 'consents', username);
      expect(table.code).toBe(0);
      const [header, ...lines] = table.out.trimEnd().split('\n');
      expect(header).toMatch(/^CLIENT_ID\s+CLIENT_NAME\s+SCOPES\s+API_SCOPES\s+GRANTED_AT\s+EXPIRES_AT$/);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(new RegExp(`^${photos.client.clientId}\\s+Photos\\s+openid,profile\\s+\\d{4}-`));
      expect(lines[1]).toMatch(new RegExp(`^${notes.client.clientId}\\s+Notes\\s+openid,email\\s+\\d{4}-`));

      const json = JSON.parse((await cli('user', 'consents', username, '--json')).out) as Array<Record<string, unknown>>;
      expect(json[0]).toMatchObject({ client_id: photos.client.clientId, client_name: 'Photos', scopes: ['openid', 'profile'], claims: [], api_scopes: {} });
      const granted = new Date(json[0]!.granted_at as string).getTime();
      expect(Math.abs(granted - Date.now())).toBeLessThan(60_000);
      // The grant's own expiry: GRANT_TTL (14 days by default) from the sign-in.
      expect(new Date(json[0]!.expires_at as string).getTime() - Date.now()).toBeGreaterThan(13 * 86400_000);

      // By name or by client id alike.
      expect(await cli('user', 'revoke-consent', username, 'Photos')).toEqual({
        code: 0,
        out: `revoked ${username}'s consent to Photos; its tokens no longer work\n`,
        err: '',
      });
      expect((await cli('user', 'revoke-consent', username, notes.client.clientId)).code).toBe(0);
      expect((await cli('user', 'consents', username)).out).toBe('(none)\n');
      const events = await listAudit(server.opened.services.db, { accountId: account.id, type: 'consent.revoked' });
      expect(events.map((e) => [e.client_id, e.actor]).sort()).toEqual(
        [
          [notes.client.clientId, 'admin:test'],
          [photos.client.clientId, 'admin:test'],
        ].sort(),
      );
    });

    test('nothing to revoke, an unknown user or app: a clear error, exit 1, nothing audited', async () => {
      const { username, account } = await person();
      const { client } = await app('Unused');
      await app('Own', { firstParty: true });
      expect(await cli('user', 'revoke-consent', username, 'Unused')).toEqual({
        code: 1,
        out: '',
        err: `twofold: ${username} has no remembered consent to Unused\n`,
      });
      expect(await cli('user', 'revoke-consent', username, 'Own')).toEqual({
        code: 1,
        out: '',
        err: `twofold: ${username} has no remembered consent to Own\n`,
      });
      expect(await cli('user', 'revoke-consent', username, 'no-such-app')).toEqual({ code: 1, out: '', err: 'twofold: no client named no-such-app\n' });
      expect(await cli('user', 'revoke-consent', 'no-such-user', client.clientId)).toEqual({ code: 1, out: '', err: 'twofold: no user named no-such-user\n' });
      expect(await cli('user', 'consents', 'no-such-user')).toEqual({ code: 1, out: '', err: 'twofold: no user named no-such-user\n' });
      expect((await cli('user', 'revoke-consent', username)).code).toBe(2);
      expect(await listAudit(server.opened.services.db, { accountId: account.id, type: 'consent.revoked' })).toEqual([]);
    });

    test('removing the user or the app forgets their consents', async () => {
      const db = server.opened.services.db;
      const leaving = await person();
      const staying = await person();
      const gone = await app('Gone');
      const kept = await app('Kept');
      for (const who of [leaving, staying]) for (const target of [gone, kept]) await allow(who.username, target, 'openid');
      const rows = async () =>
        (await db.selectFrom('consents').select(['account_id', 'client_id']).where('account_id', 'in', [leaving.account.id, staying.account.id]).execute())
          .length;
      expect(await rows()).toBe(4);

      expect((await cli('user', 'remove', leaving.username)).code).toBe(0);
      expect(await rows()).toBe(2);
      expect((await cli('client', 'remove', 'Gone')).code).toBe(0);
      expect(await rows()).toBe(1);
      expect(JSON.parse((await cli('user', 'consents', staying.username, '--json')).out)).toMatchObject([{ client_name: 'Kept' }]);
    });
  });
}
