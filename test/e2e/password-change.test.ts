/**
 * A password change or reset ends everything else (issue 13, finding 10),
 * through the real provider with openid-client as the app: after
 * `twofold user set-password`, the old session cookie gets the sign-in page
 * instead of a code, the old refresh token is invalid_grant and the old
 * access token is refused at /me. A person changing their own password keeps
 * the session they did it in (its tokens still go). A sign-in that proved the
 * old password and was waiting for its second factor cannot finish.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { changePassword } from '../../src/accounts/password-change.ts';
import type { EndedSession } from '../../src/accounts/end-sessions.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { runCli } from '../../src/cli/run.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'the first password';
let users = 0;

for (const kind of DIALECTS) {
  describe(`a password change ends everything else, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser() {
      const username = `user${++users}`;
      return createAccount(services.db, services.hasher, { username, password: PASSWORD });
    }

    /** A browser signed in with the password, and the tokens its app got. */
    async function signedIn(username: string, password = PASSWORD) {
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: username, password });
      expect(done.location).toMatch(/callback\?code=/);
      const tokens = await rp.redeem(done.location!, auth);
      return { agent, tokens };
    }

    /** Single sign-on with the browser's session: `code` when it still works, `sign-in` when the provider asks again. */
    async function sso(agent: UserAgent): Promise<'code' | 'sign-in'> {
      const auth = await rp.authorizationUrl();
      const hop = await agent.follow(auth.url);
      if (hop.location?.startsWith(REDIRECT) && new URL(hop.location).searchParams.has('code')) return 'code';
      expect(hop.status).toBe(200);
      expect(hop.body).toContain('name="password"');
      return 'sign-in';
    }

    const userinfo = async (accessToken: string) => (await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status;
    const refresh = (refreshToken: string) =>
      oidc.refreshTokenGrant(rp.config, refreshToken).then(
        () => 'refreshed',
        (err: { error?: string }) => err.error,
      );
    const sessionUids = async (accountId: string) =>
      (await services.db.selectFrom('oidc_payloads').select('payload').where('kind', '=', 'Session').execute())
        .map((r) => r.payload as { uid: string; accountId?: string })
        .filter((p) => p.accountId === accountId)
        .map((p) => p.uid);

    test('twofold user set-password: the old cookie signs in again, the old refresh token is invalid_grant, the old access token gets 401 at /me', async () => {
      const account = await newUser();
      const first = await signedIn(account.username);
      const second = await signedIn(account.username);
      // Everything works before the reset, so each refusal below is the reset's doing.
      expect(await sso(first.agent)).toBe('code');
      expect(await userinfo(first.tokens.access_token)).toBe(200);
      const rotated = await oidc.refreshTokenGrant(rp.config, first.tokens.refresh_token!);
      const heard: EndedSession[][] = [];
      services.sessionsEnded.push((ended) => void heard.push(ended));

      let out = '';
      const code = await runCli(
        ['user', 'set-password', account.username, '--password-stdin'],
        { out: (t) => (out += t), err: (t) => (out += t), stdin: 'the new password\n' },
        services,
        'admin:test',
      );
      services.sessionsEnded.pop();
      expect(code).toBe(0);
      expect(out).toMatch(new RegExp(`^password set for ${account.username}; sessions ended: 2, grants, tokens and codes revoked: \\d+\\n$`));

      for (const { agent } of [first, second]) expect(await sso(agent)).toBe('sign-in');
      for (const token of [first.tokens.access_token, rotated.access_token, second.tokens.access_token]) expect(await userinfo(token)).toBe(401);
      for (const token of [rotated.refresh_token!, second.tokens.refresh_token!]) expect(await refresh(token)).toBe('invalid_grant');
      expect(await sessionUids(account.id)).toEqual([]);
      // Nothing of the account is left in the provider's storage, whatever its kind.
      const left = await services.db.selectFrom('oidc_payloads').select(['kind', 'payload']).execute();
      expect(left.filter((r) => JSON.stringify(r.payload).includes(account.id))).toEqual([]);

      // The hook heard of both sessions, with the app each had signed in to.
      expect(heard).toHaveLength(1);
      expect(heard[0]!.map((s) => s.clients.map((c) => c.clientId))).toEqual([[rp.config.clientMetadata().client_id], [rp.config.clientMetadata().client_id]]);
      expect(heard[0]!.every((s) => s.clients[0]!.sid)).toBe(true);

      const [event] = await listAudit(services.db, { accountId: account.id, type: 'account.password_set' });
      expect(event).toMatchObject({ actor: 'admin:test', details: { via: 'admin', sessionsEnded: 2 } });
      // The new password signs in; the old one does not.
      await signedIn(account.username, 'the new password');
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow((await rp.authorizationUrl()).url);
      const refused = await agent.submit(formAction(page.body), { login: account.username, password: PASSWORD });
      expect(refused.location).toBeUndefined();
      expect(refused.body).toContain('name="password"');
    });

    test('a person changing their own password keeps the session they did it in (its tokens still go); every other session ends', async () => {
      const account = await newUser();
      const here = await signedIn(account.username);
      const [hereUid] = await sessionUids(account.id);
      const elsewhere = await signedIn(account.username);
      expect(await sessionUids(account.id)).toHaveLength(2);

      const result = await changePassword(services, {
        accountId: account.id,
        password: 'my own new password',
        via: 'self',
        actor: 'user',
        keepSessionUid: hereUid,
      });
      expect(result).toMatchObject({ ok: true, keptSession: true });
      expect(result.ok && result.sessionsEnded.map((s) => s.uid)).toEqual([expect.any(String)]);
      expect(result.ok && result.sessionsEnded.some((s) => s.uid === hereUid)).toBe(false);
      expect(await sessionUids(account.id)).toEqual([hereUid]);

      expect(await sso(here.agent)).toBe('code');
      expect(await sso(elsewhere.agent)).toBe('sign-in');
      for (const token of [here.tokens.access_token, elsewhere.tokens.access_token]) expect(await userinfo(token)).toBe(401);
      for (const token of [here.tokens.refresh_token!, elsewhere.tokens.refresh_token!]) expect(await refresh(token)).toBe('invalid_grant');
      const [event] = await listAudit(services.db, { accountId: account.id, type: 'account.password_set' });
      expect(event).toMatchObject({ actor: 'user', details: { via: 'self', sessionsEnded: 1, keptSession: hereUid } });
    });

    test('a sign-in that proved the old password and waits for its second factor cannot finish after a reset', async () => {
      const account = await newUser();
      const secret = await enrolTotp(services, account.id);
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const second = await agent.submit(formAction(page.body), { login: account.username, password: PASSWORD });
      expect(second.body).toContain('Two-step verification');
      expect(await changePassword(services, { accountId: account.id, password: 'reset by the admin', via: 'admin', actor: 'admin:test' })).toMatchObject({
        ok: true,
      });

      const after = await agent.submit(formAction(second.body), { code: totpCode(secret) });
      expect(after.location ?? '').not.toMatch(/code=/);
      // Back to the start: the password (the new one) is asked again.
      const start = await agent.follow(after.location ?? auth.url);
      expect(start.body).toContain('name="password"');
    });
  });
}
