/**
 * The claims parameter (OIDC Core 5.5): its shape is checked before anything reads it (issue 13, finding 4), and both
 * essential acr requests, the ID token's and userinfo's, reach the policy (finding 5).
 */
import { describe, expect, test } from '@jest/globals';
import { claimsParameterProblem } from '../../src/oidc/claims-parameter.ts';
import { requestFacts } from '../../src/mfa/requirement.ts';

const A2 = 'urn:twofold:acr:2';
const A3 = 'urn:twofold:acr:3';

describe('claimsParameterProblem', () => {
  test.each<[string, unknown]>([
    ['essential acr with values', { id_token: { acr: { essential: true, values: [A2, A3] } } }],
    ['acr with one value', { userinfo: { acr: { essential: true, value: A2 } } }],
    ['claims asked for by null', { id_token: { email: null, acr: null }, userinfo: { name: null } }],
    ['other claims with any value', { id_token: { sub: { value: 'abc' }, custom: { values: [1, { a: 2 }], essential: false } } }],
    ['members this provider does not know are ignored', { id_token: { acr: { essential: true, values: [A2], purpose: 'x' } }, verified_claims: {} }],
  ])('accepted: %s', (_name, claims) => {
    expect(claimsParameterProblem(claims)).toBeUndefined();
  });

  test.each<[string, unknown, RegExp]>([
    ['acr values as a string (the reported 500)', { id_token: { acr: { essential: true, values: A3 } } }, /^claims\.id_token\.acr\.values: /],
    ['acr values empty', { id_token: { acr: { essential: true, values: [] } } }, /^claims\.id_token\.acr\.values: must list at least one value$/],
    ['acr values not strings', { userinfo: { acr: { essential: true, values: [2] } } }, /^claims\.userinfo\.acr\.values\.0: /],
    ['acr value not a string', { id_token: { acr: { essential: true, value: 3 } } }, /^claims\.id_token\.acr\.value: /],
    ['essential not a boolean', { id_token: { email: { essential: 'yes' } } }, /^claims\.id_token\.email\.essential: /],
    ['a claim request that is not an object', { id_token: { email: 5 } }, /^claims\.id_token\.email: /],
    ['values of another claim not a list', { userinfo: { email: { values: 'a@b' } } }, /^claims\.userinfo\.email\.values: /],
    ['id_token not an object', { id_token: [] }, /^claims\.id_token: /],
  ])('refused: %s', (_name, claims, message) => {
    expect(claimsParameterProblem(claims)).toMatch(message);
  });
});

describe('requestFacts', () => {
  const facts = (claims: unknown) => requestFacts({ claims: JSON.stringify(claims) });

  test('both essential requests are read, the ID token first', () => {
    expect(facts({ id_token: { acr: { essential: true, values: [A2] } }, userinfo: { acr: { essential: true, value: A3 } } })).toEqual({
      acrValues: [],
      essentialAcr: [[A2], [A3]],
    });
  });

  test('a voluntary acr, or essential without values, is no level', () => {
    expect(facts({ id_token: { acr: { values: [A3] } }, userinfo: { acr: { essential: true } } })).toEqual({ acrValues: [] });
  });

  test('a malformed claims parameter that got past the edge fails closed: a request nothing meets', () => {
    expect(facts({ id_token: { acr: { essential: true, values: A3 } } })).toEqual({ acrValues: [], essentialAcr: [[]] });
    expect(requestFacts({ claims: '{not json' })).toEqual({ acrValues: [], essentialAcr: [[]] });
  });
});
