/**
 * The rules of a client's settings, without a database: which combinations
 * `client add` accepts (an app, an API, a machine client; public ones never
 * relax PKCE nor hold credentials they do not have), and whether PKCE is
 * required for a client as the provider asks.
 */
import { describe, expect, test } from '@jest/globals';
import { newClientId, newClientSchema, pkceRequired, invalidTwofoldMetadata, type NewClient } from '../../src/oidc/clients.ts';

const REDIRECT = 'https://app.example.test/cb';
const problems = (input: Partial<NewClient>) => {
  const result = newClientSchema.safeParse({ name: 'x', ...input });
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('client settings', () => {
  test('a client signs users in, is an API, or is a machine client (or several)', () => {
    expect(problems({})).toEqual([expect.stringMatching(/^redirectUris: at least one --redirect-uri/)]);
    expect(problems({ redirectUris: [REDIRECT] })).toEqual([]);
    expect(problems({ resourceIndicator: 'https://api.example.test' })).toEqual([]);
    expect(problems({ clientCredentials: true, clientCredentialsScopes: 'read write' })).toEqual([]);
    expect(problems({ redirectUris: [REDIRECT], resourceIndicator: 'https://api.example.test', clientCredentials: true })).toEqual([]);
  });

  test('a public client never relaxes PKCE, never is an API or a machine client', () => {
    expect(problems({ redirectUris: [REDIRECT], public: true, pkce: 'optional' })).toEqual([expect.stringMatching(/^pkce: a public client always uses PKCE/)]);
    expect(problems({ redirectUris: [REDIRECT], public: true, pkce: 'required' })).toEqual([]);
    expect(problems({ redirectUris: [REDIRECT], public: true, clientCredentials: true })).toEqual([expect.stringMatching(/^clientCredentials: /)]);
    expect(problems({ redirectUris: [REDIRECT], public: true, resourceIndicator: 'https://api.example.test' })).toEqual([
      expect.stringMatching(/^resourceIndicator: .*public/),
    ]);
  });

  test('flags for another kind of client are refused, not ignored', () => {
    expect(problems({ redirectUris: [REDIRECT], resourceScopes: 'read' })).toEqual([expect.stringMatching(/^resourceScopes: only for an API/)]);
    expect(problems({ redirectUris: [REDIRECT], introspectAny: true })).toEqual([expect.stringMatching(/^introspectAny: only for an API/)]);
    expect(problems({ redirectUris: [REDIRECT], clientCredentialsScopes: 'read' })).toEqual([
      expect.stringMatching(/^clientCredentialsScopes: only for a machine client/),
    ]);
    expect(problems({ resourceIndicator: 'https://api.example.test', pkce: 'optional' })).toEqual([
      expect.stringMatching(/^pkce: only for an app that signs users in/),
    ]);
    expect(problems({ clientCredentials: true, idTokenClaims: 'minimal' })).toEqual([
      expect.stringMatching(/^idTokenClaims: only for an app that signs users in/),
    ]);
  });

  test('indicators are absolute URIs without a fragment; API scopes are scope tokens, not OpenID scopes', () => {
    for (const bad of ['api', '/relative', 'https://api.example.test/#x', 'https://api.example.test/a b'])
      expect(problems({ resourceIndicator: bad })).not.toEqual([]);
    expect(problems({ resourceIndicator: 'urn:example:api' })).toEqual([]);
    expect(problems({ resourceIndicator: 'https://a.example.test', resourceScopes: 'read "write"' })).toEqual([expect.stringMatching(/^resourceScopes\.1: /)]);
    expect(problems({ resourceIndicator: 'https://a.example.test', resourceScopes: 'read email' })).toEqual([
      "resourceScopes.1: email is an OpenID scope, not an API's",
    ]);
    expect(newClientSchema.parse({ name: 'x', resourceIndicator: 'https://a.example.test', resourceScopes: ' read  write read ' }).resourceScopes).toEqual([
      'read',
      'write',
    ]);
  });

  test('back-channel logout URI: https, or http on a loopback host; no fragment; only for an app that signs users in', () => {
    for (const good of [
      'https://app.example.test/logout',
      'https://app.example.test/logout?from=op',
      'http://localhost:3000/bc',
      'http://127.0.0.1/bc',
      'http://[::1]:8080/bc',
    ]) {
      expect(problems({ redirectUris: [REDIRECT], backchannelLogoutUri: good })).toEqual([]);
    }
    for (const bad of [
      'http://app.example.test/logout',
      'https://app.example.test/logout#x',
      '/logout',
      'ftp://app.example.test/x',
      'javascript:alert(1)',
      'http://localhost.evil.test/bc',
    ]) {
      expect(problems({ redirectUris: [REDIRECT], backchannelLogoutUri: bad })).toEqual([
        expect.stringMatching(/^backchannelLogoutUri: an absolute https:\/\/ URI/),
      ]);
    }
    expect(problems({ clientCredentials: true, backchannelLogoutUri: 'https://m.example.test/bc' })).toEqual([
      expect.stringMatching(/^backchannelLogoutUri: only for an app that signs users in/),
    ]);
    expect(problems({ redirectUris: [REDIRECT], backchannelLogoutSessionRequired: true })).toEqual([
      expect.stringMatching(/^backchannelLogoutSessionRequired: only with --backchannel-logout-uri/),
    ]);
  });

  test('PKCE: always for a public client; a confidential one as set, else as PKCE_REQUIRED says', () => {
    expect(pkceRequired({ clientAuthMethod: 'none', twofold_pkce: 'optional' }, 'public')).toBe(true);
    expect(pkceRequired({ clientAuthMethod: 'client_secret_basic' }, 'all')).toBe(true);
    expect(pkceRequired({ clientAuthMethod: 'client_secret_basic' }, 'public')).toBe(false);
    expect(pkceRequired({ clientAuthMethod: 'client_secret_basic', twofold_pkce: 'optional' }, 'all')).toBe(false);
    expect(pkceRequired({ clientAuthMethod: 'private_key_jwt', twofold_pkce: 'required' }, 'public')).toBe(true);
  });

  test('the provider refuses stored settings it does not know', () => {
    expect(invalidTwofoldMetadata('twofold_pkce', 'sometimes')).toMatch(/twofold_pkce/);
    expect(invalidTwofoldMetadata('twofold_id_token_claims', 'some')).toMatch(/twofold_id_token_claims/);
    expect(invalidTwofoldMetadata('twofold_client_credentials_scope', ['read'])).toMatch(/string/);
    expect(invalidTwofoldMetadata('twofold_pkce', 'optional')).toBeUndefined();
    expect(invalidTwofoldMetadata('twofold_pkce', undefined)).toBeUndefined();
  });
});

describe('client ids', () => {
  test('are 128 random bits in base64url that never begin with - or _, so the CLI never reads one as an option', () => {
    // Plain base64url begins with - or _ once in 32 draws: 4000 draws without one are no luck.
    const ids = Array.from({ length: 4000 }, newClientId);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
