/**
 * Server-side WebAuthn verification without a browser or a database.
 *
 * 1. Recorded fixtures (test/fixtures/webauthn/chromium-*.json, made by
 *    record.ts with Chromium's virtual authenticators): a device-bound
 *    security key and a synced platform passkey register and sign twice; the
 *    factors accept them, and refuse them once anything about them is off
 *    (origin, RP ID, challenge, signature, order of the counters, replay).
 * 2. Every policy choice enforced on the response itself, never trusted from
 *    the options (user presence and verification, discoverable credential,
 *    attachment, algorithm, attestation and its chain, AAGUID, excluded
 *    credentials, ceremony type, framing, user handle, backup eligibility),
 *    with answers from the software authenticator in test/helpers/webauthn.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import webauthn, { webauthnSettings } from '../../factors/webauthn/index.ts';
import passkey, { passkeySettings } from '../../factors/passkey/index.ts';
import type { Credential, EnrollResult, FactorContext, FactorServices, RelyingParty, StepView, VerifyResult } from '../../factors/types.ts';
import { SoftwareAuthenticator, formInput, optionsOf } from '../helpers/webauthn.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'webauthn');
const fixture = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
const pem = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const ORIGIN = 'http://localhost:3000';
/** The AAGUID in the test attestation certificate's id-fido-gen-ce-aaguid extension. */
const TEST_AAGUID = '7477666f-6c64-2d74-6573-742d6b657921';

/**
 * The narrow services a factor gets, in memory: step state for one
 * interaction (with the TTLs it was given), and credentials whose counters
 * only advance upwards, as the credential store's conditional UPDATE does.
 */
class Harness {
  readonly state = new Map<string, unknown>();
  readonly ttls = new Map<string, number>();
  readonly credentials: Credential[] = [];
  readonly services: FactorServices;

  constructor(rp: Partial<RelyingParty> = {}) {
    const relyingParty: RelyingParty = { id: 'localhost', name: 'Twofold', origins: [ORIGIN], attestation: 'none', aaguids: [], attestationRoots: [], ...rp };
    // No out-of-band codes, questions to a device or HTTP calls here: WebAuthn never sends anything.
    const services: Omit<FactorServices, 'outOfBand' | 'answers' | 'http'> = {
      advanceCounter: async (id, value) => {
        const c = this.credentials.find((x) => x.id === id)!;
        if (c.counter !== null && c.counter >= value) return false;
        c.counter = value;
        return true;
      },
      consumeOneTimeCode: async () => false,
      remainingOneTimeCodes: async () => 0,
      constantTimeEqual: (a, b) => a === b,
      randomBytes: (n) => crypto.randomBytes(n),
      clock: { now: () => new Date() },
      state: {
        get: async <T>(key: string) => structuredClone(this.state.get(key)) as T | undefined,
        set: async (key, value, ttl) => {
          this.state.set(key, structuredClone(value));
          this.ttls.set(key, ttl);
        },
        take: async <T>(key: string) => {
          const v = this.state.get(key);
          this.state.delete(key);
          return v as T | undefined;
        },
      },
      issuer: ORIGIN,
      issuerName: 'Twofold',
      relyingParty,
    };
    this.services = services as FactorServices;
  }

  ctx<S>(settings: S): FactorContext<S> {
    return { account: { id: 'acct', username: 'alice', email: 'alice@example.test', displayName: 'Alice' }, settings, services: this.services };
  }

  /** Stores what an enrolment produced, as the engine would. */
  keep(result: EnrollResult): Credential {
    if (!result.ok) throw new Error(`enrolment failed: ${JSON.stringify(result)}`);
    const c: Credential = {
      id: `cred-${this.credentials.length + 1}`,
      factorId: 'webauthn',
      label: typeof result.credential.label === 'string' ? result.credential.label : result.credential.label.key,
      lookupKey: result.credential.lookupKey,
      data: result.credential.data ?? {},
      counter: result.credential.counter ?? null,
      createdAt: new Date(),
      lastUsedAt: null,
    };
    this.credentials.push(c);
    return c;
  }
}

