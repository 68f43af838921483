/**
 * Fuzzing the OIDC endpoints (issue 13): /auth, /token, introspection, revocation, /me, /session/end, PAR (/request),
 * discovery and JWKS, with known and hostile parameters in the query, a form, JSON or raw bytes, and hostile client
 * credentials, bearer tokens and headers. For every input: no answer >= 500, the server still answers, and an input
 * refused (4xx) changed no stored row.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty } from '../helpers/relying-party.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import {
  timeoutFor,
  FUZZ_RUNS,
  SECOND_DATABASE_SHARE,
  RowWatch,
  bodyKind,
  fuzz,
  headerText,
  hostileText,
  paramsOf,
  report,
  send,
  short,
  answerOf,
  type FuzzRequest,
} from './kit.ts';

const REDIRECT = 'http://app.example.test/callback';
const started = Date.now();

interface Known {
  clients: string[];
  secrets: string[];
  tokens: string[];
  idTokens: string[];
}

const ACR = ['urn:twofold:acr:1', 'urn:twofold:acr:2', 'urn:twofold:acr:3', 'https://refeds.org/profile/mfa', 'urn:unknown'];
const CLAIMS = [
  '{"id_token":{"acr":{"essential":true,"values":"urn:twofold:acr:3"}}}',
  '{"id_token":{"acr":{"essential":true,"values":[]}}}',
  '{"userinfo":{"acr":{"essential":true,"values":["urn:twofold:acr:2"]}},"id_token":{"acr":{"essential":true,"value":"urn:twofold:acr:1"}}}',
  '{"id_token":{"email":5}}',
  '{"id_token":{"sub":{"value":"x"}}}',
  '{"userinfo":{"acr":{"essential":"yes","values":[1,2]}}}',
  '[]',
  '{',
];

const alnum = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'), minLength: 1, maxLength: 43 });

function requestOf(known: Known): fc.Arbitrary<FuzzRequest> {
  const client = fc.constantFrom(...known.clients);
  const token = fc.oneof(fc.constantFrom(...known.tokens), alnum);
  const authorization = {
    required: {
      client_id: client,
      redirect_uri: fc.constant(REDIRECT),
      response_type: fc.constant('code'),
      scope: fc.constantFrom('openid', 'openid profile email', 'openid offline_access', 'profile'),
      code_challenge: fc.constant('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
      code_challenge_method: fc.constant('S256'),
    },
    optional: {
      state: alnum,
      nonce: alnum,
      prompt: fc.constantFrom('none', 'login', 'consent', 'select_account', 'none login'),
      max_age: fc.constantFrom('0', '60', '-1', '1e3', '99999999999999999999'),
      acr_values: fc.constantFrom(...ACR),
      claims: fc.constantFrom(...CLAIMS),
      ui_locales: fc.constantFrom('de', 'en', 'de-DE en', 'xx'),
      login_hint: alnum,
      id_token_hint: fc.constantFrom(...known.idTokens),
      request_uri: fc.constantFrom('urn:ietf:params:oauth:request_uri:abc', 'http://evil.test/r'),
      response_mode: fc.constantFrom('query', 'form_post', 'fragment', 'jwt'),
      resource: fc.constantFrom('http://api.example.test', 'urn:x'),
      twofold_enroll: fc.constantFrom('totp', 'webauthn', 'any', 'nope'),
    },
  };
  const tokenRequest = {
    required: {
      grant_type: fc.constantFrom('authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'password'),
    },
    optional: {
      code: alnum,
      redirect_uri: fc.constant(REDIRECT),
      code_verifier: alnum,
      refresh_token: alnum,
      device_code: alnum,
      client_id: client,
      client_secret: fc.constantFrom(...known.secrets),
      client_assertion: fc.constantFrom('a.b.c', ...known.idTokens),
      client_assertion_type: fc.constant('urn:ietf:params:oauth:client-assertion-type:jwt-bearer'),
      scope: fc.constantFrom('openid', 'api:read'),
      resource: fc.constant('http://api.example.test'),
    },
  };
  const tokenUse = {
    required: { token },
    optional: {
      token_type_hint: fc.constantFrom('access_token', 'refresh_token', 'id_token'),
      client_id: client,
      client_secret: fc.constantFrom(...known.secrets),
    },
  };
  const endSession = {
    required: {},
    optional: {
      id_token_hint: fc.constantFrom(...known.idTokens),
      post_logout_redirect_uri: fc.constant('http://app.example.test/bye'),
      state: alnum,
      client_id: client,
      logout_hint: alnum,
      ui_locales: fc.constant('de'),
    },
  };
  const confirm = { required: { xsrf: alnum }, optional: { logout: fc.constant('yes') } };
  const nothing = { required: {}, optional: { x: alnum } };
  // RFC 8628: the device's request, and the person's verification page (user code, then confirmation).
  const deviceRequest = {
    required: { client_id: client },
    optional: { scope: fc.constantFrom('openid', 'openid offline_access'), acr_values: fc.constantFrom(...ACR), claims: fc.constantFrom(...CLAIMS) },
  };
  const verification = {
    required: {},
    optional: { user_code: fc.constantFrom('BCDF-GHJK', 'bcdfghjk', 'XXXX'), xsrf: alnum, confirm: fc.constantFrom('yes', 'no'), abort: fc.constant('yes') },
  };
  const routes: Array<{
    path: fc.Arbitrary<string>;
    methods: string[];
    params: { required: Record<string, fc.Arbitrary<string>>; optional: Record<string, fc.Arbitrary<string>> };
    basic?: true;
  }> = [
    { path: fc.constant('/auth'), methods: ['GET', 'GET', 'POST'], params: authorization },
    { path: fc.constant('/request'), methods: ['POST'], params: authorization, basic: true },
    { path: fc.constant('/token'), methods: ['POST'], params: tokenRequest, basic: true },
    { path: fc.constantFrom('/token/introspection', '/token/revocation'), methods: ['POST'], params: tokenUse, basic: true },
    { path: fc.constant('/me'), methods: ['GET', 'POST'], params: { required: {}, optional: { access_token: token } } },
    { path: fc.constant('/session/end'), methods: ['GET', 'POST'], params: endSession },
    { path: fc.constant('/session/end/confirm'), methods: ['POST'], params: confirm },
    { path: fc.constant('/device/auth'), methods: ['POST'], params: deviceRequest, basic: true },
    { path: fc.constantFrom('/device', '/device/confirm'), methods: ['GET', 'POST'], params: verification },
    // A factor's server-to-server callback (none of the built-in factors has one: 404 as JSON, whatever comes).
    { path: fc.constantFrom('/factor/totp/callback', '/factor/push/callback', '/factor/%00/callback'), methods: ['POST', 'GET'], params: nothing },
    {
      path: fc.constantFrom('/.well-known/openid-configuration', '/jwks', '/healthz', '/readyz', '/assets/twofold.css'),
      methods: ['GET', 'POST', 'OPTIONS'],
      params: nothing,
    },
    {
      path: fc
        .tuple(fc.constantFrom('/', '/interaction/', '/auth/', '/token/', '/assets/', '/session/end/', '/device/'), hostileText)
        .map(([p, s]) => p + encodeURIComponent(Buffer.from(s.slice(0, 200)).toString()).replace(/%25/g, '%')),
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      params: nothing,
    },
  ];
  const basic = fc
    .tuple(fc.oneof(client, hostileText), fc.oneof(fc.constantFrom(...known.secrets), hostileText), fc.boolean())
    .map(([id, secret, encodeIt]) => {
      const pair = encodeIt ? `${encodeURIComponent(Buffer.from(id).toString())}:${encodeURIComponent(Buffer.from(secret).toString())}` : `${id}:${secret}`;
      return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
    });
  const validBasic = fc
    .tuple(fc.constantFrom(...known.clients.slice(0, known.secrets.length)), fc.nat())
    .map(([id]) => `Basic ${Buffer.from(`${id}:${known.secrets[known.clients.indexOf(id)]}`).toString('base64')}`);
  const anyAuthorization = fc.oneof(
    basic,
    token.map((t) => `Bearer ${t}`),
    fc.uint8Array({ maxLength: 40 }).map((b) => `Basic ${Buffer.from(b).toString('base64')}`),
    headerText(),
  );
  const headers = (withBasic: boolean) =>
    fc
      .record(
        {
          authorization: withBasic ? fc.oneof({ weight: 4, arbitrary: validBasic }, { weight: 1, arbitrary: anyAuthorization }) : anyAuthorization,
          accept: fc.constantFrom('text/html', 'application/json', '*/*', 'text/html;q=0.1, application/json'),
          'accept-language': fc.oneof(fc.constantFrom('de', 'en', 'de-DE,de;q=0.9', '*'), headerText()),
          'content-type': fc.oneof(fc.constantFrom('application/x-www-form-urlencoded; charset=bogus', 'application/jwt', 'multipart/form-data'), headerText()),
          cookie: fc.oneof(fc.constantFrom('twofold.session=abc', 'twofold.interaction=x; twofold.interaction.sig=y', '_session=%00'), headerText()),
          dpop: fc.constantFrom('a.b.c', 'eyJhbGciOiJFUzI1NiJ9.e30.'),
          origin: fc.oneof(fc.constant('null'), headerText()),
          'x-forwarded-for': headerText(),
          'x-forwarded-host': headerText(),
          'x-forwarded-proto': headerText(),
        },
        { requiredKeys: [] },
      )
      .chain((h) =>
        fc
          .subarray(Object.keys(h), { maxLength: withBasic ? 2 : 1 })
          .map((keep) => Object.fromEntries(Object.entries(h).filter(([k]) => keep.includes(k) || (k === 'authorization' && withBasic)))),
      );
  // /auth and /token carry the most parameters into storage: they get more of the inputs.
  const weights = [4, 1, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1];
  return fc
    .oneof(
      ...routes.map((r, i) => ({
        weight: weights[i]!,
        arbitrary: fc.record({
          path: r.path,
          method: fc.constantFrom(...r.methods),
          params: paramsOf(r.params.required, r.params.optional),
          extra: fc.array(fc.tuple(alnum, alnum), { maxLength: 1 }),
          queryRaw: fc.boolean(),
          kind: bodyKind,
          bytes: fc.uint8Array({ maxLength: 64 }),
          headers: headers(r.basic === true),
          inQuery: fc.boolean(),
        }),
      })),
    )
    .map((r): FuzzRequest => ({
      method: r.method,
      path: r.path,
      query: r.method === 'GET' || r.inQuery ? r.params : r.extra,
      queryRaw: r.queryRaw,
      body: r.method === 'GET' || r.inQuery ? r.extra : r.params,
      kind: r.kind,
      bytes: r.bytes,
      headers: r.headers,
    }));
}

