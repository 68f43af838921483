/**
 * The password rules (NIST SP 800-63B rev. 4): lengths in code points (8, or
 * 15 for a password that is the account's only factor; at most 256), NFKC,
 * no composition rules, the shipped blocklist (hits and misses, its size),
 * and the account's own username, email and the product name. Hashing and
 * comparing in NFKC, and existing hashes of un-normalised passwords, in the
 * last block.
 */
import { describe, expect, test } from '@jest/globals';
import zlib from 'node:zlib';
import fs from 'node:fs';
import { checkNewPassword, MAX_LENGTH, normalizePassword, passwordLength, type PasswordContext } from '../../src/accounts/password-rules.ts';
import { BLOCKLIST_FILE, blocklistSize, isBlocklisted } from '../../src/accounts/password-blocklist.ts';
import { PasswordHasher } from '../../src/accounts/password-hasher.ts';
import { Catalogue } from '../../src/i18n/catalogue.ts';

const withFactor: PasswordContext = { username: 'anna.berg', email: 'Anna.Berg@example.org', productName: 'Twofold', onlyFactor: false };
const onlyFactor: PasswordContext = { ...withFactor, onlyFactor: true };
const reason = (password: string, context = withFactor) => {
  const verdict = checkNewPassword(password, context);
  return verdict.ok ? 'ok' : verdict.reason;
};

describe('length', () => {
  test('at least 8 characters when another factor protects the account', () => {
    expect(reason('mauve ox')).toBe('ok');
    expect(reason('mauve o')).toBe('too_short');
  });

  test('at least 15 when the password is the only factor', () => {
    expect(reason('mauve ox velvet', onlyFactor)).toBe('ok'); // 15
    expect(reason('mauve ox velve', onlyFactor)).toBe('too_short'); // 14
    const verdict = checkNewPassword('mauve ox', onlyFactor);
    expect(verdict).toEqual({ ok: false, reason: 'too_short', message: { key: 'password.rule.tooShortOnlyFactor', params: { min: 15 } } });
  });

  test('counted in code points, after NFKC: an emoji is one character, a ligature two', () => {
    expect(passwordLength('🦊🦊🦊🦊🦊🦊🦊🦊')).toBe(8);
    expect(reason('🦊🦊🦊🦊🦊🦊🦊🦊')).toBe('ok');
    expect(reason('🦊🦊🦊🦊🦊🦊🦊')).toBe('too_short');
    // U+FB01 (ﬁ) is one code point as typed and "fi" after NFKC: 7 typed, 8 counted.
    expect(passwordLength('ﬁ gs zq')).toBe(7);
    expect(reason('ﬁ gs zqx')).toBe('ok');
  });

  test("at most 256 characters, and 64 (NIST's floor for the maximum) always fits", () => {
    expect(MAX_LENGTH).toBeGreaterThanOrEqual(64);
    const long = 'quiet lanterns drift over '.repeat(20);
    expect(reason(long.slice(0, 64))).toBe('ok');
    expect(reason(long.slice(0, 256))).toBe('ok');
    expect(reason(long.slice(0, 257))).toBe('too_long');
  });
});

describe('no composition rules', () => {
  test.each(['lowercase only words here', '8 1 9 2 7 3 6 4 5 0', 'ÜBERALL SCHNEE UND EIS', 'パスワードはながいほうがいいです', '   spaces   count   '])(
    '%j is accepted as it is',
    (password) => {
      expect(reason(password, onlyFactor)).toBe('ok');
    },
  );
});

describe('NFKC', () => {
  test('a new password is returned normalised: that form is hashed', () => {
    const verdict = checkNewPassword('ｆｕｌｌ ｗｉｄｔｈ ｌｅｔｔｅｒｓ', withFactor);
    expect(verdict).toEqual({ ok: true, password: 'full width letters' });
    // A composed and a decomposed ü are one password.
    expect(normalizePassword('gru\u0308n und blau')).toBe(normalizePassword('gr\u00fcn und blau'));
  });

  test('the checks see the normalised form: full-width "password1" is still blocklisted', () => {
    expect(reason('ｐａｓｓｗｏｒｄ１')).toBe('common');
  });
});

