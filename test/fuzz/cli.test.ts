/**
 * Fuzzing the `twofold` command's parsers and validation in-process (issue 13): every sub-command with known and hostile
 * arguments, options (its own and others'), and standard input (a password, a policy document). For every input: the
 * run ends with an exit code (0, 1 usage or refusal, 2 usage) instead of throwing, a failure is one line without a
 * stack, and a refused command changed no stored row.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { runCli } from '../../src/cli/run.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { timeoutFor, FUZZ_RUNS, SECOND_DATABASE_SHARE, RowWatch, argvText, histogram, fuzz, hostileText, rarely, report, short } from './kit.ts';

const started = Date.now();
const USERS = ['alice', 'bob', 'alice@example.test'];
const CLIENTS = ['web', 'machine'];
const GROUPS = ['staff'];

const CLIENT_OPTIONS = [
  '--device-flow',
  '--backchannel-logout-uri',
  '--redirect-uri',
  '--public',
  '--auth-method',
  '--mfa',
  '--min-acr',
  '--factors',
  '--pkce',
  '--id-token-claims',
  '--client-credentials',
  '--scope',
  '--resource-server',
  '--resource-scopes',
  '--first-party',
  '--max-auth-age',
  '--trusted-devices',
  '--default-acr-values',
  '--jwks-uri',
  '--id-token-alg',
  '--post-logout-redirect-uri',
];

type Kind = 'user' | 'client' | 'group' | 'factor' | 'field' | 'text';

/** Sub-commands, the kinds of their positional arguments, and their own options. */
const COMMANDS: Array<[string[], Array<Kind>, string[]]> = [
  [['user', 'add'], ['user'], ['--email', '--name', '--password-stdin', '--email-verified']],
  [['user', 'list'], [], ['--json']],
  [['user', 'show'], ['user'], ['--json']],
  [['user', 'set-password'], ['user'], ['--password-stdin']],
  [['user', 'disable'], ['user'], ['--json']],
  [['user', 'enable'], ['user'], ['--json']],
  [['user', 'unlock'], ['user'], ['--json']],
  [['user', 'remove'], ['user'], ['--force']],
  [['user', 'factors'], ['user'], ['--json']],
  [['user', 'reset-factors'], ['user'], ['--force']],
  [['user', 'factor', 'rename'], ['user', 'text', 'text'], ['--json']],
  [['user', 'factor', 'remove'], ['user', 'text'], ['--json']],
  [
    ['user', 'factor', 'import'],
    ['user', 'factor', 'field', 'field'],
    ['--secret-stdin', '--label', '--json'],
  ],
  [['factors'], [], ['--json']],
  [['user', 'devices'], ['user'], ['--revoke', '--revoke-all', '--json']],
  [['user', 'consents'], ['user'], ['--json']],
  [['user', 'revoke-consent'], ['user', 'client'], ['--json']],
  [['client', 'add'], ['client'], CLIENT_OPTIONS],
  [['client', 'update'], ['client'], CLIENT_OPTIONS],
  [['client', 'list'], [], ['--json']],
  [['client', 'show'], ['client'], ['--json']],
  [['client', 'remove'], ['client'], ['--json']],
  [['client', 'rotate-secret'], ['client'], ['--json']],
  [['group', 'add'], ['group'], ['--description']],
  [['group', 'list'], [], ['--json']],
  [['group', 'remove'], ['group'], ['--json']],
  [['group', 'members', 'add'], ['group', 'user'], ['--json']],
  [['group', 'members', 'remove'], ['group', 'user'], ['--json']],
  [['group', 'members', 'list'], ['group'], ['--json']],
  [['keys', 'list'], [], ['--json']],
  [['policy', 'get'], [], ['--group', '--json']],
  [['policy', 'set'], [], ['--file', '--group']],
  [['policy', 'history'], [], ['--group', '--json']],
  [['policy', 'explain'], [], ['--user', '--client', '--acr-values', '--max-age', '--session', '--json']],
  [['audit', 'list'], [], ['--limit', '--type', '--user', '--json']],
  [['help'], ['text'], ['--json']],
];

const URIS = ['https://app.example.test/cb', 'http://localhost:3000/cb', 'not a uri', 'javascript:alert(1)', 'https://app.example.test/cb#frag'];
const ACR = ['urn:twofold:acr:2', 'urn:twofold:acr:3', 'https://refeds.org/profile/mfa', 'urn:unknown'];

