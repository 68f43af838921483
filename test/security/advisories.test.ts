/**
 * Regression tests for the classes of flaw our peers shipped (issue 13), one
 * each, named after the class and its advisory, over HTTP against a real
 * provider where the class is about HTTP. Some classes are covered at length
 * elsewhere (named in each test); these stay short, but each fails if the
 * class comes back. The lockout advisories (Keycloak CVE-2024-4629 and
 * CVE-2024-1722, ZITADEL CVE-2024-32868, CVE-2023-47111) live with the lockout
 * tests.
 */
import crypto, { webcrypto } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { SoftwareAuthenticator, formInput, optionsInPage } from '../helpers/webauthn.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { runCli } from '../../src/cli/run.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const BACKUP = ['AAAABBBBCCCCDDDD', 'EEEEFFFFGGGGHHHH', 'JJJJKKKKMMMMNNNN'];

/**
 * Jest hands the test's vm context Node's own structuredClone, whose copies belong to the outer realm, and
 * oidc-provider then refuses a client's inline JWKS (see test/e2e/oidc-flow.test.ts). Copy within this realm.
 */
const outerClone = globalThis.structuredClone;
function realmClone<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(realmClone) as T;
  if (value instanceof Date) return new Date(value.getTime()) as T;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return outerClone(value);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, realmClone(v)])) as T;
}
globalThis.structuredClone = realmClone as typeof structuredClone;