describe('the blocklist', () => {
  test('ships at least 100,000 entries, sorted for bisection', () => {
    expect(blocklistSize()).toBeGreaterThanOrEqual(100_000);
    const lines = zlib.gunzipSync(fs.readFileSync(BLOCKLIST_FILE)).toString('utf8').split('\n').slice(0, -1);
    expect(lines).toHaveLength(blocklistSize());
    for (let i = 1; i < lines.length; i += 997) expect(Buffer.compare(Buffer.from(lines[i - 1]!), Buffer.from(lines[i]!))).toBe(-1);
    // Every entry can be found, the first and the last included.
    for (const entry of [lines[0]!, lines.at(-1)!, lines[Math.floor(lines.length / 2)]!]) expect(isBlocklisted(entry)).toBe(true);
  });

  test.each(['password', 'Password1', 'PASSWORD123', 'iloveyou', 'qwertyuiop', '1234567890', 'trustno1', 'passwordpassword', 'pass word 1 2 3'])(
    '%j is refused as common',
    (password) => {
      expect(reason(password)).toBe('common');
    },
  );

  test.each(['mauve ox velvet', 'correct horse battery staple', 'kettle-orbit-sable'])('%j is not on it', (password) => {
    expect(reason(password)).toBe('ok');
  });

  test('the refusal says why, from the catalogue, in English and German', () => {
    const verdict = checkNewPassword('iloveyou', withFactor);
    if (verdict.ok) throw new Error('accepted');
    const catalogue = new Catalogue();
    expect(catalogue.text('en', verdict.message.key)).toMatch(/too common/);
    expect(catalogue.text('de', verdict.message.key)).toMatch(/zu verbreitet/);
  });
});

describe("the account's own words and the product's name", () => {
  test('the username, in any case, anywhere in the password', () => {
    expect(reason('my name is Anna.Berg ok')).toBe('contains_username');
    expect(reason('ANNA.BERG rules the sea')).toBe('contains_username');
  });

  test('the email address and the part before the @', () => {
    expect(reason('anna.berg@example.org')).toBe('contains_username'); // the username is in it too
    expect(reason('write to me at x@example.org', { ...withFactor, email: 'x@example.org' })).toBe('contains_email');
    expect(reason('hello bergmann.a here', { ...withFactor, username: 'a1', email: 'Bergmann.A@example.org' })).toBe('contains_email');
  });

  test('the product name (BRAND_NAME), spaces or none', () => {
    expect(reason('i love twofold so much')).toBe('contains_product');
    expect(reason('acme login is great', { ...withFactor, productName: 'Acme Login' })).toBe('contains_product');
    expect(reason('acmelogin is great', { ...withFactor, productName: 'Acme Login' })).toBe('contains_product');
    const verdict = checkNewPassword('TWOFOLD forever and ever', withFactor);
    expect(verdict).toMatchObject({ ok: false, message: { key: 'password.rule.product', params: { product: 'Twofold' } } });
  });

  test('a short username is refused only as the whole password, not inside words', () => {
    expect(reason('kettle orbit sable', { ...withFactor, username: 'bit' })).toBe('ok');
    expect(reason('kettle orbit sable', { ...withFactor, username: 'orbit' })).toBe('contains_username');
  });

  test('no username or email: only the product name is checked', () => {
    expect(reason('kettle orbit sable', { productName: 'Twofold', onlyFactor: true })).toBe('ok');
  });
});

describe('hashing and comparing in NFKC', () => {
  const hasher = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1, concurrency: 2, queueLimit: 8 });

  test('a password set in one form signs in with any form NFKC makes the same', async () => {
    const stored = await hasher.hash('ｆｕｌｌ ｗｉｄｔｈ');
    expect(await hasher.verify(stored, 'full width')).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(stored, 'ｆｕｌｌ ｗｉｄｔｈ')).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(stored, 'full widths')).toEqual({ ok: false });
  });

  test('a hash made before normalisation (of the typed form) still verifies, and asks to be rehashed', async () => {
    const { hash } = await import('@node-rs/argon2');
    const typed = 'ｆｕｌｌ ｗｉｄｔｈ';
    const legacy = await hash(typed, { ...hasher.params, algorithm: 2 });
    expect(await hasher.verify(legacy, typed)).toEqual({ ok: true, needsRehash: true });
    // The NFKC form typed on another keyboard did not make that hash.
    expect(await hasher.verify(legacy, 'full width')).toEqual({ ok: false });
  });

  test('an unknown account costs the same verifications as a wrong password, whatever the form', async () => {
    const stored = await hasher.hash('some stored password');
    for (const attempt of ['plain ascii guess', 'ｗｉｄｅ ｇｕｅｓｓ']) {
      const before = hasher.work.verifications;
      await hasher.verify(stored, attempt);
      const wrong = hasher.work.verifications - before;
      await hasher.verifyDummy(attempt);
      expect(hasher.work.verifications - before - wrong).toBe(wrong);
    }
  });
});
