/** The account center's pure rules: fresh proof, where a sign-in may return to, client URIs on the issuer, authenticator names. */
import { describe, expect, test } from '@jest/globals';
import { freshProofParams, isFresh } from '../../src/account/fresh-proof.ts';
import { isAccountPath } from '../../src/account/client.ts';
import { resolveAgainstIssuer } from '../../src/oidc/clients.ts';
import { authenticatorName } from '../../src/self-service/authenticators.ts';
import { startAgainUri } from '../../interactions/way-back.ts';

describe('isFresh', () => {
  const now = 10_000;
  test('recent enough, and of two kinds when the account has a second factor', () => {
    expect(isFresh({ authTime: now - 300, amr: ['pwd'] }, now, 300, false)).toBe(true);
    expect(isFresh({ authTime: now - 301, amr: ['pwd', 'otp', 'mfa'] }, now, 300, true)).toBe(false);
    expect(isFresh({ authTime: now - 10, amr: ['pwd'] }, now, 300, true)).toBe(false);
    expect(isFresh({ authTime: now - 10, amr: ['pwd', 'otp', 'mfa'] }, now, 300, true)).toBe(true);
  });
});

describe('freshProofParams', () => {
  test('max_age of half the window; an essential level-2 acr only for an account with a second factor', () => {
    expect(freshProofParams(300, false)).toEqual({ max_age: '150', claims: JSON.stringify({ id_token: { sid: null } }) });
    expect(JSON.parse(freshProofParams(301, true).claims!)).toEqual({ id_token: { sid: null, acr: { essential: true, values: ['urn:twofold:acr:2'] } } });
    expect(freshProofParams(301, true).max_age).toBe('150');
  });
});

describe('isAccountPath', () => {
  test('account center pages only, never another origin', () => {
    for (const ok of ['/account', '/account/methods', '/account?notice=added', '/account/methods/abc/remove']) expect(isAccountPath(ok)).toBe(true);
    for (const bad of [
      '/accounts',
      '//evil.example/account',
      '/account//evil',
      '/account/\\evil',
      'https://evil.example/account',
      '/interaction/x',
      '/account/ x',
      undefined,
      42,
      `/account/${'x'.repeat(600)}`,
    ]) {
      expect(isAccountPath(bad)).toBe(false);
    }
  });
});

describe('resolveAgainstIssuer', () => {
  test('path redirect URIs are the issuer’s; absolute ones stay; a path initiate_login_uri is not given to the provider', () => {
    const metadata = {
      redirect_uris: ['/account/callback', 'https://app.example/cb'],
      post_logout_redirect_uris: ['/account/signed-out'],
      initiate_login_uri: '/account',
    };
    expect(resolveAgainstIssuer(metadata, 'https://id.example.com')).toEqual({
      redirect_uris: ['https://id.example.com/account/callback', 'https://app.example/cb'],
      post_logout_redirect_uris: ['https://id.example.com/account/signed-out'],
    });
    expect(resolveAgainstIssuer({ redirect_uris: ['//evil.example/cb'], initiate_login_uri: 'https://app.example/login' }, 'https://id.example.com')).toEqual({
      redirect_uris: ['//evil.example/cb'],
      initiate_login_uri: 'https://app.example/login',
    });
  });

  test('the "sign-in expired" page goes back to the account center', () => {
    expect(startAgainUri({ initiate_login_uri: '/account', redirect_uris: ['/account/callback'] })).toBe('/account');
  });
});

describe('authenticatorName', () => {
  test('known AAGUIDs, in any case; unknown and the all-zero AAGUID have no name', () => {
    expect(authenticatorName('FBFC3007-154E-4ECC-8C0B-6E020557D7BD')).toBe('iCloud Keychain');
    expect(authenticatorName('2fc0579f-8113-47ea-b116-bb5a8db9202a')).toBe('YubiKey 5 Series with NFC');
    expect(authenticatorName('00000000-0000-0000-0000-000000000000')).toBeUndefined();
    expect(authenticatorName(undefined)).toBeUndefined();
  });
});
