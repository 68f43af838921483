/**
 * The known-browser cookie: only what this key signed opens (a changed byte,
 * another key, another version or a malformed value is no cookie at all); a
 * browser keeps its device id across accounts, the most recent eight; an
 * entry counts only for its account and only if it was issued after the
 * account's password was last set.
 */
import crypto from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import { DeviceCookies, knownDevice, rememberAccount } from '../../src/security/device-cookie.ts';

const key = crypto.randomBytes(32);
const cookies = new DeviceCookies(key);

describe('device cookies', () => {
  test('what is sealed opens as it was', () => {
    const browser = rememberAccount(rememberAccount(undefined, 'alice', 1000), 'bob', 2000);
    expect(cookies.open(cookies.seal(browser))).toEqual(browser);
    expect(browser.accounts.map((a) => a.accountId)).toEqual(['bob', 'alice']);
  });

  test('a changed byte, another key, another version or a malformed value opens as nothing', () => {
    const sealed = cookies.seal(rememberAccount(undefined, 'alice'));
    const [version, payload, mac] = sealed.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ d: 'attacker', a: [['alice', Date.now()]] })).toString('base64url');
    for (const value of [
      `${version}.${forged}.${mac}`,
      `${version}.${payload}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`,
      `v2.${payload}.${mac}`,
      new DeviceCookies(crypto.randomBytes(32)).seal(rememberAccount(undefined, 'alice')),
      `${version}.${payload}`,
      'garbage',
      '',
      `${sealed}${'x'.repeat(3000)}`,
    ]) {
      expect(cookies.open(value)).toBeUndefined();
    }
    // Signed, but not a record: still nothing.
    const signedNonsense = (p: string) =>
      `v1.${p}.${crypto
        .createHmac('sha256', Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), 'twofold/device-cookie/v1', 32)))
        .update(`v1.${p}`)
        .digest('base64url')}`;
    expect(cookies.open(signedNonsense(Buffer.from(JSON.stringify({ d: 'x', a: [['a', 1]] })).toString('base64url')))).toBeDefined();
    expect(cookies.open(signedNonsense(Buffer.from('{"d":"x","a":"no"}').toString('base64url')))).toBeUndefined();
    expect(cookies.open(signedNonsense(Buffer.from('not json').toString('base64url')))).toBeUndefined();
  });

  test('one device id per browser; the eight most recent accounts, each once', () => {
    let browser = rememberAccount(undefined, 'a0', 0);
    for (let i = 1; i < 12; i++) browser = rememberAccount(browser, `a${i}`, i);
    browser = rememberAccount(browser, 'a5', 99);
    expect(browser.accounts.map((a) => a.accountId)).toEqual(['a5', 'a11', 'a10', 'a9', 'a8', 'a7', 'a6', 'a4']);
    expect(rememberAccount(browser, 'z').deviceId).toBe(browser.deviceId);
    expect(rememberAccount(undefined, 'z').deviceId).not.toBe(browser.deviceId);
  });

  test('known to an account only if signed in there since its password was last set', () => {
    const browser = rememberAccount(undefined, 'alice', Date.parse('2030-01-02T00:00:00Z'));
    expect(knownDevice(browser, { id: 'alice', password_changed_at: new Date('2030-01-01T00:00:00Z') })).toBe(browser.deviceId);
    expect(knownDevice(browser, { id: 'alice', password_changed_at: null })).toBe(browser.deviceId);
    expect(knownDevice(browser, { id: 'alice', password_changed_at: new Date('2030-01-03T00:00:00Z') })).toBeUndefined();
    expect(knownDevice(browser, { id: 'bob', password_changed_at: null })).toBeUndefined();
    expect(knownDevice(undefined, { id: 'alice', password_changed_at: null })).toBeUndefined();
  });
});