/** Options with values an admin might type, or anything. */
const OPTIONS: Record<string, fc.Arbitrary<string> | null> = {
  '--email': fc.constantFrom('a@example.test', 'not-an-email'),
  '--name': fc.constantFrom('Alice', ''),
  '--email-verified': null,
  '--password-stdin': null,
  '--json': null,
  '--force': null,
  '--redirect-uri': fc.constantFrom(...URIS),
  '--post-logout-redirect-uri': fc.constantFrom(...URIS),
  '--public': null,
  '--first-party': null,
  '--third-party': null,
  '--auth-method': fc.constantFrom('client_secret_basic', 'private_key_jwt', 'none', 'x'),
  '--jwks-uri': fc.constantFrom(...URIS),
  '--jwks-file': fc.constantFrom('/nonexistent/jwks.json', '-'),
  '--id-token-alg': fc.constantFrom('RS256', 'ES256', 'none'),
  '--pkce': fc.constantFrom('required', 'optional', 'x'),
  '--id-token-claims': fc.constantFrom('full', 'minimal', 'x'),
  '--mfa': fc.constantFrom('off', 'optional', 'required', 'x'),
  '--min-acr': fc.constantFrom(...ACR),
  '--default-acr-values': fc.constantFrom(...ACR),
  '--factors': fc.constantFrom('totp', 'webauthn,totp', 'nope'),
  '--max-auth-age': fc.constantFrom('60', '-1', '1e99', 'x'),
  '--trusted-devices': fc.constantFrom('allow', 'deny', 'x'),
  '--synced-passkeys': fc.constantFrom('allow', 'deny', 'x'),
  '--client-credentials': null,
  '--device-flow': null,
  '--backchannel-logout-uri': fc.constantFrom(...URIS),
  '--no-client-credentials': null,
  '--scope': fc.constantFrom('api:read', ''),
  '--resource-server': fc.constantFrom('https://api.example.test', 'urn:x', 'x'),
  '--resource-scopes': fc.constantFrom('read write', ''),
  '--introspect-any': null,
  '--no-refresh-tokens': null,
  '--description': fc.constant('People'),
  '--group': fc.constantFrom(...GROUPS),
  '--user': fc.constantFrom(...USERS),
  '--client': fc.constantFrom(...CLIENTS),
  '--acr-values': fc.constantFrom(...ACR),
  '--max-age': fc.constantFrom('0', '60', 'x'),
  '--session': null,
  '--file': fc.constantFrom('-', '/nonexistent/policy.yaml'),
  '--limit': fc.constantFrom('1', '0', '-5', 'x'),
  '--type': fc.constantFrom('user.created', 'x'),
  '--secret-stdin': null,
  '--label': fc.constantFrom('Phone', ''),
  '--revoke': fc.constantFrom('1', 'x'),
  '--revoke-all': null,
  '--help': null,
};

const POLICIES = ['{"mfa":"required"}', 'mfa: optional\nminLevel: 2\n', '{"mfa":"sometimes"}', '{"mfa":"off","factors":["totp",5]}', '[]', '', 'mfa: ['];

/** What `user factor import` is given: fields as name=value, known or not, with values good or bad. */
const FIELDS = [
  'secret=JBSWY3DPEHPK3PXP',
  'secret=not base32',
  'digits=6',
  'digits=99',
  'period=0',
  'algorithm=MD5',
  'algorithm=sha256',
  'colour=blue',
  'secret',
  '=x',
];

function known(kind: Kind): fc.Arbitrary<string> {
  const pool = { user: USERS, client: CLIENTS, group: GROUPS, factor: ['totp', 'webauthn', 'nope'], field: FIELDS, text: ['1', 'x'] }[kind];
  return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...pool) }, { weight: 2, arbitrary: argvText });
}

const invocation = fc
  .constantFrom(...COMMANDS)
  .chain(([path, args, own]) =>
    fc.record({
      path: fc.constant(path),
      args: fc.tuple(...args.map(known)).map((a) => a as string[]),
      // Options: mostly from the whole table (some are not this command's), values known or hostile.
      options: fc.array(
        fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...own) }, { weight: 1, arbitrary: fc.constantFrom(...Object.keys(OPTIONS)) }).chain((name) => {
          const value = OPTIONS[name];
          return value ? fc.oneof({ weight: 3, arbitrary: value }, { weight: 1, arbitrary: argvText }).map((v) => [name, v]) : fc.constant<string[]>([name]);
        }),
        { maxLength: 3 },
      ),
      stray: rarely(argvText, 6),
      stdin: fc.oneof(fc.constantFrom(...POLICIES), fc.constant('a good password 1'), hostileText),
    }),
  )
  .map(({ path, args, options, stray, stdin }) => ({ argv: [...path, ...args, ...options.flat(), ...(stray !== undefined ? [stray] : [])], stdin }));

for (const kind of DIALECTS) {
  const runs = kind === 'pglite' ? FUZZ_RUNS : FUZZ_RUNS * SECOND_DATABASE_SHARE;
  describe(`fuzzing the twofold command on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database);
      const { db, hasher, sealer } = server.opened.services;
      await createAccount(db, hasher, { username: 'alice', email: 'alice@example.test', password: 'correct horse battery' });
      await createAccount(db, hasher, { username: 'bob', password: 'correct horse battery' });
      await createClient(db, sealer, { name: 'web', redirectUris: ['https://app.example.test/cb'] });
      await createClient(db, sealer, { name: 'machine', redirectUris: [], clientCredentials: true });
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
      report(`twofold command (${kind})`, started);
    });

    test(
      'every command line ends with an exit code, a failure is one line, and a refused one changes no row',
      async () => {
        const watch = new RowWatch(server.opened.services.db);
        await watch.reset();
        await fuzz(
          invocation,
          async ({ argv, stdin }) => {
            let out = '';
            let err = '';
            const what = short(JSON.stringify({ argv, stdin }), 1500);
            let code: number;
            try {
              code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t), stdin }, server.opened.services, 'admin:fuzz');
            } catch (thrown) {
              throw new Error(`twofold ${what} threw instead of answering: ${(thrown as Error).stack ?? String(thrown)}`);
            }
            if (process.env.FUZZ_DEBUG)
              histogram.set(`${code} ${argv.slice(0, 2).join(' ')}`, (histogram.get(`${code} ${argv.slice(0, 2).join(' ')}`) ?? 0) + 1);
            expect({ what, code: [0, 1, 2].includes(code) ? 'ok' : code }).toEqual({ what, code: 'ok' });
            if (code !== 0) expect({ what, err: /\n\s+at /.test(err) ? err : 'no stack' }).toEqual({ what, err: 'no stack' });
            // A refusal (exit 1 or 2) changed nothing: audit events included, a refused command is not an event.
            await watch.after({ status: code === 0 ? 200 : 400, text: err }, what, true);
          },
          runs,
        );
      },
      timeoutFor(runs),
    );
  });
}
