/**
 * Fuzzing the sign-in pages (issue 13): the login form, the first-factor (passkey) form, the second-factor and
 * enrolment forms, skip, continue, consent and abort, each reached through a live interaction of a real sign-in at that
 * step, with known and hostile fields in any body encoding. For every input: no answer >= 500, the server still
 * answers, and an input refused (4xx) changed no stored row (throttle counters and audit events aside, see kit.ts).
 */
import { afterAll, beforeAll, describe, test } from '@jest/globals';
import fc from 'fast-check';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { cliRunner } from '../helpers/cli.ts';
import { enrolBackupCodes, enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import {
  timeoutFor,
  FUZZ_RUNS,
  SECOND_DATABASE_SHARE,
  RowWatch,
  bodyKind,
  fuzz,
  hostileText,
  paramsOf,
  rarely,
  report,
  send,
  short,
  answerOf,
  type FuzzRequest,
} from './kit.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';
const FACTORS = ['totp', 'backup-codes', 'webauthn', 'passkey', 'email-code', 'sms-code'];
const STAGES = ['login', 'second-factor', 'enrol', 'consent'] as const;
type Stage = (typeof STAGES)[number];
/** Inputs sent to one interaction before a fresh one is started (a success or an abort ends it sooner). */
const PER_INTERACTION = 8;
const started = Date.now();

const b64 = fc.base64String({ maxLength: 64 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
const credentialJson = fc
  .record(
    {
      id: b64,
      rawId: b64,
      type: fc.constantFrom('public-key', 'x'),
      response: fc.record(
        { clientDataJSON: b64, authenticatorData: b64, signature: b64, userHandle: b64, attestationObject: b64, transports: fc.constant(['usb']) },
        { requiredKeys: [] },
      ),
      clientExtensionResults: fc.constant({}),
      authenticatorAttachment: fc.constantFrom('platform', 'cross-platform'),
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

interface Live {
  agent: UserAgent;
  uid: string;
  used: number;
}

for (const kind of DIALECTS) {
  const runs = (kind === 'pglite' ? 1 : SECOND_DATABASE_SHARE) * FUZZ_RUNS;
  describe(`fuzzing the sign-in pages on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let web: RelyingParty;
    let strict: RelyingParty;
    let third: RelyingParty;
    let secret: string;
    const backupCodes = ['AAAA-BBBB-CCCC', 'DDDD-EEEE-FFFF'];
    const live = new Map<Stage, Live>();

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional' });
      const services = server.opened.services;
      const { db, hasher, sealer } = services;
      const withTotp = await createAccount(db, hasher, { username: 'totp-user', email: 'totp@example.test', password: PASSWORD });
      secret = await enrolTotp(services, withTotp.id);
      await enrolBackupCodes(services, withTotp.id, backupCodes);
      await createAccount(db, hasher, { username: 'plain', password: PASSWORD });
      await createAccount(db, hasher, { username: 'newbie', password: PASSWORD });
      const make = async (name: string, firstParty: boolean) => {
        const c = await createClient(db, sealer, { name, redirectUris: [REDIRECT], firstParty });
        return relyingParty(server.issuer, c.clientId, c.clientSecret, REDIRECT);
      };
      web = await make('web', true);
      strict = await make('strict', true);
      third = await make('third', false);
      // The strict app requires a second factor: an account without one enrols inside the sign-in.
      const cli = cliRunner(() => services);
      const set = await cli('client', 'update', 'strict', '--mfa', 'required');
      if (set.code !== 0) throw new Error(set.err);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
      report(`sign-in pages (${kind})`, started);
    });

    /** A sign-in brought to `stage`: its browser and interaction. */
    async function reach(stage: Stage): Promise<Live> {
      // Throttle counters from earlier inputs would turn every later one into a 429: each interaction starts afresh.
      await server.opened.services.db.deleteFrom('rate_limits').execute();
      // A consent given by an earlier input is remembered: revoke it, or the sign-in would not stop at the consent page.
      if (stage === 'consent') await cliRunner(() => server.opened.services)('user', 'revoke-consent', 'plain', 'third');
      const agent = new UserAgent(server.issuer);
      const app = stage === 'enrol' ? strict : stage === 'consent' ? third : web;
      const auth = await app.authorizationUrl();
      let page = await agent.follow(auth.url);
      if (stage !== 'login') {
        const login = stage === 'second-factor' ? 'totp-user' : stage === 'enrol' ? 'newbie' : 'plain';
        page = await agent.submit(formAction(page.body), { login, password: PASSWORD });
      }
      const uid = /\/interaction\/([\w-]+)/.exec(page.url + ' ' + page.body)?.[1];
      if (!uid || page.status !== 200) throw new Error(`could not reach ${stage}: ${page.status} ${page.url} ${short(page.body)}`);
      return { agent, uid, used: 0 };
    }

    function requestOf(): fc.Arbitrary<{ stage: Stage; route: string; request: Omit<FuzzRequest, 'path' | 'headers'>; origin: string | undefined }> {
      const login = paramsOf({
        login: fc.constantFrom('totp-user', 'plain', 'newbie', 'totp@example.test', 'nobody'),
        password: fc.constantFrom(PASSWORD, 'wrong password'),
      });
      const code = fc.oneof(
        fc.constant('').map(() => totpCode(secret)),
        fc.constantFrom(...backupCodes, '000000', '123456'),
        fc.stringMatching(/^[0-9]{6}$/),
      );
      const factorForm = paramsOf(
        {},
        {
          code,
          response: credentialJson,
          label: fc.constantFrom('Phone', 'Key'),
          trust: fc.constant('yes'),
          action: fc.constantFrom('send', 'resend', 'other', 'skip'),
          phone: fc.constantFrom('+4915112345678', '12'),
          email: fc.constantFrom('a@example.test', 'x'),
        },
      );
      const other = paramsOf({}, { saved: fc.constant('yes'), action: fc.constantFrom('allow', 'deny'), prompt: fc.constant('consent'), x: hostileText });
      const factorId = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...FACTORS) },
        { weight: 1, arbitrary: hostileText.map((s) => encodeURIComponent(Buffer.from(s.slice(0, 40)).toString())) },
      );
      const route = (name: fc.Arbitrary<string>, form: fc.Arbitrary<FuzzRequest['body']>) => fc.record({ route: name, form });
      const factorRoute = (prefix: string) =>
        route(
          factorId.map((f) => `${prefix}/${f}`),
          factorForm,
        );
      // A waiting factor's status and "start again", a factor's browser return: the engine's routes around every factor.
      const factorOwnRoute = route(
        fc.tuple(factorId, fc.constantFrom('status', 'restart', 'return')).map(([f, r]) => `factor/${f}/${r}`),
        factorForm,
      );
      // Mostly what the step shows (so the input gets to the code behind it), now and then any other route.
      const routesAt: Record<Stage, fc.Arbitrary<{ route: string; form: FuzzRequest['body'] }>> = {
        login: fc.oneof({ weight: 6, arbitrary: route(fc.constant('login'), login) }, { weight: 2, arbitrary: factorRoute('first-factor') }),
        'second-factor': fc.oneof(
          { weight: 6, arbitrary: factorRoute('factor') },
          { weight: 2, arbitrary: factorOwnRoute },
          { weight: 1, arbitrary: route(fc.constantFrom('skip', 'continue'), other) },
        ),
        enrol: fc.oneof({ weight: 6, arbitrary: factorRoute('enroll') }, { weight: 1, arbitrary: route(fc.constantFrom('skip', 'continue'), other) }),
        consent: route(fc.constantFrom('consent', 'consent', 'abort'), other),
      };
      const anyRoute = fc.oneof(
        route(fc.constant('login'), login),
        factorRoute('first-factor'),
        factorRoute('factor'),
        factorOwnRoute,
        factorRoute('enroll'),
        route(fc.constantFrom('skip', 'continue', 'consent', 'abort', ''), other),
      );
      return fc
        .constantFrom(...STAGES)
        .chain((stage) =>
          fc.record({
            stage: fc.constant(stage),
            method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT') }),
            route: fc.oneof({ weight: 8, arbitrary: routesAt[stage] }, { weight: 1, arbitrary: anyRoute }),
            kind: bodyKind,
            bytes: fc.uint8Array({ maxLength: 64 }),
            origin: rarely(fc.constantFrom('http://evil.test', 'null'), 6),
          }),
        )
        .map((r) => ({
          stage: r.stage,
          route: r.route.route,
          origin: r.origin,
          request: { method: r.method, query: [], queryRaw: false, body: r.route.form, kind: r.kind, bytes: r.bytes },
        }));
    }

    test(
      'no input gets a 5xx, the server keeps answering, and a refused input changes no row',
      async () => {
        const watch = new RowWatch(server.opened.services.db);
        await watch.reset();
        await fuzz(
          requestOf(),
          async ({ stage, route, request, origin }) => {
            let current = live.get(stage);
            if (!current || current.used >= PER_INTERACTION) {
              current = await reach(stage);
              live.set(stage, current);
              await watch.reset();
            }
            current.used++;
            const cookie = [...current.agent.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
            const headers: Record<string, string> = { cookie, accept: 'text/html', origin: origin ?? server.issuer };
            const full: FuzzRequest = { ...request, path: `/interaction/${current.uid}${route ? `/${route}` : ''}`, headers };
            const what = short(`${stage}: ${full.method} ${full.path} (${full.kind}) ${JSON.stringify(full.body)}`, 1500);
            const res = await send(server.issuer, full);
            const answer = await answerOf(res, what);
            await watch.after(answer, what);
            // Finished, aborted or gone: the next input at this step starts a fresh sign-in.
            const location = res.headers.get('location') ?? '';
            if (answer.status === 303 && !location.includes(`/interaction/${current.uid}`)) current.used = PER_INTERACTION;
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
