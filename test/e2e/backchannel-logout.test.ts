/**
 * OIDC Back-Channel Logout 1.0 against a real HTTP receiver, on every database
 * in the matrix. The receiver verifies each logout token with jose against the
 * provider's published JWKS: iss, aud (the app), iat, jti, sub, the
 * back-channel-logout event, sid exactly when the app registered
 * backchannel_logout_session_required (and equal to its ID token's sid), never
 * a nonce. Covered: RP-initiated logout at /session/end (which answers the
 * browser while an app still holds its request), an admin's password change
 * and disabling an account, a session that expired (found by the purge), a receiver that fails once and gets the retry, and
 * one that always fails (given up after BACKCHANNEL_LOGOUT_ATTEMPTS, audited).
 * Retries wait on the services' clock, moved forward, never on real time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import * as oidc from 'openid-client';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { ManualClock } from '../helpers/clock.ts';
import { UserAgent, formAction } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { createAccount, setDisabled } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { changePassword } from '../../src/accounts/password-change.ts';
import { notifySessionsEnded } from '../../src/accounts/end-sessions.ts';
import type { BackchannelDelivery } from '../../src/oidc/backchannel-logout.ts';
import { purgeSessionsThenRest } from '../../src/server.ts';

const REDIRECT = 'http://app.example.test/callback';
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const PASSWORD = 'correct horse battery';

interface Received {
  path: string;
  token: string;
}

/** An app's back-channel logout endpoint: records every POST; each path answers as the test says. */
class Receiver {
  readonly received: Received[] = [];
  /** Paths that answer 500 this many more times. */
  readonly failures = new Map<string, number>();
  /** Requests held open until released (a slow app). */
  readonly held: Array<() => void> = [];
  hold = new Set<string>();
  #server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '/';
      const token = new URLSearchParams(body).get('logout_token') ?? '';
      this.received.push({ path, token });
      const answer = () => {
        const left = this.failures.get(path) ?? 0;
        if (path.startsWith('/down') || left > 0) {
          this.failures.set(path, left - 1);
          res.writeHead(path.startsWith('/down') ? 503 : 500).end();
        } else res.writeHead(200, { 'cache-control': 'no-store' }).end();
      };
      if (this.hold.has(path)) this.held.push(answer);
      else answer();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    for (const release of this.held.splice(0)) release();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Waits for something the provider does in the background (a delivery); bounded, and no duration is asserted. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

for (const kind of DIALECTS) {
  describe(`back-channel logout on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let receiver: Receiver;
    let base: string;
    const clock = new ManualClock();
    let jwks: ReturnType<typeof createRemoteJWKSet>;
    const apps: Record<string, { clientId: string; rp: RelyingParty }> = {};
    let accountId: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      receiver = new Receiver();
      base = await receiver.start();
      // Deliveries happen when something is queued; retries only when the test moves the clock and looks.
      server = await startTestServer(database, {}, { clock, backchannelPollMs: 3_600_000 });
      const { db, hasher, sealer } = server.opened.services;
      accountId = (await createAccount(db, hasher, { username: 'alice', password: PASSWORD })).id;
      const register = async (name: string, path: string, sessionRequired: boolean) => {
        const c = await createClient(db, sealer, {
          name,
          redirectUris: [REDIRECT],
          postLogoutRedirectUris: ['http://app.example.test/bye'],
          firstParty: true,
          backchannelLogoutUri: `${base}${path}`,
          backchannelLogoutSessionRequired: sessionRequired,
        });
        apps[name] = { clientId: c.clientId, rp: await relyingParty(server.issuer, c.clientId, c.clientSecret, REDIRECT) };
      };
      await register('web', '/web', true);
      await register('other', '/other', false);
      await register('slow', '/slow', false);
      await register('flaky', '/flaky', true);
      await register('down', '/down', false);
      jwks = createRemoteJWKSet(new URL('/jwks', server.issuer));
    });

    afterAll(async () => {
      await server?.close();
      await receiver?.close();
      await database?.close();
    });

    const delivery = () => server.opened.services.backchannel as BackchannelDelivery;

    /** Signs in to each app in turn with one browser (single sign-on after the first); returns each app's ID token. */
    async function signInTo(agent: UserAgent, names: string[], password = PASSWORD): Promise<Record<string, string>> {
      const tokens: Record<string, string> = {};
      for (const name of names) {
        const { rp } = apps[name]!;
        const auth = await rp.authorizationUrl();
        let hop = await agent.follow(auth.url);
        if (!hop.location) hop = await agent.submit(formAction(hop.body), { login: 'alice', password });
        expect(hop.location).toMatch(/callback\?code=/);
        tokens[name] = (await rp.redeem(hop.location!, auth)).id_token!;
      }
      return tokens;
    }

    /** Verifies a logout token as an app must (OIDC Back-Channel Logout 1.0 §2.6) and returns its claims. */
    async function verifyLogoutToken(token: string, app: string): Promise<JWTPayload> {
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: server.issuer, audience: apps[app]!.clientId, typ: 'logout+jwt' });
      expect(protectedHeader.alg).toBe('RS256');
      expect(payload.sub).toBe(accountId);
      expect(typeof payload.iat).toBe('number');
      expect(payload.exp! - payload.iat!).toBe(120);
      expect(typeof payload.jti).toBe('string');
      expect(payload.events).toEqual({ [EVENT]: {} });
      expect(payload).not.toHaveProperty('nonce');
      return payload;
    }

    const queued = (app: string) => database.db.selectFrom('backchannel_logouts').selectAll().where('client_id', '=', apps[app]!.clientId).execute();

    test('discovery advertises back-channel logout; the apps are registered with their URIs', async () => {
      const meta = (await (await fetch(new URL('/.well-known/openid-configuration', server.issuer))).json()) as Record<string, unknown>;
      expect(meta).toMatchObject({ backchannel_logout_supported: true, backchannel_logout_session_supported: true });
    });

    test('RP-initiated logout tells every app of the session, without waiting for a slow one', async () => {
      const agent = new UserAgent(server.issuer);
      const ids = await signInTo(agent, ['web', 'other', 'slow']);
      const webSid = decodeJwt(ids.web!).sid;
      expect(typeof webSid).toBe('string');
      // An app registered without session_required gets no sid in its ID token either.
      expect(decodeJwt(ids.other!).sid).toBeUndefined();

      receiver.hold.add('/slow');
      const logoutUrl = oidc.buildEndSessionUrl(apps.web!.rp.config, { id_token_hint: ids.web!, post_logout_redirect_uri: 'http://app.example.test/bye' });
      const confirm = await agent.follow(logoutUrl.toString());
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const out = await agent.submit(formAction(confirm.body), { xsrf, logout: 'yes' });
      expect(out.location).toMatch(/^http:\/\/app\.example\.test\/bye/);

      const one = (path: string) => (receiver.at(path).length === 1 ? receiver.at(path)[0] : undefined);
      const web = await until('web notice', () => one('/web'));
      const other = await until('other notice', () => one('/other'));
      // The slow app's request arrived (held open by the app); the browser's answer never waited on it: it was queued.
      await until('slow request', () => receiver.held.length === 1);
      expect(receiver.at('/slow')).toHaveLength(1);

      const webClaims = await verifyLogoutToken(web.token, 'web');
      expect(webClaims.sid).toBe(webSid);
      const otherClaims = await verifyLogoutToken(other.token, 'other');
      expect(otherClaims).not.toHaveProperty('sid');
      expect(webClaims.jti).not.toBe(otherClaims.jti);
      await verifyLogoutToken(receiver.at('/slow')[0]!.token, 'slow');

      // Released: delivered, or (if it was held past the library's 2.5 s timeout) delivered by the retry.
      receiver.hold.delete('/slow');
      receiver.held.splice(0).forEach((release) => release());
      const settled = await until('the slow delivery settled', async () => {
        const rows = await queued('slow');
        return rows.length === 0 ? 'delivered' : rows[0]!.last_error ? 'retrying' : undefined;
      });
      if (settled === 'retrying') {
        clock.advance(server.opened.services.config.BACKCHANNEL_LOGOUT_BACKOFF + 1);
        expect(await delivery().deliverDue()).toMatchObject({ delivered: 1 });
      }
      expect(await queued('slow')).toEqual([]);
      expect(await queued('web')).toEqual([]);
      expect(await queued('other')).toEqual([]);
    });

    test("an admin's password change and disabling the account tell the apps of the sessions they ended", async () => {
      const services = server.opened.services;
      const ids = await signInTo(new UserAgent(server.issuer), ['web', 'other']);
      const before = receiver.received.length;
      const result = await changePassword(services, { accountId, password: 'another horse battery', via: 'admin', actor: 'admin:test' });
      expect(result.ok && result.sessionsEnded).toHaveLength(1);
      await until('two notices', () => receiver.received.length === before + 2);
      const [web, other] = [receiver.at('/web').at(-1)!, receiver.at('/other').at(-1)!];
      expect((await verifyLogoutToken(web.token, 'web')).sid).toBe(decodeJwt(ids.web!).sid);
      expect(await verifyLogoutToken(other.token, 'other')).not.toHaveProperty('sid');

      // Disabling the account (as `twofold user disable` does) ends the session signed in since.
      const again = await signInTo(new UserAgent(server.issuer), ['web'], 'another horse battery');
      const count = receiver.at('/web').length;
      await notifySessionsEnded(services, accountId, await setDisabled(services.db, accountId, true), 'disabled');
      await until('disable notice', () => receiver.at('/web').length === count + 1);
      expect((await verifyLogoutToken(receiver.at('/web').at(-1)!.token, 'web')).sid).toBe(decodeJwt(again.web!).sid);
      await setDisabled(services.db, accountId, false);
      await changePassword(services, { accountId, password: PASSWORD, via: 'admin', actor: 'admin:test' });
    });

    test('a receiver that fails first gets the notice again after the backoff', async () => {
      const services = server.opened.services;
      const ids = await signInTo(new UserAgent(server.issuer), ['flaky']);
      receiver.failures.set('/flaky', 1);
      await changePassword(services, { accountId, password: 'a third horse battery', via: 'admin', actor: 'admin:test' });
      const [row] = await until('the first failure recorded', async () => {
        const rows = await queued('flaky');
        return rows.length === 1 && rows[0]!.last_error ? rows : undefined;
      });
      expect(row).toMatchObject({ attempts: 1, reason: 'password', last_error: expect.stringContaining('500') });
      expect(receiver.at('/flaky')).toHaveLength(1);

      // Not due yet: nothing is sent.
      expect(await delivery().deliverDue()).toEqual({ delivered: 0, retrying: 0, failed: 0, dropped: 0 });
      clock.advance(services.config.BACKCHANNEL_LOGOUT_BACKOFF + 1);
      expect(await delivery().deliverDue()).toEqual({ delivered: 1, retrying: 0, failed: 0, dropped: 0 });
      expect(receiver.at('/flaky')).toHaveLength(2);
      const [first, second] = receiver.at('/flaky');
      const claims = await verifyLogoutToken(second!.token, 'flaky');
      expect(claims.sid).toBe(decodeJwt(ids.flaky!).sid);
      // Each attempt is a token of its own.
      expect(claims.jti).not.toBe(decodeJwt(first!.token).jti);
      expect(await queued('flaky')).toEqual([]);
      await changePassword(services, { accountId, password: PASSWORD, via: 'admin', actor: 'admin:test' });
    });

    test('a receiver that always fails is tried BACKCHANNEL_LOGOUT_ATTEMPTS times, then given up and audited', async () => {
      const services = server.opened.services;
      const { BACKCHANNEL_LOGOUT_ATTEMPTS: attempts, BACKCHANNEL_LOGOUT_BACKOFF: backoff } = services.config;
      expect(attempts).toBe(5);
      await signInTo(new UserAgent(server.issuer), ['down']);
      await changePassword(services, { accountId, password: 'a fourth horse battery', via: 'admin', actor: 'admin:test' });
      await until('the first failure recorded', async () => ((await queued('down'))[0]?.last_error ? true : undefined));
      for (let attempt = 2; attempt <= attempts; attempt++) {
        // Each retry waits four times longer than the one before.
        clock.advance(backoff * 4 ** (attempt - 2) - 1);
        expect((await delivery().deliverDue()).retrying + (await delivery().deliverDue()).failed).toBe(0);
        clock.advance(2);
        expect(await delivery().deliverDue()).toEqual(
          attempt < attempts ? { delivered: 0, retrying: 1, failed: 0, dropped: 0 } : { delivered: 0, retrying: 0, failed: 1, dropped: 0 },
        );
      }
      expect(receiver.at('/down')).toHaveLength(attempts);
      expect(await queued('down')).toEqual([]);
      const events = await database.db.selectFrom('audit_events').selectAll().where('type', '=', 'backchannel_logout.failed').execute();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        client_id: apps.down!.clientId,
        account_id: accountId,
        actor: 'system',
        details: { attempts, uri: `${base}/down`, reason: 'password', error: expect.stringContaining('503') },
      });
      // Nothing more is sent, however much later.
      clock.advance(86400);
      expect(await delivery().deliverDue()).toEqual({ delivered: 0, retrying: 0, failed: 0, dropped: 0 });
      expect(receiver.at('/down')).toHaveLength(attempts);
      await changePassword(services, { accountId, password: PASSWORD, via: 'admin', actor: 'admin:test' });
    });

    test('a session that expired is purged and its apps are told', async () => {
      await signInTo(new UserAgent(server.issuer), ['other']);
      const count = receiver.at('/other').length;
      await database.db
        .updateTable('oidc_payloads')
        .set({ expires_at: new Date(Date.now() - 3_600_000) })
        .where('kind', '=', 'Session')
        .execute();
      await purgeSessionsThenRest(server.opened.services);
      await until('expiry notice', () => receiver.at('/other').length === count + 1);
      await verifyLogoutToken(receiver.at('/other').at(-1)!.token, 'other');
      expect(await database.db.selectFrom('oidc_payloads').select('id').where('kind', '=', 'Session').execute()).toEqual([]);
    });

    test('with BACKCHANNEL_LOGOUT=false discovery does not advertise it', async () => {
      const off = await startTestServer(database, { BACKCHANNEL_LOGOUT: 'false' });
      try {
        const meta = (await (await fetch(new URL('/.well-known/openid-configuration', off.issuer))).json()) as Record<string, unknown>;
        expect(meta).not.toHaveProperty('backchannel_logout_supported');
        expect(meta).not.toHaveProperty('backchannel_logout_session_supported');
        expect(off.opened.services.backchannel).toBeUndefined();
        expect(off.opened.services.sessionsEnded).toHaveLength(0);
      } finally {
        await off.close();
      }
    });
  });
}
