/**
 * Second factors end to end, with openid-client as the app: enrolment inside
 * sign-in, TOTP and backup codes, truthful acr/amr, step-up without the
 * password, replay and concurrency limits, and unmet requirements.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const MFA_ACR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';
let userCount = 0;

for (const kind of DIALECTS) {
  describe(`second factors on ${kind}`, () => {
    let database: TestDatabase;
    let optional: TestServer; // MFA=optional
    let required: TestServer; // MFA=required, same database
    let off: TestServer; // MFA=off, same database
    let rpOff: RelyingParty;
    let services: Services;
    let rpOptional: RelyingParty;
    let rpRequired: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      optional = await startTestServer(database, { MFA: 'optional' });
      required = await startTestServer(database, { MFA: 'required' });
      off = await startTestServer(database, { MFA: 'off' });
      services = optional.opened.services;
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rpOptional = await relyingParty(optional.issuer, app.clientId, app.clientSecret, REDIRECT);
      rpRequired = await relyingParty(required.issuer, app.clientId, app.clientSecret, REDIRECT);
      rpOff = await relyingParty(off.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await optional?.close();
      await required?.close();
      await off?.close();
      await database?.close();
    });

    async function newUser(options: { totp?: boolean } = {}) {
      const username = `user${++userCount}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      const secret = options.totp ? await enrolTotp(services, account.id) : undefined;
      return { account, username, secret };
    }

    async function password(agent: UserAgent, rp: RelyingParty, username: string, extra: Record<string, string> = {}) {
      const auth = await rp.authorizationUrl(extra);
      const page = await agent.follow(auth.url);
      const next = await agent.submit(formAction(page.body), { login: username, password: 'a long password' });
      return { auth, next };
    }

    test('required MFA: a user without factors enrols TOTP and saves backup codes inside the sign-in', async () => {
      const { username } = await newUser();
      const agent = new UserAgent(required.issuer);
      const { auth, next } = await password(agent, rpRequired, username);
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).not.toContain('Skip for now');
      expect(next.body).toMatch(/<img src="data:image\/png;base64,/);
      const key = /<code class="key">([^<]+)<\/code>/.exec(next.body)![1]!.replace(/\s/g, '');
      const wrong = await agent.submit(formAction(next.body), { code: '000000', label: 'Phone' });
      expect(wrong.body).toContain('did not match');
      const codes = await agent.submit(formAction(wrong.body), { code: totpCode(key), label: 'Phone' });
      expect(codes.body).toContain('Save your backup codes');
      const backup = [...codes.body.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1]);
      expect(backup).toHaveLength(10);
      expect(new Set(backup).size).toBe(10);
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      expect(done.location).toMatch(/callback\?code=/);
      const claims = (await rpRequired.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.acr).toBe('urn:twofold:acr:2');
    });

    test('password + TOTP yields pwd, otp, mfa and the requested level-2 acr; a replayed code is refused', async () => {
      const { username, secret } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, rpOptional, username, { acr_values: 'https://refeds.org/profile/mfa' });
      expect(next.body).toContain('Two-step verification');
      const code = totpCode(secret!);
      const done = await agent.submit(formAction(next.body), { code });
      const claims = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.acr).toBe('https://refeds.org/profile/mfa');

      const again = new UserAgent(optional.issuer);
      const second = await password(again, rpOptional, username);
      const replay = await again.submit(formAction(second.next.body), { code });
      expect(replay.status).toBe(401);
      expect(replay.body).toContain('already used');
    });

    test('a code accepted through one provider process is refused by another on the same database', async () => {
      const { username, secret } = await newUser({ totp: true });
      const code = totpCode(secret!);
      const a = new UserAgent(optional.issuer);
      const b = new UserAgent(required.issuer);
      const first = await password(a, rpOptional, username);
      const second = await password(b, rpRequired, username);
      const results = await Promise.all([a.submit(formAction(first.next.body), { code }), b.submit(formAction(second.next.body), { code })]);
      expect(results.filter((r) => r.location?.includes('code=')).length).toBe(1);
    });

    test('one valid TOTP code sent 50 times in parallel is accepted exactly once', async () => {
      const { account, secret } = await newUser({ totp: true });
      const code = totpCode(secret!, 1);
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const outcomes = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          services.factors.verify('totp', account, new InteractionState(services.db, services.sealer, `parallel-${i}`), { code }, { ip: `10.0.0.${i}` }),
        ),
      );
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      // And below the throttle: the conditional UPDATE itself admits one winner per time step.
      const [credential] = await services.factors.store.list(account.id, 'totp');
      const step = Math.floor(Date.now() / 30_000) + 5;
      const wins = await Promise.all(Array.from({ length: 50 }, () => services.factors.store.advanceCounter(credential!.id, step)));
      expect(wins.filter(Boolean)).toHaveLength(1);
    });

    test('20 concurrent redemptions of one backup code give exactly one success', async () => {
      const { account } = await newUser({ totp: true });
      const code = 'ABCD-EFGH-JKMN-PQRS';
      const credentialId = await enrolBackupCodes(services, account.id, [code, 'ZZZZ-ZZZZ-ZZZZ-ZZZZ']);
      const results = await Promise.all(Array.from({ length: 20 }, () => services.factors.store.consumeOneTimeCode(credentialId, code)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await services.factors.store.remainingOneTimeCodes(credentialId)).toBe(1);
    });

    test('a backup code signs in once, warns when few are left, and its stored hash is not a code', async () => {
      const { account, username } = await newUser({ totp: true });
      const credentialId = await enrolBackupCodes(services, account.id, ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH']);
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, rpOptional, username);
      expect(next.body).toContain('Lost your device?');
      const backupPage = await agent.follow(`${new URL(formAction(next.body), optional.issuer).pathname.replace(/\/factor\/.*/, '')}?factor=backup-codes`);
      const stored = await services.db.selectFrom('one_time_codes').select('code_hash').where('credential_id', '=', credentialId).executeTakeFirstOrThrow();
      const hashAsCode = await agent.submit(formAction(backupPage.body), { code: stored.code_hash.slice(0, 16) });
      expect(hashAsCode.status).toBe(401);
      const warned = await agent.submit(formAction(hashAsCode.body), { code: 'aaaa bbbb cccc dddd' });
      expect(warned.body).toContain('1 backup code left');
      const done = await agent.submit(formAction(warned.body), {});
      const claims = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    });

    test('the throttle engages and holds under 200 parallel wrong codes', async () => {
      const { account } = await newUser({ totp: true });
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) => services.factors.verify('totp', account, new InteractionState(services.db, services.sealer, `w-${i}`), { code: '000000' }, { ip: '192.0.2.1' })),
      );
      const failedChecks = (await listAudit(services.db, { accountId: account.id, type: 'factor.failed', limit: 1000 })).length;
      expect(failedChecks).toBeLessThanOrEqual(5);
      expect(outcomes.filter((o) => !o.ok && o.reason === 'locked').length).toBeGreaterThanOrEqual(195);
    });

    test('a half-finished sign-in cannot get a code by jumping to the resume URL', async () => {
      const { username } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const { next } = await password(agent, rpOptional, username);
      const uid = /\/interaction\/([^/]+)\/factor/.exec(next.body)![1]!;
      const jump = await agent.follow(`/auth/${uid}`);
      expect(jump.location ?? '').not.toMatch(/code=/);
      expect(jump.body).toContain('name="password"');
    });

    test('with MFA off, acr_values forces the second factor; without it the password is enough', async () => {
      const { username, secret } = await newUser({ totp: true });
      const plain = new UserAgent(off.issuer);
      const first = await password(plain, rpOff, username);
      const one = (await rpOff.redeem(first.next.location!, first.auth)).claims()!;
      expect(one.amr).toEqual(['pwd']);
      expect(one.acr).toBe('urn:twofold:acr:1');
      const asked = new UserAgent(off.issuer);
      const second = await password(asked, rpOff, username, { acr_values: MFA_ACR });
      expect(second.next.body).toContain('Two-step verification');
      const done = await asked.submit(formAction(second.next.body), { code: totpCode(secret!) });
      const two = (await rpOff.redeem(done.location!, second.auth)).claims()!;
      expect(two.acr).toBe(MFA_ACR);
    });

    test('step-up from level 1 to 2 proves only the missing factor', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(optional.issuer);
      const first = await password(agent, rpOptional, username);
      const one = (await rpOptional.redeem(first.next.location!, first.auth)).claims()!;
      expect(one.acr).toBe('urn:twofold:acr:1');
      // Enrolled later (e.g. by an admin import): the session is still level 1.
      const secret = await enrolTotp(services, account.id);
      await new Promise((r) => setTimeout(r, 1100));
      const auth = await rpOptional.authorizationUrl({ acr_values: MFA_ACR });
      const page = await agent.follow(auth.url);
      expect(page.body).not.toContain('name="password"');
      expect(page.body).toContain('Confirm it is you');
      const done = await agent.submit(formAction(page.body), { code: totpCode(secret) });
      const two = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(two.acr).toBe(MFA_ACR);
      expect(two.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(two.auth_time!).toBeGreaterThan(one.auth_time!);
      expect(two.sub).toBe(one.sub);
    });

    test('prompt=none when a step-up is needed returns interaction_required', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(optional.issuer);
      const first = await password(agent, rpOptional, username);
      await rpOptional.redeem(first.next.location!, first.auth);
      await enrolTotp(services, account.id);
      const auth = await rpOptional.authorizationUrl({ acr_values: MFA_ACR, prompt: 'none' });
      const hop = await agent.follow(auth.url);
      expect(new URL(hop.location!).searchParams.get('error')).toBe('interaction_required');
    });

    test('an essential acr that cannot be met returns unmet_authentication_requirements', async () => {
      const { username } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const claims = JSON.stringify({ id_token: { acr: { essential: true, values: ['http://schemas.openid.net/pape/policies/2007/06/phishing-resistant'] } } });
      const { next } = await password(agent, rpOptional, username, { claims });
      expect(new URL(next.location!).searchParams.get('error')).toBe('unmet_authentication_requirements');
    });

    test('a voluntary acr the account cannot reach yields the best achievable level, truthfully', async () => {
      const { username, secret } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, rpOptional, username, { acr_values: 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant' });
      const done = await agent.submit(formAction(next.body), { code: totpCode(secret!) });
      const claims = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(claims.acr).toBe('urn:twofold:acr:2');
    });

    test('discovery lists acr_values_supported', () => {
      const meta = rpOptional.config.serverMetadata();
      expect(meta.acr_values_supported).toEqual(expect.arrayContaining(['urn:twofold:acr:2', MFA_ACR, 'https://refeds.org/profile/mfa']));
    });
  });
}