const title = (hop: Hop) => /<title>([^<]*)<\/title>/.exec(hop.body)?.[1] ?? '';
const uidOf = (hop: Hop) => /\/interaction\/([^/"?]+)/.exec(hop.body)![1]!;
const gotCode = (hop: Hop) => hop.location !== undefined && hop.location.startsWith(REDIRECT) && new URL(hop.location).searchParams.has('code');

for (const kind of DIALECTS) {
  describe(`peers' advisories on ${kind}`, () => {
    let database: TestDatabase;
    let optional: TestServer; // MFA=optional
    let off: TestServer; // MFA=off, same database: a password-only session
    let required: TestServer; // MFA=required, same database: enrolment inside sign-in
    let services: Services;
    let app: { clientId: string; clientSecret: string | null };
    const rps = new Map<TestServer, RelyingParty>();
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      optional = await startTestServer(database, { MFA: 'optional' });
      off = await startTestServer(database, { MFA: 'off' });
      required = await startTestServer(database, { MFA: 'required' });
      services = optional.opened.services;
      app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      for (const server of [optional, off, required]) rps.set(server, await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT));
    });

    afterAll(async () => {
      for (const server of [optional, off, required]) await server?.close();
      await database?.close();
    });

    async function newUser(options: { totp?: boolean; backup?: boolean } = {}) {
      const account = await createAccount(services.db, services.hasher, { username: `adv${kind}${++users}`, password: PASSWORD });
      const secret = options.totp ? await enrolTotp(services, account.id) : undefined;
      if (options.backup) await enrolBackupCodes(services, account.id, BACKUP);
      return { account, secret };
    }

    /** The password step of a sign-in at `server`; returns the page after it. */
    async function password(agent: UserAgent, server: TestServer, account: Account, extra: Record<string, string> = {}, secret = PASSWORD) {
      const auth = await rps.get(server)!.authorizationUrl(extra);
      const login = await agent.follow(auth.url);
      const next = await agent.submit(formAction(login.body), { login: account.username, password: secret });
      return { auth, next };
    }

    const credentialIds = async (accountId: string) => (await services.factors.store.list(accountId)).map((c) => c.id).sort();

    test('CVE-2026-3429 class: a password-only session cannot remove or replace a second factor', async () => {
      const { account, secret } = await newUser({ totp: true, backup: true });
      const before = await credentialIds(account.id);
      const agent = new UserAgent(off.issuer);
      // MFA off: the password alone signs in (level 1).
      const { next } = await password(agent, off, account);
      expect(gotCode(next)).toBe(true);
      // With that session, ask to add backup codes (which replace the existing set) and an authenticator.
      for (const factor of ['backup-codes', 'totp']) {
        const page = await agent.follow((await rps.get(off)!.authorizationUrl({ twofold_enroll: factor })).url);
        // An existing factor is proved first: no enrolment page on the password alone.
        expect(title(page)).toBe('Confirm it is you · Twofold');
        expect(page.body).not.toContain(`/enroll/${factor}"`);
        // Posting the enrolment straight away changes nothing.
        const forced = await agent.request(`/interaction/${uidOf(page)}/enroll/${factor}`, {
          form: { saved: 'yes', code: totpCode(secret!), label: 'Attacker' },
        });
        expect(forced.status).toBe(302);
        expect(await credentialIds(account.id)).toEqual(before);
      }
      const backup = (await services.factors.store.list(account.id, 'backup-codes'))[0]!;
      expect(await services.factors.store.remainingOneTimeCodes(backup.id)).toBe(BACKUP.length);
    });

    test('CVE-2026-37982 class: the add-a-key flow (twofold_enroll) cannot be replayed to enrol an attacker’s key', async () => {
      const { account, secret } = await newUser({ totp: true });
      const victim = new UserAgent(optional.issuer);
      const { auth, next } = await password(victim, optional, account, { twofold_enroll: 'webauthn' });
      const adding = await victim.submit(formAction(next.body), { code: totpCode(secret!) });
      expect(title(adding)).toBe('Add Security key · Twofold');
      const action = formAction(adding.body);
      const options = optionsInPage(adding.body, 'register');
      const attackerKey = new SoftwareAuthenticator({ origin: optional.issuer });

      // Replayed from another browser while the victim's flow is open: no interaction cookie, nothing enrolled.
      const stranger = new UserAgent(optional.issuer);
      const early = await stranger.request(action, { form: formInput(attackerKey.register(options), 'Attacker') });
      expect(early.status).toBeGreaterThanOrEqual(400);
      expect(await services.factors.store.list(account.id, 'webauthn')).toEqual([]);

      // The victim finishes; the same form replayed afterwards in the victim's own browser is refused too.
      const victimKey = new SoftwareAuthenticator({ origin: optional.issuer });
      const codes = await victim.submit(action, formInput(victimKey.register(options), 'Desk key'));
      const done = await victim.submit(formAction(codes.body), { saved: 'yes' });
      expect(gotCode(done)).toBe(true);
      await rps.get(optional)!.redeem(done.location!, auth);
      const late = await victim.request(action, { form: formInput(attackerKey.register(options), 'Attacker') });
      expect(late.location ?? '').not.toMatch(/code=/);
      expect((await services.factors.store.list(account.id, 'webauthn')).map((c) => c.label)).toEqual(['Desk key']);
    });

    test('CVE-2026-8830 class: WebAuthn registration is checked on the server, whatever the browser was told', async () => {
      const { account } = await newUser();
      const agent = new UserAgent(required.issuer);
      const { next } = await password(agent, required, account);
      expect(next.body).toContain('Set up two-step verification');
      let page = await agent.follow(`${required.issuer}/interaction/${uidOf(next)}?factor=webauthn`);
      const key = new SoftwareAuthenticator({ origin: required.issuer });
      // Each answer below breaks one rule; each is refused and nothing is stored (four: a fifth failure would be throttled).
      // More rules, one by one, in test/unit/webauthn.test.ts.
      for (const broken of [{ rpId: 'evil.example' }, { origin: 'http://evil.example' }, { claimedId: crypto.randomBytes(32) }, { attestationAlg: -257 }]) {
        const selfAttested = new SoftwareAuthenticator({ origin: required.issuer, attestation: { chain: [] } });
        const answer = ('attestationAlg' in broken ? selfAttested : key).register(optionsInPage(page.body, 'register'), broken);
        page = await agent.submit(formAction(page.body), formInput(answer, 'Key'));
        expect(page.status).toBe(400);
        expect(await services.factors.store.list(account.id)).toEqual([]);
      }
      // A sound answer to the same options registers: the refusals above were the rules' doing.
      const codes = await agent.submit(formAction(page.body), formInput(key.register(optionsInPage(page.body, 'register')), 'Key'));
      expect(codes.body).toContain('Save your backup codes');
      expect((await services.factors.store.list(account.id, 'webauthn')).map((c) => c.label)).toEqual(['Key']);
    });

    test('CVE-2026-18963 class: after a password reset (twofold user set-password) the next sign-in still asks for the second factor', async () => {
      const { account, secret } = await newUser({ totp: true, backup: true });
      const before = await credentialIds(account.id);
      const code = await runCli(
        ['user', 'set-password', account.username, '--password-stdin'],
        { out: () => {}, err: () => {}, stdin: 'the reset password\n' },
        services,
        'admin:test',
      );
      expect(code).toBe(0);
      expect(await credentialIds(account.id)).toEqual(before);
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, optional, account, {}, 'the reset password');
      expect(gotCode(next)).toBe(false);
      expect(title(next)).toBe('Two-step verification · Twofold');
      const done = await agent.submit(formAction(next.body), { code: totpCode(secret!) });
      const claims = (await rps.get(optional)!.redeem(done.location!, auth)).claims()!;
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    });

    test('CVE-2025-64103 class: signed in after one factor: no step of the interaction yields a code on the password alone', async () => {
      const { account } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const { auth, next } = await password(agent, optional, account);
      expect(title(next)).toBe('Two-step verification · Twofold');
      const uid = uidOf(next);
      const attempts: Hop[] = [
        await agent.submit(`/interaction/${uid}/continue`, {}),
        await agent.submit(`/interaction/${uid}/skip`, {}),
        await agent.submit(`/interaction/${uid}/consent`, {}),
        await agent.submit(`/interaction/${uid}/login`, { login: account.username, password: PASSWORD }),
        await agent.submit(`/interaction/${uid}/factor/totp`, { code: '' }),
        await agent.follow(`${optional.issuer}/auth/${uid}`),
        await agent.follow(auth.url),
      ];
      for (const hop of attempts) expect(gotCode(hop)).toBe(false);
    });

    test('authentik CVE-2023-48228 class: PKCE verifier dropped: a code issued with a challenge is not redeemed without its verifier', async () => {
      const { account } = await newUser();
      const token = (code: string, verifier?: string) =>
        fetch(new URL('/token', off.issuer), {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64')}`,
          },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code,
            redirect_uri: REDIRECT,
            ...(verifier === undefined ? {} : { code_verifier: verifier }),
          }),
        });
      for (const verifier of [undefined, '', oidc.randomPKCECodeVerifier()]) {
        const { next } = await password(new UserAgent(off.issuer), off, account);
        const res = await token(new URL(next.location!).searchParams.get('code')!, verifier);
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toMatch(/^invalid_(grant|request)$/);
      }
      // The same request with the verifier works, so only the verifier decided.
      const { auth, next } = await password(new UserAgent(off.issuer), off, account);
      expect((await token(new URL(next.location!).searchParams.get('code')!, auth.verifier)).status).toBe(200);
      // And a request without a challenge gets no code at all.
      const bare = new URL(auth.url);
      bare.searchParams.delete('code_challenge');
      bare.searchParams.delete('code_challenge_method');
      const refused = await new UserAgent(off.issuer).follow(bare.toString());
      expect(refused.location ?? '').not.toMatch(/code=/);
    });

    test('Hydra GHSA-3p3g-vpw6-4w66 class: a private_key_jwt client assertion is accepted once, never replayed', async () => {
      const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
      const jwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
      const created = await createClient(services.db, services.sealer, {
        name: 'jwt app',
        redirectUris: [REDIRECT],
        firstParty: true,
        authMethod: 'private_key_jwt',
        jwks: { keys: [{ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y!, kid: 'k1', alg: 'ES256', use: 'sig' }] },
      });
      const party = await relyingParty(off.issuer, created.clientId, null, REDIRECT, { auth: oidc.PrivateKeyJwt({ key: pair.privateKey, kid: 'k1' }) });
      const { account } = await newUser();
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(created.clientId)
        .setSubject(created.clientId)
        .setAudience(off.issuer)
        .setJti(crypto.randomUUID())
        .setIssuedAt()
        .setExpirationTime('2m')
        .sign(pair.privateKey);
      const redeem = async () => {
        const agent = new UserAgent(off.issuer);
        const auth = await party.authorizationUrl();
        const login = await agent.follow(auth.url);
        const next = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
        return fetch(new URL('/token', off.issuer), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: new URL(next.location!).searchParams.get('code')!,
            redirect_uri: REDIRECT,
            code_verifier: auth.verifier,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: assertion,
          }),
        });
      };
      expect((await redeem()).status).toBe(200);
      const replayed = await redeem();
      expect(replayed.status).toBe(401);
      expect(((await replayed.json()) as { error: string }).error).toBe('invalid_client');
    });

    test('tinyauth GHSA-3q28-qjrv-qr39 class: a browser past the password but not its second factor reaches no code and no token', async () => {
      const { account } = await newUser({ totp: true });
      const agent = new UserAgent(optional.issuer);
      const { next } = await password(agent, optional, account);
      expect(title(next)).toBe('Two-step verification · Twofold');
      const rp = rps.get(optional)!;
      // Silent authentication with the same browser: login_required, no code.
      const silent = await agent.follow((await rp.authorizationUrl({ prompt: 'none' })).url);
      const answer = new URL(silent.location!);
      expect(answer.searchParams.get('error')).toBe('login_required');
      expect(answer.searchParams.has('code')).toBe(false);
      // Nothing the browser holds is a bearer token, and no provider session was made for the account.
      for (const value of agent.cookies.values())
        expect((await fetch(`${optional.issuer}/me`, { headers: { authorization: `Bearer ${value}` } })).status).toBe(401);
      const sessions = await services.db.selectFrom('oidc_payloads').select('payload').where('kind', '=', 'Session').execute();
      expect(sessions.filter((s) => (s.payload as { accountId?: string }).accountId === account.id)).toEqual([]);
    });

    test('SimpleLogin class: a stored hash is never accepted as the code it hashes', async () => {
      const { account } = await newUser({ totp: true, backup: true });
      const backup = (await services.factors.store.list(account.id, 'backup-codes'))[0]!;
      const stored = (await services.db.selectFrom('one_time_codes').select('code_hash').where('credential_id', '=', backup.id).execute()).map(
        (r) => r.code_hash,
      );
      expect(stored).toHaveLength(BACKUP.length);
      // What is stored is not the code in any form.
      for (const code of BACKUP) expect(stored.join('\n')).not.toContain(code);
      // Offered as the code, at the store (no format check in the way) and over HTTP: refused, nothing consumed.
      for (const hash of stored) expect(await services.factors.store.consumeOneTimeCode(backup.id, hash)).toBe(false);
      const agent = new UserAgent(optional.issuer);
      const { next } = await password(agent, optional, account);
      const page = await agent.follow(`${optional.issuer}/interaction/${uidOf(next)}?factor=backup-codes`);
      const refused = await agent.submit(formAction(page.body), { code: stored[0]! });
      expect(gotCode(refused)).toBe(false);
      expect(await services.factors.store.remainingOneTimeCodes(backup.id)).toBe(BACKUP.length);
      // The code itself still works, so the refusals were about the hash.
      expect(await services.factors.store.consumeOneTimeCode(backup.id, BACKUP[0]!)).toBe(true);
    });
  });

  // Its own provider: it stores a global policy, which would override the MFA modes of the servers above.
  describe(`authentik CVE-2024-47070 class: a forged X-Forwarded-For skips no check, on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let rp: RelyingParty;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database); // TRUST_PROXY off (the default)
      const { db, sealer } = server.opened.services;
      // Three wrong passwords per address, however many logins.
      await savePolicy(db, GLOBAL, { throttle: { passwordPerAddress: { points: 3, windowSeconds: 900 } } }, 'test');
      const created = await createClient(db, sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, created.clientId, created.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('wrong passwords each sent with a new forged X-Forwarded-For still count against this address', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const forged = `203.0.113.${i + 1}`;
        const agent = new UserAgent(server.issuer);
        const login = await agent.request((await rp.authorizationUrl()).url, { headers: { 'x-forwarded-for': forged } });
        const page = await agent.follow(login.location!);
        // A different unknown login each time: only the per-address limit can stop these.
        const answer = await agent.request(formAction(page.body), {
          form: { login: `nobody${i}`, password: 'wrong password' },
          headers: { 'x-forwarded-for': forged, 'x-real-ip': forged, forwarded: `for=${forged}` },
        });
        statuses.push(answer.status);
      }
      expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
      expect(statuses.slice(3)).toEqual([429, 429]);
    });
  });
}
