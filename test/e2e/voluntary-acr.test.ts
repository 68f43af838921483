/**
 * Voluntary acr_values (issue 11, failure 2): a request for a level the session
 * has not reached, that a step the account can take would reach, shows that step
 * (skippable), on every fresh request, and never silently answers level 1. A skip
 * returns the truthful lower acr, once per interaction (no loop inside Twofold).
 * `twofold policy explain` says what run time does, because one function decides
 * both. With openid-client as the app, on every database in the matrix.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { cliRunner } from '../helpers/cli.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { addMember, createGroup } from '../../src/accounts/groups.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { GLOBAL, groupScope, savePolicy } from '../../src/policy/store.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const REFEDS_MFA = 'https://refeds.org/profile/mfa';
let n = 0;

const skipAction = (body: string) => /action="(\/interaction\/[^/"]+\/skip)"/.exec(body)?.[1];

for (const kind of DIALECTS) {
  describe(`voluntary acr_values on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let thirdParty: RelyingParty;
    const run = cliRunner(() => services);

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' });
      services = server.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
      const other = await createClient(services.db, services.sealer, { name: 'elsewhere', redirectUris: [REDIRECT] });
      thirdParty = await relyingParty(server.issuer, other.clientId, other.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function user(totp = false) {
      const username = `v${++n}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      const secret = totp ? await enrolTotp(services, account.id) : undefined;
      return { account, username, secret };
    }

    /** A plain sign-in (no acr_values): the session the later requests find. */
    async function signedIn(username: string, party = rp): Promise<UserAgent> {
      const agent = new UserAgent(server.issuer);
      const auth = await party.authorizationUrl();
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      expect(done.location).toMatch(/code=/);
      await party.redeem(done.location!, auth);
      return agent;
    }

    async function skip(agent: UserAgent, page: Hop): Promise<Hop> {
      const action = skipAction(page.body);
      expect(action).toBeDefined();
      return agent.submit(action!, {});
    }

    async function explain(username: string, ...extra: string[]) {
      const r = await run('policy', 'explain', '--user', username, '--client', 'web', '--json', ...extra);
      expect(r.code).toBe(0);
      return JSON.parse(r.out) as { decision: { type: string; optional?: boolean; acr?: string } };
    }

    test('single sign-on: a session that cannot meet the acr_values is shown the enrolment (skippable), not answered level 1', async () => {
      const { username } = await user();
      const agent = await signedIn(username);
      // What the admin is told, and what run time then does, agree.
      expect((await explain(username, '--session', '--acr-values', REFEDS_MFA)).decision).toMatchObject({ type: 'enroll', optional: true });

      const auth = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
      const page = await agent.follow(auth.url);
      expect(page.location ?? '').not.toMatch(/code=/);
      expect(page.body).toContain('Set up two-step verification');
      expect(page.body).not.toContain('name="password"');
      const skipped = await skip(agent, page);
      expect(skipped.location).toMatch(/code=/);
      const claims = (await rp.redeem(skipped.location!, auth)).claims()!;
      expect(claims.acr).toBe('urn:twofold:acr:1');
      expect(claims.amr).toEqual(['pwd']);

      // The app refuses level 1 and sends the browser back: a fresh request shows the step again, it is not silently level 1.
      const again = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
      const second = await agent.follow(again.url);
      expect(second.location ?? '').not.toMatch(/code=/);
      expect(second.body).toContain('Set up two-step verification');
      expect(skipAction(second.body)).toBeDefined();

      // Without acr_values the same session signs in silently (nothing asks for more).
      expect((await explain(username, '--session')).decision).toMatchObject({ type: 'satisfied' });
      expect((await agent.follow((await rp.authorizationUrl()).url)).location).toMatch(/code=/);
    });

    test('a fresh sign-in with acr_values: skip once returns level 1; the next request asks again; enrolling there gives the requested acr', async () => {
      const { username } = await user();
      expect((await explain(username, '--acr-values', REFEDS_MFA)).decision).toMatchObject({ type: 'enroll', optional: true });
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
      const login = await agent.follow(auth.url);
      const page = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      expect(page.body).toContain('Set up two-step verification');
      const skipped = await skip(agent, page);
      expect((await rp.redeem(skipped.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:1');

      // The loop mod_auth_openidc makes when it requires the value it asked for: each round shows the step.
      const again = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
      const second = await agent.follow(again.url);
      expect(second.body).toContain('Set up two-step verification');
      // This time the user sets up TOTP on that page.
      const key = /<code class="key">([^<]+)<\/code>/.exec(second.body)![1]!.replace(/\s/g, '');
      const codes = await agent.submit(formAction(second.body), { code: totpCode(key), label: 'Phone' });
      // Backup codes are offered after a first factor.
      expect(codes.body).toContain('Save your backup codes');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      expect(done.location).toMatch(/code=/);
      const claims = (await rp.redeem(done.location!, again)).claims()!;
      expect(claims.acr).toBe(REFEDS_MFA);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('a voluntary step-up with a factor the account has is skippable; skipped, the acr says level 1', async () => {
      await savePolicy(services.db, GLOBAL, { mfa: 'off' }, 'test');
      try {
        const { username, secret } = await user(true);
        const agent = await signedIn(username);
        expect((await explain(username, '--session', '--acr-values', REFEDS_MFA)).decision).toMatchObject({ type: 'step_up', optional: true });
        const auth = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
        const page = await agent.follow(auth.url);
        expect(page.body).toContain('Confirm it is you');
        const skipped = await skip(agent, page);
        expect((await rp.redeem(skipped.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:1');
        // Asked again: the step again; proved this time, the requested value.
        const again = await rp.authorizationUrl({ acr_values: REFEDS_MFA });
        const second = await agent.follow(again.url);
        expect(second.body).toContain('Confirm it is you');
        const done = await agent.submit(formAction(second.body), { code: totpCode(secret!) });
        expect((await rp.redeem(done.location!, again)).claims()!.acr).toBe(REFEDS_MFA);
      } finally {
        await savePolicy(services.db, GLOBAL, { mfa: 'optional' }, 'test');
      }
    });

    test('a required step is never skippable: an essential acr shows no skip', async () => {
      const { username } = await user();
      const agent = await signedIn(username);
      const claims = JSON.stringify({ id_token: { acr: { essential: true, values: [REFEDS_MFA] } } });
      const page = await agent.follow((await rp.authorizationUrl({ claims })).url);
      expect(page.body).toContain('Set up two-step verification');
      expect(skipAction(page.body)).toBeUndefined();
      // Posting to skip anyway changes nothing: the step is still there.
      const uid = /\/interaction\/([^/"]+)\/enroll/.exec(page.body)![1]!;
      const forced = await agent.submit(`/interaction/${uid}/skip`, {});
      expect(forced.location ?? '').not.toMatch(/code=/);
      expect(forced.body).toContain('Set up two-step verification');
    });

    test('prompt=none cannot show the step: interaction_required, not a silent level 1', async () => {
      const { username } = await user();
      const agent = await signedIn(username);
      const hop = await agent.follow((await rp.authorizationUrl({ acr_values: REFEDS_MFA, prompt: 'none' })).url);
      expect(new URL(hop.location!).searchParams.get('error')).toBe('interaction_required');
    });

    test('after a skip, a third-party app goes on to its consent page and back, without asking again in the same request', async () => {
      const { username } = await user();
      const agent = await signedIn(username);
      const auth = await thirdParty.authorizationUrl({ acr_values: REFEDS_MFA });
      const page = await agent.follow(auth.url);
      expect(page.body).toContain('Set up two-step verification');
      const consent = await skip(agent, page);
      expect(consent.body).toContain('Allow');
      const done = await agent.submit(formAction(consent.body), {});
      expect(done.location).toMatch(/code=/);
      expect((await thirdParty.redeem(done.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:1');
    });

    test("a group's enrolment reminder is shown at a password sign-in, never on single sign-on; explain says the same", async () => {
      const group = await createGroup(services.db, `grace${n}`);
      await savePolicy(services.db, groupScope(group.id), { level: 2, enrollmentDeadline: { days: 30 } }, 'test');
      const { account, username } = await user();
      await addMember(services.db, group.id, account.id);
      expect((await explain(username)).decision).toMatchObject({ type: 'enroll', optional: true });
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const login = await agent.follow(auth.url);
      const page = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      expect(page.body).toContain('requires two-step verification from');
      const skipped = await skip(agent, page);
      expect((await rp.redeem(skipped.location!, auth)).claims()!.acr).toBe('urn:twofold:acr:1');
      expect((await explain(username, '--session')).decision).toMatchObject({ type: 'satisfied', acr: 'urn:twofold:acr:1' });
      expect((await agent.follow((await rp.authorizationUrl()).url)).location).toMatch(/code=/);
    });
  });
}
