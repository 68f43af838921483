/**
 * Metrics end to end: a password + TOTP sign-in with one wrong code, an
 * enrolment inside sign-in and a removal, then a scrape checks the exact
 * counts by label, the exposition format, and that no person or app is named.
 * Access: a token on the main listener (401 otherwise), a listener of its
 * own, nothing when off.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, testConfig, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { startMailSink } from '../helpers/mail-sink.ts';
import { InteractionState } from '../../src/mfa/step-state.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const TOKEN = 'metrics-token-0123456789abcdef';

/** One sample of the text format: name, optional labels, value, optional timestamp. */
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?\d+(\.\d+)?([eE][+-]?\d+)?|NaN|[+-]Inf)( -?\d+)?$/;
const COMMENT = /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/;

/** The value of the sample named exactly so (labels in prom-client's order), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(url: string, token?: string): Promise<Response> {
  return fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
}

for (const kind of DIALECTS) {
  describe(`metrics on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    let rp: RelyingParty;
    let app: { clientId: string; clientSecret: string | null };

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'required', METRICS: 'token', METRICS_TOKEN: TOKEN });
      services = server.opened.services;
      app = await createClient(services.db, services.sealer, { name: 'web', redirectUris: [REDIRECT], firstParty: true });
      rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    test('a sign-in with a failed TOTP, an enrolment and a removal are counted exactly, by bounded labels', async () => {
      const alice = await createAccount(services.db, services.hasher, { username: 'alice-metrics', password: 'a long password' });
      const secret = await enrolTotp(services, alice.id);

      // A wrong password, then the right one, a wrong TOTP code, then the right one.
      const agent = new UserAgent(server.issuer);
      const auth = await rp.authorizationUrl();
      const page = await agent.follow(auth.url);
      const refused = await agent.submit(formAction(page.body), { login: 'alice-metrics', password: 'not the password' });
      expect(refused.status).toBe(401);
      const step = await agent.submit(formAction(refused.body), { login: 'alice-metrics', password: 'a long password' });
      expect(step.body).toContain('Two-step verification');
      const wrong = await agent.submit(formAction(step.body), { code: totpCode(secret) === '000000' ? '111111' : '000000' });
      expect(wrong.status).toBe(401);
      const done = await agent.submit(formAction(wrong.body), { code: totpCode(secret) });
      expect(done.location).toMatch(/callback\?code=/);
      await rp.redeem(done.location!, auth);

      // Bob has no factor yet: MFA=required enrols TOTP (and backup codes) inside the sign-in.
      await createAccount(services.db, services.hasher, { username: 'bob-metrics', password: 'a long password' });
      const bobAgent = new UserAgent(server.issuer);
      const bobAuth = await rp.authorizationUrl();
      const bobPage = await bobAgent.follow(bobAuth.url);
      const setup = await bobAgent.submit(formAction(bobPage.body), { login: 'bob-metrics', password: 'a long password' });
      const key = /<code class="key">([^<]+)<\/code>/.exec(setup.body)![1]!.replace(/\s/g, '');
      const codes = await bobAgent.submit(formAction(setup.body), { code: totpCode(key), label: 'Phone' });
      expect(codes.body).toContain('Save your backup codes');
      const bobDone = await bobAgent.submit(formAction(codes.body), { saved: 'yes' });
      const bobId = (await rp.redeem(bobDone.location!, bobAuth)).claims()!.sub;
      const bobTotp = (await services.factors.store.list(bobId)).find((c) => c.factorId === 'totp')!;
      expect(await services.factors.remove(bobId, bobTotp.id, { actor: 'admin:cli' })).toBe(true);

      const res = await scrape(`${server.issuer}/metrics`, TOKEN);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await res.text();

      expect(sample(text, 'twofold_sign_ins_total{method="password",result="failure"}')).toBe(1);
      expect(sample(text, 'twofold_sign_ins_total{method="password",result="success"}')).toBe(2);
      expect(sample(text, 'twofold_factor_verifications_total{factor="totp",result="wrong"}')).toBe(1);
      expect(sample(text, 'twofold_factor_verifications_total{factor="totp",result="success"}')).toBe(1);
      expect(sample(text, 'twofold_factor_enrollments_total{factor="totp"}')).toBe(1);
      expect(sample(text, 'twofold_factor_enrollments_total{factor="backup-codes"}')).toBe(1);
      expect(sample(text, 'twofold_factor_removals_total{factor="totp"}')).toBe(1);
      expect((await listAudit(services.db, { type: 'factor.removed' }))[0]!.details).toMatchObject({ factor: 'totp', credential: bobTotp.id });
      // The counters agree with the audit trail they are fed from.
      const audited = async (type: string) => (await listAudit(services.db, { type, limit: 1000 })).length;
      expect(await audited('login.password_verified')).toBe(2);
      expect(await audited('factor.used')).toBe(1);

      // Requests by route name, never by path: the token endpoint was called twice (Alice, Bob), the password form three times.
      expect(sample(text, 'twofold_http_request_duration_seconds_count{route="token",method="POST",status="2xx"}')).toBe(2);
      expect(sample(text, 'twofold_http_request_duration_seconds_count{route="interaction_login",method="POST",status="4xx"}')).toBe(1);
      expect(text).not.toMatch(/route="[^"]*\/[^"]*"/);

      // Gauges and process metrics.
      expect(sample(text, 'twofold_password_hash_queue_depth')).toBe(0);
      expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
      expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
      if (kind === 'postgres') {
        expect(sample(text, 'twofold_db_pool_connections{state="total"}')).toBeGreaterThanOrEqual(1);
        expect(sample(text, 'twofold_db_pool_waiting')).toBeGreaterThanOrEqual(0);
      } else {
        expect(text).not.toContain('twofold_db_pool');
      }

      // Nobody is named: no login, account id, client id or address in any label.
      for (const name of ['alice-metrics', 'bob-metrics', alice.id, bobId, app.clientId, '127.0.0.1']) expect(text).not.toContain(name);

      // The exposition format, line by line.
      const lines = text.split('\n').filter((l) => l !== '');
      expect(lines.length).toBeGreaterThan(50);
      for (const line of lines) expect(line.startsWith('#') ? COMMENT.test(line) : SAMPLE.test(line)).toBe(true);
    });

    test('without a token, or with a wrong one, the answer is 401 with a Bearer challenge', async () => {
      const none = await scrape(`${server.issuer}/metrics`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      expect(await none.text()).not.toContain('twofold_');
      const wrong = await scrape(`${server.issuer}/metrics`, `${TOKEN}x`);
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="metrics", error="invalid_token"');
      expect(((await wrong.json()) as { error: string }).error).toBe('invalid_token');
      const basic = await fetch(`${server.issuer}/metrics`, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
      expect(basic.status).toBe(401);
    });
  });
}

describe('metrics access', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
  });

  afterAll(async () => {
    await database?.close();
  });

  test('off by default: /metrics is not served', async () => {
    const server = await startTestServer(database);
    try {
      expect(server.config.METRICS).toBe('off');
      const res = await scrape(`${server.issuer}/metrics`, TOKEN);
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain('twofold_');
    } finally {
      await server.close();
    }
  });

  test('a listener of its own on loopback serves only /metrics; the main listener does not', async () => {
    const server = await startTestServer(database, { METRICS: 'listener', METRICS_PORT: '0' });
    try {
      expect(server.metricsPort).toBeGreaterThan(0);
      const base = `http://127.0.0.1:${server.metricsPort}`;
      const res = await scrape(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE twofold_sign_ins_total counter');
      expect((await scrape(`${base}/other`)).status).toBe(404);
      expect((await scrape(`${server.issuer}/metrics`)).status).toBe(404);
    } finally {
      await server.close();
    }
    // With a token set, the listener asks for it too.
    const guarded = await startTestServer(database, { METRICS: 'listener', METRICS_PORT: '0', METRICS_TOKEN: TOKEN });
    try {
      const base = `http://127.0.0.1:${guarded.metricsPort}`;
      expect((await scrape(`${base}/metrics`)).status).toBe(401);
      expect((await scrape(`${base}/metrics`, TOKEN)).status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  test('codes sent and delivery failures by channel, through a real mail server', async () => {
    const sink = await startMailSink();
    const server = await startTestServer(database, {
      METRICS: 'token',
      METRICS_TOKEN: TOKEN,
      SMTP_URL: sink.url,
      FACTOR_SETTINGS: JSON.stringify({ 'email-code': { cooldown: 0 } }),
    });
    try {
      const { services } = server.opened;
      const account = await createAccount(services.db, services.hasher, {
        username: 'carol-metrics',
        email: 'carol@example.test',
        password: 'a long password',
      });
      await services.factors.store.insert(account.id, 'email-code', { label: 'Email', secret: 'carol@example.test', data: { channel: 'email' } });
      const send = (i: number) =>
        services.factors.act(
          'email-code',
          'challenge',
          account,
          new InteractionState(services.db, services.sealer, `metrics-send-${i}`),
          'send',
          {},
          { ip: '203.0.113.7' },
        );
      expect((await send(1)).ok).toBe(true);
      sink.refuseWith = 451;
      expect((await send(2)).ok).toBe(false);
      sink.refuseWith = undefined;
      const text = await (await scrape(`${server.issuer}/metrics`, TOKEN)).text();
      expect(sample(text, 'twofold_codes_sent_total{channel="email"}')).toBe(1);
      expect(sample(text, 'twofold_code_delivery_failures_total{channel="email",kind="rejected"}')).toBe(1);
      expect(text).not.toContain('carol');
    } finally {
      sink.refuseWith = undefined;
      await server.close();
      await sink.close();
    }
  });

  test('METRICS_TOKEN_FILE holds the token', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-metrics-')), 'token');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    expect(testConfig(3000, { METRICS: 'token', METRICS_TOKEN_FILE: file }).metricsToken).toBe(TOKEN);
    expect(() => testConfig(3000, { METRICS: 'token', METRICS_TOKEN_FILE: file, METRICS_TOKEN: TOKEN })).toThrow(
      'set either METRICS_TOKEN or METRICS_TOKEN_FILE, not both',
    );
    expect(() => testConfig(3000, { METRICS: 'token', METRICS_TOKEN_FILE: `${file}.missing` })).toThrow(/METRICS_TOKEN_FILE: cannot read .* \(ENOENT\)/);
  });

  test('configuration: a token mode without a token, a short token, or token mode with workers stop the start', () => {
    expect(() => testConfig(3000, { METRICS: 'token' })).toThrow('METRICS: `token` needs METRICS_TOKEN or METRICS_TOKEN_FILE');
    expect(() => testConfig(3000, { METRICS: 'token', METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: expected at least 16 characters.*\(got "…"\)/);
    expect(() => testConfig(3000, { METRICS: 'token', METRICS_TOKEN: TOKEN, WORKERS: '2', DATABASE_URL: 'postgres://x/y' })).toThrow(
      'with WORKERS > 1 use `listener`',
    );
    expect(() => testConfig(3000, { METRICS: 'public' })).toThrow(/METRICS: /);
  });
});