const defaults = webauthnSettings.parse(undefined);
const passkeyDefaults = passkeySettings.parse(undefined);

async function enrolWith(h: Harness, authenticator: SoftwareAuthenticator, settings = defaults, overrides = {}) {
  const view = await webauthn.beginEnrollment(h.ctx(settings), h.credentials);
  const result = await webauthn.finishEnrollment(h.ctx(settings), formInput(authenticator.register(optionsOf(view), overrides), 'Key'));
  return { view, result };
}

async function challenge(h: Harness, settings = defaults): Promise<StepView> {
  return webauthn.beginChallenge(h.ctx(settings), h.credentials);
}

function reason(result: EnrollResult | VerifyResult): string | undefined {
  return result.ok ? undefined : result.reason;
}

describe('recorded Chromium fixtures', () => {
  const cases = [
    { file: 'chromium-security-key.json', factor: webauthn, settings: defaults, amr: ['hwk', 'user'], backupEligible: false, algorithm: -7 },
    { file: 'chromium-synced-passkey.json', factor: passkey, settings: passkeyDefaults, amr: ['swk', 'user'], backupEligible: true, algorithm: -8 },
  ] as const;

  for (const c of cases) {
    describe(c.file, () => {
      const f = fixture(c.file);

      /** Registers the fixture's credential; the challenge is put in step state as the page's options would have. */
      async function registered(rp: Partial<RelyingParty> = {}) {
        const h = new Harness({ origins: [f.origin], ...rp });
        h.state.set('registration', { challenge: f.registration.challenge, userHandle: f.userHandle, exclude: [] });
        const result = await c.factor.finishEnrollment(h.ctx(c.settings as never), formInput(f.registration.response, 'Recorded'));
        return { h, result };
      }

      /** Answers assertion `i` of the fixture as a first factor (no allow list, as on the login page). */
      async function assert(h: Harness, i: number, challengeOverride?: string): Promise<VerifyResult> {
        const a = f.assertions[i];
        h.state.set('assertion', { challenge: challengeOverride ?? a.challenge, allow: null, firstFactor: true });
        return c.factor.verify(h.ctx(c.settings as never), h.credentials, formInput(a.response));
      }

      test('the registration verifies: public key, algorithm, backup flags, user handle, counter', async () => {
        const { h, result } = await registered();
        expect(result).toMatchObject({ ok: true, proves: true, kinds: ['have', 'are'], amr: c.amr });
        const credential = h.keep(result);
        expect(credential.lookupKey).toBe(f.registration.response.id);
        expect(credential.data).toMatchObject({
          credentialId: f.registration.response.id,
          algorithm: c.algorithm,
          userHandle: f.userHandle,
          backupEligible: c.backupEligible,
          backedUp: c.backupEligible,
          discoverable: true,
          userVerified: true,
          fmt: 'none',
        });
        expect(credential.counter).toBe(1);
        // The registration is spent.
        expect(h.state.has('registration')).toBe(false);
      });

      test('both assertions verify in order, identify their credential, and advance the counter', async () => {
        const { h, result } = await registered();
        const credential = h.keep(result);
        expect(passkey.identify!(formInput(f.assertions[0].response))).toEqual({ ok: true, lookupKey: credential.lookupKey });
        expect(await assert(h, 0)).toMatchObject({ ok: true, credentialId: credential.id, kinds: ['have', 'are'], amr: c.amr, userVerified: true, counter: 2 });
        expect(await assert(h, 1)).toMatchObject({ ok: true, counter: 3 });
        expect(credential.counter).toBe(3);
      });

      test('a replayed assertion is refused: its challenge is spent, and with a fresh one its counter is behind', async () => {
        const { h, result } = await registered();
        const credential = h.keep(result);
        expect((await assert(h, 0)).ok).toBe(true);
        // The same answer again, the challenge gone from step state:
        expect(reason(await c.factor.verify(h.ctx(c.settings as never), h.credentials, formInput(f.assertions[0].response)))).toBe('expired');
        // Even if an attacker got the same challenge issued again, the counter has moved on.
        expect(reason(await assert(h, 0))).toBe('suspected_clone');
        expect(credential.counter).toBe(2);
      });

      test('assertions out of order (the later counter first): the earlier one is a suspected clone', async () => {
        const { h, result } = await registered();
        h.keep(result);
        expect((await assert(h, 1)).ok).toBe(true);
        expect(await assert(h, 0)).toMatchObject({ ok: false, reason: 'suspected_clone', credentialId: 'cred-1' });
      });

      test('refused for another origin, another RP ID, another challenge, or a changed signature', async () => {
        expect(reason((await registered({ origins: ['https://id.example.com'] })).result)).toBe('wrong');
        expect(reason((await registered({ id: 'example.com' })).result)).toBe('wrong');

        const { h, result } = await registered();
        h.keep(result);
        const original = h.services.relyingParty;
        h.services.relyingParty = { ...original, origins: ['https://id.example.com'] };
        expect(reason(await assert(h, 0))).toBe('wrong');
        h.services.relyingParty = { ...original, id: 'example.com' };
        expect(reason(await assert(h, 0))).toBe('wrong');
        h.services.relyingParty = original;
        expect(reason(await assert(h, 0, f.assertions[1].challenge))).toBe('wrong');
        const tampered = structuredClone(f.assertions[0].response);
        const sig = Buffer.from(tampered.response.signature, 'base64url');
        sig[sig.length - 1]! ^= 1;
        tampered.response.signature = sig.toString('base64url');
        h.state.set('assertion', { challenge: f.assertions[0].challenge, allow: null, firstFactor: true });
        expect(reason(await c.factor.verify(h.ctx(c.settings as never), h.credentials, formInput(tampered)))).toBe('wrong');
        // None of the refusals moved the counter: the genuine answer still works.
        expect((await assert(h, 0)).ok).toBe(true);
      });

      test('a registration answer for another challenge is refused, and the pending registration survives it', async () => {
        const h = new Harness({ origins: [f.origin] });
        h.state.set('registration', { challenge: 'c29tZXRoaW5nIGVsc2U', userHandle: f.userHandle, exclude: [] });
        expect(reason(await c.factor.finishEnrollment(h.ctx(c.settings as never), formInput(f.registration.response)))).toBe('wrong');
        expect(h.state.has('registration')).toBe(true);
      });
    });
  }
});

