/** Where the "sign-in expired" page sends a person back to: only what the app registered. */
import { describe, expect, test } from '@jest/globals';
import { startAgainUri } from '../../interactions/way-back.ts';

describe('startAgainUri', () => {
  test('the registered initiate_login_uri first', () => {
    expect(startAgainUri({ initiate_login_uri: 'https://app.example/login', redirect_uris: ['https://other.example/cb'] })).toBe('https://app.example/login');
  });

  test('else the origin of the first web redirect URI, never its path or query', () => {
    expect(startAgainUri({ redirect_uris: ['https://app.example:8443/auth/cb?x=1'] })).toBe('https://app.example:8443/');
    expect(startAgainUri({ redirect_uris: ['com.example.app:/cb', 'http://localhost:3000/cb'] })).toBe('http://localhost:3000/');
  });

  test('a native app with only a custom scheme has no page to go back to', () => {
    expect(startAgainUri({ redirect_uris: ['com.example.app:/cb'] })).toBeUndefined();
    expect(startAgainUri({ redirect_uris: [] })).toBeUndefined();
  });
});
