/**
 * RFC 6238 appendix B: the published test vectors for SHA1, SHA256 and SHA512
 * (8 digits, 30-second steps, T0 = 0), checked three ways: against TOTP's own
 * matchStep (the function sign-in uses), against otpauth with the same
 * parameters, and against a from-scratch RFC 4226 HOTP on node:crypto, so a
 * mistake in otpauth or in how it is called would show. Plus matchStep's
 * clock-drift window.
 */
import crypto from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import { Secret, TOTP } from 'otpauth';
import { matchStep } from '../../factors/totp/index.ts';

type Algorithm = 'SHA1' | 'SHA256' | 'SHA512';

/** The RFC's seeds: the ASCII digits repeated to the hash's block size (20, 32, 64 bytes). */
const SEEDS: Record<Algorithm, string> = {
  SHA1: '12345678901234567890',
  SHA256: '12345678901234567890123456789012',
  SHA512: '1234567890123456789012345678901234567890123456789012345678901234',
};

/** Appendix B: time (seconds), its step (hex in the RFC), and the 8-digit TOTP per algorithm. */
const VECTORS: Array<{ time: number; step: number; SHA1: string; SHA256: string; SHA512: string }> = [
  { time: 59, step: 0x1, SHA1: '94287082', SHA256: '46119246', SHA512: '90693936' },
  { time: 1111111109, step: 0x23523ec, SHA1: '07081804', SHA256: '68084774', SHA512: '25091201' },
  { time: 1111111111, step: 0x23523ed, SHA1: '14050471', SHA256: '67062674', SHA512: '99943326' },
  { time: 1234567890, step: 0x273ef07, SHA1: '89005924', SHA256: '91819424', SHA512: '93441116' },
  { time: 2000000000, step: 0x3f940aa, SHA1: '69279037', SHA256: '90698825', SHA512: '38618901' },
  { time: 20000000000, step: 0x27bc86aa, SHA1: '65353130', SHA256: '77737706', SHA512: '47863826' },
];

const ALGORITHMS: Algorithm[] = ['SHA1', 'SHA256', 'SHA512'];

