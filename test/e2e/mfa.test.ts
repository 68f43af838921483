/**
 * Second factors end to end, with openid-client as the app: enrolment inside
 * sign-in, TOTP and backup codes, truthful acr/amr, step-up without the
 * password, replay and concurrency limits, and unmet requirements.
 *
 * Single use is shown where it matters: over HTTP, across many parallel
 * sign-ins, and (on PostgreSQL) across two provider processes.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, newTotpSecret, totpCode } from '../helpers/factors.ts';
import { cliRunner } from '../helpers/cli.ts';
import { Secret } from 'otpauth';
import { FactorEngine } from '../../src/mfa/engine.ts';
import { BUILT_IN_FACTORS, FactorRegistry } from '../../factors/registry.ts';
import { startProviderProcess } from '../helpers/provider-process.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
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
    let app: { clientId: string; clientSecret: string | null };

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      optional = await startTestServer(database, { MFA: 'optional' });
      required = await startTestServer(database, { MFA: 'required' });
      off = await startTestServer(database, { MFA: 'off' });
      services = optional.opened.services;
      app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
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
      // The authenticator apps that work are named on the page.
      for (const app of ['Google Authenticator', 'Microsoft Authenticator', 'Authy', '1Password', 'Bitwarden', 'FreeOTP', 'Aegis'])
        expect(next.body).toContain(app);
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

      // The secret is sealed at rest: the raw row holds neither the key nor its bytes in any common encoding.
      const row = await services.db
        .selectFrom('credentials')
        .selectAll()
        .where('account_id', '=', claims.sub)
        .where('factor_id', '=', 'totp')
        .executeTakeFirstOrThrow();
      const bytes = Buffer.from(Secret.fromBase32(key).buffer);
      const raw = JSON.stringify(row);
      for (const form of [key, key.toLowerCase(), bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')])
        expect(raw).not.toContain(form);
      expect(row.secret_sealed).toEqual(expect.any(String));
      // Opened with the key from configuration, it is the key the page showed.
      expect((await services.factors.store.list(claims.sub, 'totp'))[0]!.secret).toBe(key);
    });

    test('no dead ends: the required enrolment, the backup-code offer and an error page inside the sign-in each have a way out; cancelling returns access_denied to the app', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(required.issuer);
      const auth = await rpRequired.authorizationUrl();
      const login = await agent.follow(auth.url);
      const uid = /\/interaction\/([^/"]+)\/login/.exec(login.body)![1]!;
      // A step that does not exist here: an error page, with the way back and the way out.
      const error = await agent.request(`/interaction/${uid}/first-factor/totp`, { form: {} });
      expect(error.status).toBe(404);
      expect(error.body).toContain(`href="/interaction/${uid}">Back to the sign-in</a>`);
      expect(error.body).toContain(`href="/interaction/${uid}/abort">Cancel and return to web</a>`);
      const next = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      expect(next.body).toContain('Set up two-step verification');
      expect(next.body).not.toContain('Skip for now');
      const cancel = /<a href="(\/interaction\/[^"]+\/abort)">Cancel and return to web<\/a>/.exec(next.body)![1]!;
      const hop = await agent.follow(cancel);
      const url = new URL(hop.location!);
      expect(`${url.origin}${url.pathname}`).toBe(REDIRECT);
      expect(url.searchParams.get('error')).toBe('access_denied');
      expect(url.searchParams.get('state')).toBe(auth.state);
      expect(await services.factors.store.list(account.id)).toEqual([]);

      // The backup codes offered after a first enrolment can be declined the same way (the authenticator stays).
      const again = new UserAgent(required.issuer);
      const { next: setup } = await password(again, rpRequired, username);
      const key = /<code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!.replace(/\s/g, '');
      const codes = await again.submit(formAction(setup.body), { code: totpCode(key), label: 'Phone' });
      expect(codes.body).toContain('Save your backup codes');
      const out = await again.follow(/<a href="(\/interaction\/[^"]+\/abort)">Cancel and return to web<\/a>/.exec(codes.body)![1]!);
      expect(new URL(out.location!).searchParams.get('error')).toBe('access_denied');
      expect((await services.factors.store.list(account.id)).map((c) => c.factorId)).toEqual(['totp']);
    });

    test('a TOTP secret imported by an admin (twofold user factor import … totp) signs the user in end to end', async () => {
      const { account, username } = await newUser();
      const secret = newTotpSecret();
      const run = cliRunner(() => services);
      const imported = await run(
        'user',
        'factor',
        'import',
        username,
        'totp',
        `secret=${secret.toLowerCase().replace(/(.{4})/g, '$1 ')}`,
        '--label',
        'Old phone',
        '--json',
      );
      expect(imported.code).toBe(0);
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, rpOptional, username);
      expect(next.body).toContain('Two-step verification');
      const done = await agent.submit(formAction(next.body), { code: totpCode(secret) });
      const claims = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(claims.sub).toBe(account.id);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      expect(claims.acr).toBe('urn:twofold:acr:2');
    });

    test('the TOTP window setting is honoured: 0 accepts only the current step, 2 accepts two steps back but not three', async () => {
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const engineWith = (window: number) => new FactorEngine(services, new FactorRegistry(BUILT_IN_FACTORS, { totp: { window } }));
      // Away from a step boundary, so "now" is the same step when the code is made and when it is checked.
      while (Date.now() % 30_000 > 28_000) await new Promise((r) => setTimeout(r, 250));
      const attempt = async (window: number, offset: number) => {
        const { account, secret } = await newUser({ totp: true });
        const state = new InteractionState(services.db, services.sealer, `window-${kind}-${window}-${offset}`);
        const outcome = await engineWith(window).verify('totp', account, state, { code: totpCode(secret!, offset) }, { ip: `198.18.${window}.${offset + 10}` });
        return outcome.ok ? 'accepted' : outcome.reason;
      };
      expect(await attempt(0, 0)).toBe('accepted');
      expect(await attempt(0, -1)).toBe('wrong');
      expect(await attempt(0, 1)).toBe('wrong');
      expect(await attempt(1, -1)).toBe('accepted');
      expect(await attempt(1, -2)).toBe('wrong');
      expect(await attempt(2, -2)).toBe('accepted');
      expect(await attempt(2, 2)).toBe('accepted');
      expect(await attempt(2, -3)).toBe('wrong');
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

    test("a factor's failure is its own message in the sign-in's language: German with ui_locales=de, English without", async () => {
      const { username, secret } = await newUser({ totp: true });
      const wrongCode = (code: string) => (code === '000000' ? '111111' : '000000');
      const german = new UserAgent(optional.issuer);
      const de = await password(german, rpOptional, username, { acr_values: MFA_ACR, ui_locales: 'de' });
      // The factor's own words on the page, too.
      expect(de.next.body).toContain('Geben Sie den 6-stelligen Code aus Ihrer Authenticator-App ein');
      const refused = await german.submit(formAction(de.next.body), { code: wrongCode(totpCode(secret!)) });
      expect(refused.status).toBe(401);
      expect(refused.body).toContain('Dieser Code ist nicht richtig. Geben Sie den Code ein, den Ihre App jetzt anzeigt.');
      expect(refused.body).not.toContain('That code is not right');
      // A typo is the factor's invalid_input message, in German as well.
      const typo = await german.submit(formAction(refused.body), { code: '12' });
      expect(typo.body).toContain('Geben Sie den Code aus Ihrer Authenticator-App ein.');

      const english = new UserAgent(optional.issuer);
      const en = await password(english, rpOptional, username, { acr_values: MFA_ACR });
      const wrong = await english.submit(formAction(en.next.body), { code: wrongCode(totpCode(secret!)) });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('That code is not right. Enter the code your app shows now.');
      expect(wrong.body).not.toContain('Dieser Code');
    });

    test('an authenticator enrolled without a name in a German sign-in is called "Authenticator-App"', async () => {
      const { account, username } = await newUser();
      const agent = new UserAgent(required.issuer);
      const { next } = await password(agent, rpRequired, username, { ui_locales: 'de' });
      expect(next.body).toContain('Scannen Sie diesen Code mit einer Authenticator-App');
      const key = /<code class="key">([^<]+)<\/code>/.exec(next.body)![1]!.replace(/\s/g, '');
      const codes = await agent.submit(formAction(next.body), { code: totpCode(key), label: '' });
      expect(codes.body).toContain('Speichern Sie Ihre Backup-Codes');
      expect((await services.factors.store.list(account.id, 'totp')).map((c) => c.label)).toEqual(['Authenticator-App']);
    });

    test('a code accepted by one provider is refused by a second one on the same database (on PostgreSQL a process of its own), with the replay answer', async () => {
      // On PostgreSQL the second provider is a process of its own, with its own pool and memory. PGlite
      // cannot be opened by two processes, so there it is a second provider instance in this process.
      const second = kind === 'postgres' ? await startProviderProcess(database.url!, { MFA: 'optional' }) : undefined;
      try {
        const rpSecond = second ? await relyingParty(second.issuer, app.clientId, app.clientSecret, REDIRECT) : rpRequired;
        const { username, secret } = await newUser({ totp: true });
        const code = totpCode(secret!);
        const a = new UserAgent(optional.issuer);
        const b = new UserAgent(second?.issuer ?? required.issuer);
        const first = await password(a, rpOptional, username);
        const other = await password(b, rpSecond, username);
        expect(first.next.body).toContain('Two-step verification');
        expect(other.next.body).toContain('Two-step verification');
        const results = await Promise.all([a.submit(formAction(first.next.body), { code }), b.submit(formAction(other.next.body), { code })]);
        const won = results.map((r) => r.location?.includes('callback?code=') === true);
        expect(won.filter(Boolean)).toHaveLength(1);
        const loser = results[won.indexOf(false)]!;
        expect(loser.status).toBe(401);
        expect(loser.body).toContain('That code was already used');
        // The winner's code is real: the app redeems it.
        const winner = won[0] ? { hop: results[0]!, rp: rpOptional, auth: first.auth } : { hop: results[1]!, rp: rpSecond, auth: other.auth };
        expect((await winner.rp.redeem(winner.hop.location!, winner.auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
      } finally {
        await second?.close();
      }
    }, 120_000);

    test('a backup code: the challenge page says how many are left; it signs in once, and warns when few are left', async () => {
      const { account, username } = await newUser({ totp: true });
      await enrolBackupCodes(services, account.id, ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH']);
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, rpOptional, username);
      expect(next.body).toContain('Lost your device?');
      const backupPage = await agent.follow(`${new URL(formAction(next.body), optional.issuer).pathname.replace(/\/factor\/.*/, '')}?factor=backup-codes`);
      expect(backupPage.body).toContain('2 codes left');
      const warned = await agent.submit(formAction(backupPage.body), { code: 'aaaa bbbb cccc dddd' });
      expect(warned.body).toContain('1 backup code left');
      // The notice is no dead end either.
      expect(warned.body).toMatch(/href="\/interaction\/[^/"]+\/abort">Cancel and return to web</);
      const done = await agent.submit(formAction(warned.body), {});
      const claims = (await rpOptional.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));

      // The next sign-in counts the one left, and the spent code is refused.
      const later = new UserAgent(optional.issuer);
      const again = await password(later, rpOptional, username);
      const uid = /\/interaction\/([^/]+)\/factor/.exec(again.next.body)![1]!;
      const page = await later.follow(`/interaction/${uid}?factor=backup-codes`);
      expect(page.body).toContain('1 code left');
      const spent = await later.submit(formAction(page.body), { code: 'AAAA-BBBB-CCCC-DDDD' });
      expect(spent.status).toBe(401);
      expect(spent.body).toContain('1 code left');
    });

    test('backup codes are stored only as keyed hashes; a stored hash typed in, in any encoding, is refused', async () => {
      const { account, username } = await newUser({ totp: true });
      const codes = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', 'JJJJ-KKKK-MMMM-NNNN'];
      const credentialId = await enrolBackupCodes(services, account.id, codes);
      const rows = await services.db.selectFrom('one_time_codes').selectAll().where('credential_id', '=', credentialId).execute();
      expect(rows).toHaveLength(3);
      const unkeyed = (code: string) => {
        const digest = crypto.createHash('sha256').update(code).digest();
        return [digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')];
      };
      for (const row of rows) {
        const stored = JSON.stringify(row);
        for (const code of codes) {
          for (const form of [code, code.replace(/-/g, ''), code.toLowerCase(), code.replace(/-/g, '').toLowerCase()]) expect(stored).not.toContain(form);
          // Keyed: a plain hash of a code (what someone with the table alone could compute) is not what is stored.
          for (const form of [code, code.replace(/-/g, '')]) for (const digest of unkeyed(form)) expect(row.code_hash).not.toBe(digest);
        }
        expect(row.code_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
      }

      const agent = new UserAgent(optional.issuer);
      const { next } = await password(agent, rpOptional, username);
      const uid = /\/interaction\/([^/]+)\/factor/.exec(next.body)![1]!;
      const hash = rows[0]!.code_hash;
      const encodings = [hash, Buffer.from(hash, 'base64url').toString('hex'), Buffer.from(hash, 'base64url').toString('base64')];
      for (const typed of encodings) {
        const refused = await agent.submit(`/interaction/${uid}/factor/backup-codes`, { code: typed });
        expect(refused.status).toBe(401);
        expect(refused.location ?? '').not.toMatch(/code=/);
        // Below the page's format check too: the store hashes what it is given, so a hash is never a code.
        expect(await services.factors.store.consumeOneTimeCode(credentialId, typed)).toBe(false);
      }
      expect(await services.factors.store.remainingOneTimeCodes(credentialId)).toBe(3);
      // The code itself still works.
      const done = await agent.submit(`/interaction/${uid}/factor/backup-codes`, { code: codes[0]! });
      expect(done.body).toContain('You have 2 backup codes left');
      expect(await services.factors.store.remainingOneTimeCodes(credentialId)).toBe(2);
    });

    test('the throttle engages and holds under 200 parallel wrong codes', async () => {
      const { account } = await newUser({ totp: true });
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          services.factors.verify('totp', account, new InteractionState(services.db, services.sealer, `w-${i}`), { code: '000000' }, { ip: '192.0.2.1' }),
        ),
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

  describe(`parallel sign-ins and operator settings on ${kind}`, () => {
    // A server of its own: its global policy raises the second-factor throttle so that the throttle is
    // not what limits the winners below (these tests are about single use; the throttle's own limits
    // are tested above, with 200 parallel wrong codes). Backup codes come five to a set here.
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', FACTOR_SETTINGS: JSON.stringify({ 'backup-codes': { count: 5 } }) });
      services = server.opened.services;
      await savePolicy(
        services.db,
        GLOBAL,
        {
          mfa: 'optional',
          throttle: {
            perAccountBurst: { points: 100, windowSeconds: 300 },
            perAccountDay: { points: 100, windowSeconds: 86400 },
            perAddress: { points: 1000, windowSeconds: 900 },
          },
        },
        'test',
      );
      const app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser() {
      const username = `par${kind}${++userCount}`;
      const account = await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      return { account, username, secret: await enrolTotp(services, account.id) };
    }

    /** `n` browsers of one user, each signed in with the password and shown the second step (ten at a time, under the password throttle). */
    async function atSecondStep(username: string, n: number) {
      const out: Array<{ agent: UserAgent; auth: Awaited<ReturnType<RelyingParty['authorizationUrl']>>; uid: string }> = [];
      for (let i = 0; i < n; i += 10) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(10, n - i) }, async () => {
            const agent = new UserAgent(server.issuer);
            const auth = await rp.authorizationUrl();
            const login = await agent.follow(auth.url);
            const next = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
            expect(next.body).toContain('Two-step verification');
            return { agent, auth, uid: /\/interaction\/([^/]+)\/factor/.exec(next.body)![1]! };
          }),
        );
        out.push(...batch);
      }
      return out;
    }

    test('one valid TOTP code sent by 50 sign-ins at once, over HTTP: accepted exactly once, the rest "already used"', async () => {
      const { username, secret } = await newUser();
      const signIns = await atSecondStep(username, 50);
      const code = totpCode(secret);
      const results = await Promise.all(signIns.map((s) => s.agent.submit(`/interaction/${s.uid}/factor/totp`, { code })));
      const winners = results.filter((r) => r.location?.includes('callback?code='));
      expect(winners).toHaveLength(1);
      const losers = results.filter((r) => !r.location?.includes('callback?code='));
      expect(losers).toHaveLength(49);
      for (const loser of losers) {
        expect(loser.status).toBe(401);
        expect(loser.body).toContain('That code was already used');
      }
      const winner = signIns[results.indexOf(winners[0]!)]!;
      expect((await rp.redeem(winners[0]!.location!, winner.auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    }, 120_000);

    test('one backup code redeemed by 20 sign-ins at once, over HTTP: exactly one succeeds', async () => {
      const { account, username } = await newUser();
      const codes = ['ABCD-EFGH-JKMN-PQRS', 'BBBB-CCCC-DDDD-EEEE', 'FFFF-GGGG-HHHH-JJJJ', 'KKKK-MMMM-NNNN-PPPP', 'QQQQ-RRRR-SSSS-TTTT'];
      const credentialId = await enrolBackupCodes(services, account.id, codes);
      const signIns = await atSecondStep(username, 20);
      const results = await Promise.all(signIns.map((s) => s.agent.submit(`/interaction/${s.uid}/factor/backup-codes`, { code: codes[0]! })));
      // Four left, more than the warning threshold: the winner goes straight back to the app.
      const winners = results.filter((r) => r.location?.includes('callback?code='));
      expect(winners).toHaveLength(1);
      for (const loser of results.filter((r) => r !== winners[0])) {
        expect(loser.status).toBe(401);
        expect(loser.body).toContain('That is not right');
      }
      expect(await services.factors.store.remainingOneTimeCodes(credentialId)).toBe(4);
      const used = await services.db
        .selectFrom('one_time_codes')
        .select('used_at')
        .where('credential_id', '=', credentialId)
        .where('used_at', 'is not', null)
        .execute();
      expect(used).toHaveLength(1);
    }, 120_000);

    test('a set of backup codes is the configured count (5 here), each 16 Crockford base32 symbols (80 bits), offered to download as text and to print', async () => {
      const username = `par${kind}${++userCount}`;
      await createAccount(services.db, services.hasher, { username, password: 'a long password' });
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl({ acr_values: MFA_ACR });
      const login = await agent.follow(auth.url);
      const setup = await agent.submit(formAction(login.body), { login: username, password: 'a long password' });
      expect(setup.body).toContain('Set up two-step verification');
      const key = /<code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!.replace(/\s/g, '');
      const page = await agent.submit(formAction(setup.body), { code: totpCode(key), label: 'Phone' });
      expect(page.body).toContain('Save your backup codes');
      const codes = [...page.body.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]!);
      expect(codes).toHaveLength(5);
      for (const code of codes) expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
      // 16 symbols of a 32-symbol alphabet: 80 bits, above the 64 NIST SP 800-63B asks of saved recovery codes.
      expect(16 * Math.log2(32)).toBeGreaterThanOrEqual(64);
      const download = /<a download="([^"]+)" href="data:text\/plain;charset=utf-8,([^"]+)">Download<\/a>/.exec(page.body);
      expect(download![1]).toBe('twofold-backup-codes.txt');
      expect(
        decodeURIComponent(download![2]!.replace(/&#x3D;/g, '='))
          .trim()
          .split('\n'),
      ).toEqual(codes);
      expect(page.body).toMatch(/<button type="button" class="link" data-print>Print<\/button>/);
      const done = await agent.submit(formAction(page.body), { saved: 'yes' });
      expect((await rp.redeem(done.location!, auth)).claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('the backup-code generator draws every symbol uniformly: over 1,000 codes each position shows all 32 symbols', async () => {
      const { account } = await newUser();
      const { InteractionState } = await import('../../src/mfa/step-state.ts');
      const seen = Array.from({ length: 16 }, () => new Set<string>());
      let total = 0;
      for (let i = 0; total < 1000; i++) {
        const view = await services.factors.beginEnrollment(
          'backup-codes',
          account,
          new InteractionState(services.db, services.sealer, `entropy-${kind}-${i}`),
        );
        for (const code of view.data.codes as string[]) {
          total++;
          [...code.replace(/-/g, '')].forEach((c, p) => seen[p]!.add(c));
        }
      }
      // A biased or short generator (fewer than 5 bits per symbol) would leave symbols out.
      for (const position of seen) expect(position.size).toBe(32);
    });
  });
}