describe('policy enforced on the response', () => {
  test('challenges: 32 random bytes, fresh each time, kept server-side for the configured time', async () => {
    const h = new Harness();
    const first = optionsOf(await challenge(h, { ...defaults, timeout: 120 }));
    const second = optionsOf(await challenge(h, { ...defaults, timeout: 120 }));
    expect(Buffer.from(first.challenge, 'base64url')).toHaveLength(32);
    expect(first.challenge).not.toBe(second.challenge);
    expect(h.ttls.get('assertion')).toBe(120);
    expect(first.timeout).toBe(120_000);
    const reg = optionsOf(await webauthn.beginEnrollment(h.ctx(defaults), []));
    expect(Buffer.from(reg.challenge, 'base64url')).toHaveLength(32);
    expect(h.ttls.get('registration')).toBe(defaults.timeout);
  });

  test('registration options: resident key preferred and user verification preferred by default, attestation none, credProps asked', async () => {
    const h = new Harness();
    const options = optionsOf(await webauthn.beginEnrollment(h.ctx(defaults), []));
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'preferred', userVerification: 'preferred' });
    expect(options.attestation).toBe('none');
    expect(options.extensions).toMatchObject({ credProps: true });
    expect(options.rp).toEqual({ id: 'localhost', name: 'Twofold' });
    expect(options.pubKeyCredParams.map((p: { alg: number }) => p.alg)).toEqual([-8, -7, -257]);
    const pk = optionsOf(await passkey.beginEnrollment(h.ctx(passkeyDefaults), []));
    expect(pk.authenticatorSelection).toMatchObject({ residentKey: 'required', requireResidentKey: true, userVerification: 'required' });
  });

  test('registration excludes the account’s existing credentials, and refuses one of them again', async () => {
    const h = new Harness();
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    h.keep((await enrolWith(h, a)).result);
    const view = await webauthn.beginEnrollment(h.ctx(defaults), h.credentials);
    expect(optionsOf(view).excludeCredentials?.map((c: { id: string }) => c.id)).toEqual([h.credentials[0]!.lookupKey]);
    // An authenticator that ignored the exclusion and answered with the same credential:
    const again = a.register(optionsOf(view), { credentialId: Buffer.from(h.credentials[0]!.lookupKey!, 'base64url') });
    expect(await webauthn.finishEnrollment(h.ctx(defaults), formInput(again))).toMatchObject({ ok: false, reason: 'already_used' });
    // A second key of the same account gets the same user handle (one passkey per account per authenticator).
    const b = new SoftwareAuthenticator({ origin: ORIGIN });
    const second = h.keep(await webauthn.finishEnrollment(h.ctx(defaults), formInput(b.register(optionsOf(view)))));
    expect(second.data.userHandle).toBe(h.credentials[0]!.data.userHandle);
  });

  test('the exclusion is checked on the credential id in the authenticator data, not the id the client claims beside it', async () => {
    const h = new Harness();
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    h.keep((await enrolWith(h, a)).result);
    const excluded = Buffer.from(h.credentials[0]!.lookupKey!, 'base64url');
    const view = await webauthn.beginEnrollment(h.ctx(defaults), h.credentials);
    // The excluded credential again, with a fresh id claimed beside it: still the excluded credential.
    const disguised = a.register(optionsOf(view), { credentialId: excluded, claimedId: crypto.randomBytes(32) });
    expect(await webauthn.finishEnrollment(h.ctx(defaults), formInput(disguised))).toMatchObject({ ok: false, reason: 'already_used' });
    // A fresh credential claiming to be another one (the excluded one, or any other): the claim is refused, not stored.
    for (const claimedId of [excluded, crypto.randomBytes(32)]) {
      const lying = new SoftwareAuthenticator({ origin: ORIGIN }).register(optionsOf(view), { claimedId });
      expect(reason(await webauthn.finishEnrollment(h.ctx(defaults), formInput(lying)))).toBe('wrong');
    }
    // The pending registration survived every refusal: an honest answer still registers, under the id it signed.
    const honest = new SoftwareAuthenticator({ origin: ORIGIN });
    const answer = honest.register(optionsOf(view));
    expect(await webauthn.finishEnrollment(h.ctx(defaults), formInput(answer))).toMatchObject({ ok: true, credential: { lookupKey: answer.id } });
  });

  test('packed self attestation (WebAuthn §8.2): the statement’s alg must be the credential key’s algorithm', async () => {
    const selfAttested = new SoftwareAuthenticator({ origin: ORIGIN, attestation: { chain: [] } });
    expect((await enrolWith(new Harness(), selfAttested)).result).toMatchObject({ ok: true, credential: { data: { fmt: 'packed', algorithm: -7 } } });
    // An ES256 key whose statement says RS256: the signature (SHA-256 over the same bytes) verifies, the claim is false.
    expect(reason((await enrolWith(new Harness(), selfAttested, defaults, { attestationAlg: -257 })).result)).toBe('wrong');
    expect(reason((await enrolWith(new Harness(), selfAttested, defaults, { attestationAlg: -8 })).result)).toBe('wrong');
  });

  test('user presence is always required; user verification when the settings require it', async () => {
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    expect(reason((await enrolWith(new Harness(), a, defaults, { up: false })).result)).toBe('wrong');
    const required = { ...defaults, userVerification: 'required' as const };
    expect(reason((await enrolWith(new Harness(), a, required, { uv: false })).result)).toBe('wrong');
    // Preferred: a key without user verification registers, and proves possession only.
    const h = new Harness();
    const { result } = await enrolWith(h, a, defaults, { uv: false });
    expect(result).toMatchObject({ ok: true, kinds: ['have'] });
    h.keep(result);
    expect(await webauthn.verify(h.ctx(defaults), h.credentials, formInput(a.assert(optionsOf(await challenge(h)), { uv: false })))).toMatchObject({
      ok: true,
      kinds: ['have'],
      userVerified: false,
    });
    expect(reason(await webauthn.verify(h.ctx(defaults), h.credentials, formInput(a.assert(optionsOf(await challenge(h)), { up: false }))))).toBe('wrong');
    expect(reason(await webauthn.verify(h.ctx(required), h.credentials, formInput(a.assert(optionsOf(await challenge(h, required)), { uv: false }))))).toBe(
      'wrong',
    );
  });

  test('a passkey needs user verification and a discoverable credential, whatever the browser was told', async () => {
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    const attempt = async (overrides: Record<string, unknown>) => {
      const h = new Harness();
      const view = await passkey.beginEnrollment(h.ctx(passkeyDefaults), []);
      return passkey.finishEnrollment(h.ctx(passkeyDefaults), formInput(a.register(optionsOf(view), overrides)));
    };
    expect(reason(await attempt({ uv: false }))).toBe('wrong');
    expect(reason(await attempt({ rk: false }))).toBe('wrong');
    // A browser that does not report credProps: not known to be discoverable, so not a passkey.
    expect(reason(await attempt({ rk: null }))).toBe('wrong');
    expect((await attempt({})).ok).toBe(true);
    // A security key registered without credProps still works as a second factor, recorded as unknown.
    const h = new Harness();
    expect(h.keep((await enrolWith(h, a, defaults, { rk: null })).result).data.discoverable).toBeNull();
  });

  test('attachment: only the kind of authenticator the settings allow', async () => {
    const platformOnly = { ...defaults, attachment: 'platform' as const };
    const options = optionsOf(await webauthn.beginEnrollment(new Harness().ctx(platformOnly), []));
    expect(options.authenticatorSelection?.authenticatorAttachment).toBe('platform');
    const key = new SoftwareAuthenticator({ origin: ORIGIN, attachment: 'cross-platform' });
    expect(reason((await enrolWith(new Harness(), key, platformOnly)).result)).toBe('wrong');
    expect(reason((await enrolWith(new Harness(), key, platformOnly, { attachment: null })).result)).toBe('wrong');
    const laptop = new SoftwareAuthenticator({ origin: ORIGIN, attachment: 'platform' });
    expect((await enrolWith(new Harness(), laptop, platformOnly)).result).toMatchObject({ ok: true, credential: { data: { attachment: 'platform' } } });
  });

  test('algorithms: a key of an algorithm the settings do not allow is refused', async () => {
    const eddsaOnly = { ...defaults, algorithms: [-8] as typeof defaults.algorithms };
    expect(reason((await enrolWith(new Harness(), new SoftwareAuthenticator({ origin: ORIGIN }), eddsaOnly)).result)).toBe('wrong');
    // An ES256 key claiming another algorithm in its COSE key does not pass either.
    expect(reason((await enrolWith(new Harness(), new SoftwareAuthenticator({ origin: ORIGIN }), defaults, { alg: -257 })).result)).toBe('wrong');
  });

  describe('attestation required', () => {
    const chain = [new crypto.X509Certificate(pem('attestation-leaf.pem')).raw];
    const attestationKey = crypto.createPrivateKey(pem('attestation-leaf.key'));
    const attested = () => new SoftwareAuthenticator({ origin: ORIGIN, aaguid: TEST_AAGUID, attestation: { chain, key: attestationKey } });
    const rp = (roots: string[], aaguids: string[] = []) => new Harness({ attestation: 'required', attestationRoots: roots, aaguids });

    test('asks for direct attestation, and accepts a statement that chains to a trust anchor', async () => {
      const h = rp([pem('attestation-root.pem')]);
      const view = await webauthn.beginEnrollment(h.ctx(defaults), []);
      expect(optionsOf(view).attestation).toBe('direct');
      const result = await webauthn.finishEnrollment(h.ctx(defaults), formInput(attested().register(optionsOf(view))));
      expect(result).toMatchObject({ ok: true, credential: { data: { fmt: 'packed', aaguid: TEST_AAGUID } } });
    });

    test('refuses no attestation, self attestation, and a chain to another root', async () => {
      expect(reason((await enrolWith(rp([pem('attestation-root.pem')]), new SoftwareAuthenticator({ origin: ORIGIN, aaguid: TEST_AAGUID }))).result)).toBe(
        'wrong',
      );
      const selfAttested = new SoftwareAuthenticator({ origin: ORIGIN, aaguid: TEST_AAGUID, attestation: { chain: [] } });
      expect(reason((await enrolWith(rp([pem('attestation-root.pem')]), selfAttested)).result)).toBe('wrong');
      expect(reason((await enrolWith(rp([pem('unrelated-root.pem')]), attested())).result)).toBe('wrong');
    });

    test('the AAGUID allow-list admits only the listed authenticator models', async () => {
      expect((await enrolWith(rp([pem('attestation-root.pem')], [TEST_AAGUID]), attested())).result.ok).toBe(true);
      expect(reason((await enrolWith(rp([pem('attestation-root.pem')], ['cb69481e-8ff7-4039-93ec-0a2729a154a8']), attested())).result)).toBe('wrong');
    });
  });

  test('the ceremony type, framing and the response’s own fields are checked', async () => {
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    expect(reason((await enrolWith(new Harness(), a, defaults, { type: 'webauthn.get' })).result)).toBe('wrong');
    expect(reason((await enrolWith(new Harness(), a, defaults, { crossOrigin: true })).result)).toBe('wrong');
    const h = new Harness();
    h.keep((await enrolWith(h, a)).result);
    const verify = async (overrides: Record<string, unknown>) =>
      webauthn.verify(h.ctx(defaults), h.credentials, formInput(a.assert(optionsOf(await challenge(h)), overrides)));
    expect(reason(await verify({ type: 'webauthn.create' }))).toBe('wrong');
    expect(reason(await verify({ crossOrigin: true }))).toBe('wrong');
    expect(reason(await verify({ userHandle: Buffer.from('someone else').toString('base64url') }))).toBe('wrong');
    // Garbage in the form is invalid input, before any challenge is spent.
    await challenge(h);
    for (const response of ['', 'null', '{}', '[]', '{"id":"a","rawId":"b","type":"public-key","response":{}}']) {
      expect(reason(await webauthn.verify(h.ctx(defaults), h.credentials, { response }))).toBe('invalid_input');
    }
    expect(h.state.has('assertion')).toBe(true);
    expect((await verify({})).ok).toBe(true);
  });

  test('only a credential the challenge allowed, and only this account’s', async () => {
    const h = new Harness();
    const mine = new SoftwareAuthenticator({ origin: ORIGIN });
    h.keep((await enrolWith(h, mine)).result);
    // Another account's key, with its own registration elsewhere.
    const other = new Harness();
    const theirs = new SoftwareAuthenticator({ origin: ORIGIN });
    other.keep((await enrolWith(other, theirs)).result);
    const view = await challenge(h);
    const foreign = theirs.assert({ ...optionsOf(view), allowCredentials: [] });
    expect(reason(await webauthn.verify(h.ctx(defaults), h.credentials, formInput(foreign)))).toBe('wrong');
    // A credential of this account that this challenge did not list (added after the options were made).
    const second = new SoftwareAuthenticator({ origin: ORIGIN });
    const stale = await challenge(h);
    h.keep((await enrolWith(h, second)).result);
    expect(reason(await webauthn.verify(h.ctx(defaults), h.credentials, formInput(second.assert(optionsOf(stale)))))).toBe('wrong');
  });

  test('a first factor must be told whose passkey it is (the user handle)', async () => {
    const h = new Harness();
    const a = new SoftwareAuthenticator({ origin: ORIGIN });
    const view = await passkey.beginEnrollment(h.ctx(passkeyDefaults), []);
    h.keep(await passkey.finishEnrollment(h.ctx(passkeyDefaults), formInput(a.register(optionsOf(view)))));
    const login = optionsOf(await passkey.beginFirstFactor!({ settings: passkeyDefaults, services: h.services }));
    expect(login.allowCredentials).toEqual([]);
    expect(login.userVerification).toBe('required');
    expect(reason(await passkey.verify(h.ctx(passkeyDefaults), h.credentials, formInput(a.assert(login, { userHandle: null }))))).toBe('wrong');
    const again = optionsOf(await passkey.beginFirstFactor!({ settings: passkeyDefaults, services: h.services }));
    expect(await passkey.verify(h.ctx(passkeyDefaults), h.credentials, formInput(a.assert(again)))).toMatchObject({ ok: true, kinds: ['have', 'are'] });
  });

  test('backup eligibility is fixed for a credential’s life (a flip is a suspected clone); backup state is recorded as it changes', async () => {
    const h = new Harness();
    const synced = new SoftwareAuthenticator({ origin: ORIGIN, be: true });
    const credential = h.keep((await enrolWith(h, synced, defaults, { bs: false })).result);
    expect(credential.data).toMatchObject({ backupEligible: true, backedUp: false });
    expect(await webauthn.verify(h.ctx(defaults), h.credentials, formInput(synced.assert(optionsOf(await challenge(h)), { bs: true })))).toMatchObject({
      ok: true,
      amr: ['swk', 'user'],
      dataUpdate: { backedUp: true },
    });
    // A flipped BE flag, correctly signed: another authenticator holds this credential's key. A suspected clone (the engine audits it as such).
    expect(
      await webauthn.verify(h.ctx(defaults), h.credentials, formInput(synced.assert(optionsOf(await challenge(h)), { be: false, bs: false }))),
    ).toMatchObject({
      ok: false,
      reason: 'suspected_clone',
      credentialId: credential.id,
    });
  });

  test('signature counters: authenticators that do not count pass on fresh challenges; a counter that does not go up is a suspected clone', async () => {
    const h = new Harness();
    const zero = new SoftwareAuthenticator({ origin: ORIGIN, counterStep: 0 });
    h.keep((await enrolWith(h, zero)).result);
    for (let i = 0; i < 3; i++)
      expect((await webauthn.verify(h.ctx(defaults), h.credentials, formInput(zero.assert(optionsOf(await challenge(h)))))).ok).toBe(true);

    const k = new Harness();
    const counting = new SoftwareAuthenticator({ origin: ORIGIN });
    const credential = k.keep((await enrolWith(k, counting)).result);
    expect((await webauthn.verify(k.ctx(defaults), k.credentials, formInput(counting.assert(optionsOf(await challenge(k)), { counter: 7 })))).ok).toBe(true);
    expect(await webauthn.verify(k.ctx(defaults), k.credentials, formInput(counting.assert(optionsOf(await challenge(k)), { counter: 7 })))).toMatchObject({
      ok: false,
      reason: 'suspected_clone',
      credentialId: credential.id,
    });
    expect(reason(await webauthn.verify(k.ctx(defaults), k.credentials, formInput(counting.assert(optionsOf(await challenge(k)), { counter: 3 }))))).toBe(
      'suspected_clone',
    );
    // A counter that fell to zero after counting is a regression too.
    expect(reason(await webauthn.verify(k.ctx(defaults), k.credentials, formInput(counting.assert(optionsOf(await challenge(k)), { counter: 0 }))))).toBe(
      'suspected_clone',
    );
    expect(credential.counter).toBe(7);
    expect((await webauthn.verify(k.ctx(defaults), k.credentials, formInput(counting.assert(optionsOf(await challenge(k)), { counter: 8 })))).ok).toBe(true);
  });
});