/** RFC 4648 base32, no padding (what TOTP credentials store). */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** RFC 4226 HOTP with dynamic truncation, independent of otpauth. */
function hotp(key: Buffer, counter: number, algorithm: Algorithm, digits: number): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac(algorithm.toLowerCase(), key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0xf;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

const params = (algorithm: Algorithm) => ({ algorithm, digits: 8, period: 30 });

describe('RFC 6238 appendix B test vectors', () => {
  test('the base32 seeds are the RFC ASCII strings', () => {
    expect(base32(Buffer.from('12345678901234567890'))).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    for (const algorithm of ALGORITHMS) expect(Secret.fromBase32(base32(Buffer.from(SEEDS[algorithm]))).utf8).toBe(SEEDS[algorithm]);
  });

  for (const algorithm of ALGORITHMS) {
    describe(algorithm, () => {
      const key = Buffer.from(SEEDS[algorithm], 'ascii');
      const secret = base32(key);

      test.each(VECTORS)(`T=$time → $${algorithm}`, (vector) => {
        const expected = vector[algorithm];
        const nowMs = vector.time * 1000;
        expect(Math.floor(vector.time / 30)).toBe(vector.step);
        // From scratch (RFC 4226 over the RFC 6238 counter).
        expect(hotp(key, vector.step, algorithm, 8)).toBe(expected);
        // otpauth, with the parameters the factor passes it.
        expect(TOTP.generate({ secret: Secret.fromBase32(secret), ...params(algorithm), timestamp: nowMs })).toBe(expected);
        // The factor's matcher: the vector matches exactly its own step, with or without a window.
        expect(matchStep(secret, params(algorithm), expected, nowMs, 0)).toBe(vector.step);
        expect(matchStep(secret, params(algorithm), expected, nowMs, 1)).toBe(vector.step);
      });

      test('a vector does not match under another algorithm or digit count', () => {
        const vector = VECTORS[3]!;
        for (const other of ALGORITHMS.filter((a) => a !== algorithm)) {
          expect(matchStep(secret, params(other), vector[algorithm], vector.time * 1000, 1)).toBeNull();
        }
        expect(matchStep(secret, { ...params(algorithm), digits: 6 }, vector[algorithm], vector.time * 1000, 1)).toBeNull();
        // The 6-digit code is the vector's last six digits (RFC 4226 truncation).
        expect(matchStep(secret, { ...params(algorithm), digits: 6 }, vector[algorithm].slice(2), vector.time * 1000, 0)).toBe(vector.step);
      });
    });
  }
});

describe('matchStep window', () => {
  const secret = base32(Buffer.from(SEEDS.SHA1));
  const data = { algorithm: 'SHA1' as const, digits: 6, period: 30 };
  const step = 40_000_000; // 2008-01-11
  const codeAt = (s: number) => hotp(Buffer.from(SEEDS.SHA1), s, 'SHA1', 6);
  /** The middle of step `s`, so rounding at a boundary cannot pass a test by luck. */
  const middleOf = (s: number) => s * 30_000 + 15_000;

  test('window 1 accepts the code of the step before and after, and reports the matched step', () => {
    const code = codeAt(step);
    expect(matchStep(secret, data, code, middleOf(step), 1)).toBe(step);
    expect(matchStep(secret, data, code, middleOf(step + 1), 1)).toBe(step); // the phone is a step behind
    expect(matchStep(secret, data, code, middleOf(step - 1), 1)).toBe(step); // the phone is a step ahead
  });

  test('window 1 refuses codes two steps away', () => {
    const code = codeAt(step);
    expect(matchStep(secret, data, code, middleOf(step + 2), 1)).toBeNull();
    expect(matchStep(secret, data, code, middleOf(step - 2), 1)).toBeNull();
  });

  test('window 0 accepts only the current step; window 2 reaches two steps', () => {
    const code = codeAt(step);
    expect(matchStep(secret, data, code, middleOf(step), 0)).toBe(step);
    expect(matchStep(secret, data, code, middleOf(step + 1), 0)).toBeNull();
    expect(matchStep(secret, data, code, middleOf(step - 1), 0)).toBeNull();
    expect(matchStep(secret, data, code, middleOf(step + 2), 2)).toBe(step);
    expect(matchStep(secret, data, code, middleOf(step - 2), 2)).toBe(step);
    expect(matchStep(secret, data, code, middleOf(step + 3), 2)).toBeNull();
  });

  test('the step boundaries are exact: the first and last millisecond of a step', () => {
    const code = codeAt(step);
    expect(matchStep(secret, data, code, step * 30_000, 0)).toBe(step);
    expect(matchStep(secret, data, code, (step + 1) * 30_000 - 1, 0)).toBe(step);
    expect(matchStep(secret, data, code, (step + 1) * 30_000, 0)).toBeNull();
    expect(matchStep(secret, data, code, step * 30_000 - 1, 0)).toBeNull();
  });

  test('the reported step is the step of the code, so the replay counter is exact', () => {
    for (const delta of [-1, 0, 1]) {
      expect(matchStep(secret, data, codeAt(step + delta), middleOf(step), 1)).toBe(step + delta);
    }
  });

  test('a non-default period counts steps of that period', () => {
    const sixty = { ...data, period: 60 };
    const s = Math.floor(middleOf(step) / 60_000);
    const code = codeAt(s);
    expect(matchStep(secret, sixty, code, s * 60_000 + 30_000, 1)).toBe(s);
    expect(matchStep(secret, sixty, code, (s + 1) * 60_000 + 30_000, 1)).toBe(s);
    expect(matchStep(secret, sixty, code, (s + 2) * 60_000 + 30_000, 1)).toBeNull();
  });

  test('malformed or wrong codes match nothing', () => {
    const now = middleOf(step);
    const wrong = ['000000', '999999', '12345', '1234567', 'abcdef', ''].filter((c) => ![step - 1, step, step + 1].some((s) => codeAt(s) === c));
    for (const code of wrong) expect(matchStep(secret, data, code, now, 1)).toBeNull();
  });
});