const describeRequest = (r: FuzzRequest) =>
  short(`${r.method} ${r.path} query=${JSON.stringify(r.query)} body(${r.kind})=${JSON.stringify(r.body)} headers=${JSON.stringify(r.headers)}`, 1500);

for (const kind of DIALECTS) {
  // The cheapest inputs (one request each): three times the share of the others.
  const runs = (kind === 'pglite' ? 1 : SECOND_DATABASE_SHARE) * FUZZ_RUNS * 3;
  describe(`fuzzing the OIDC endpoints on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    const known: Known = { clients: [], secrets: [], tokens: [], idTokens: [] };

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'off' });
      const { db, hasher, sealer } = server.opened.services;
      await createAccount(db, hasher, { username: 'alice', email: 'alice@example.test', password: 'correct horse battery' });
      const web = await createClient(db, sealer, {
        name: 'web',
        redirectUris: [REDIRECT],
        postLogoutRedirectUris: ['http://app.example.test/bye'],
        firstParty: true,
      });
      const spa = await createClient(db, sealer, { name: 'spa', redirectUris: [REDIRECT], public: true, firstParty: true });
      const machine = await createClient(db, sealer, { name: 'machine', redirectUris: [], clientCredentials: true });
      const tv = await createClient(db, sealer, { name: 'tv', redirectUris: [], public: true, deviceFlow: true });
      known.clients.push(web.clientId, spa.clientId, machine.clientId, tv.clientId);
      known.secrets.push(web.clientSecret!, machine.clientSecret!);
      // One real sign-in: its tokens go into the pool, so the endpoints are reached with live values too.
      const rp = await relyingParty(server.issuer, web.clientId, web.clientSecret, REDIRECT, { scope: 'openid profile email' });
      const auth = await rp.authorizationUrl();
      const agent = new UserAgent(server.issuer);
      const page = await agent.follow(auth.url);
      const done = await agent.submit(formAction(page.body), { login: 'alice', password: 'correct horse battery' });
      const tokens = await rp.redeem(done.location!, auth);
      known.tokens.push(tokens.access_token, tokens.refresh_token!, tokens.id_token!);
      known.idTokens.push(tokens.id_token!);
      await oidc.fetchUserInfo(rp.config, tokens.access_token, oidc.skipSubjectCheck);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
      report(`endpoints (${kind})`, started);
    });

    test('the row watch sees a change (so a passing property means something)', async () => {
      const watch = new RowWatch(server.opened.services.db);
      await watch.reset();
      await server.opened.services.db
        .insertInto('groups')
        .values({ id: `watch-${Date.now()}`, name: `watch-${Date.now()}`, description: null })
        .execute();
      await expect(watch.after({ status: 400, text: '' }, 'a refused input that wrote a row')).rejects.toThrow();
    });

    test(
      'no input gets a 5xx, the server keeps answering, and a refused input changes no row',
      async () => {
        const watch = new RowWatch(server.opened.services.db);
        await watch.reset();
        await fuzz(
          requestOf(known),
          async (r) => {
            await watch.after(await answerOf(await send(server.issuer, r), describeRequest(r)), describeRequest(r));
          },
          runs,
        );
        const health = await fetch(`${server.issuer}/readyz`);
        if (health.status !== 200) throw new Error(`the server no longer answers /readyz: ${health.status}`);
      },
      timeoutFor(runs),
    );
  });
}
