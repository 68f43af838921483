/**
 * The out-of-band code service on every database in the matrix, with a
 * messaging stand-in that records what would be delivered (or fails): codes
 * stored only as keyed hashes, accepted once under concurrency, tries counted
 * before they are checked and carried over to a new code, the cooldown and
 * the send throttles (per account, per client address, per destination, with
 * the same answer whoever the destination belongs to; enrolment sends to an
 * address never use up its owner's sign-in sends; the numbers from the global
 * policy), a failed delivery that
 * leaves nothing behind, and scopes that never leak between accounts or
 * factors.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { openServices, type Opened } from '../../src/bootstrap.ts';
import { testConfig } from '../helpers/server.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { OutOfBandService, SEND_PER_ACCOUNT, SEND_PER_ADDRESS, SEND_PER_DESTINATION } from '../../src/mfa/out-of-band.ts';
import { savePolicy } from '../../src/policy/store.ts';
import { DeliveryError, type CodeMessage, type Messaging } from '../../src/messaging/index.ts';
import { purgeExpired } from '../../src/oidc/adapter.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { CodeRules, MessageRef } from '../../factors/types.ts';
import { Catalogue } from '../../src/i18n/catalogue.ts';

const RULES: CodeRules = { length: 6, ttlSeconds: 600, maxAttempts: 5, cooldownSeconds: 0 };

/** What an outcome tells the person, in English (its message key rendered, as a page would). */
const CATALOGUE = new Catalogue();
const said = (outcome: { ok: boolean; message?: MessageRef }) => (outcome.message ? CATALOGUE.text('en', outcome.message.key, outcome.message.params) : '');

/** Records deliveries; `fail` makes the next ones throw as a broken gateway would. */
function recorder() {
  const sent: CodeMessage[] = [];
  let fail: DeliveryError['kind'] | undefined;
  const messaging: Messaging = {
    channels: ['email', 'sms', 'voice'],
    email: 'smtp',
    async sendCode(message) {
      if (fail) throw new DeliveryError('broken on purpose', message.channel, fail);
      sent.push(message);
    },
    sendEmail: () => Promise.reject(new Error('this recorder carries codes only')),
    close() {},
  };
  return {
    messaging,
    sent,
    last: () => sent.at(-1)!.code,
    failWith(kind: DeliveryError['kind'] | undefined) {
      fail = kind;
    },
  };
}

for (const kind of DIALECTS) {
  describe(`out-of-band codes on ${kind}`, () => {
    let database: TestDatabase;
    let opened: Opened;
    let n = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      opened = await openServices(testConfig(39_998), { handle: database, migrate: true });
    });

    afterAll(async () => {
      await opened?.close();
      await database?.close();
    });

    async function setup() {
      const i = ++n;
      const account = await createAccount(opened.services.db, opened.services.hasher, { username: `oob-${i}` });
      const r = recorder();
      const service = new OutOfBandService(opened.services.db, opened.services.codeHasher, r.messaging);
      const ip = `192.0.2.${i}`;
      return { account, r, service, codes: service.for('email-code', account.id, { ip }), ip, to: `oob-${i}@example.test` };
    }

    test("a code is delivered (in the person's language), stored only as a keyed hash, and accepted once", async () => {
      const { account, r, service, codes, to } = await setup();
      const sent = await codes.send({ scope: 'cred-1', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      expect(sent).toMatchObject({ ok: true, status: { channel: 'email', attemptsLeft: 5 } });
      expect(r.sent).toEqual([expect.objectContaining({ channel: 'email', to, purpose: 'sign-in', code: expect.stringMatching(/^\d{6}$/) })]);
      const rows = await opened.services.db.selectFrom('challenge_codes').selectAll().where('account_id', '=', account.id).execute();
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(r.last());
      expect(await codes.check('cred-1', r.last())).toEqual({ ok: true, channel: 'email' });
      expect(await codes.check('cred-1', r.last())).toMatchObject({ ok: false, reason: 'already_used' });
      expect(await codes.status('cred-1', RULES)).toBeUndefined();
      // The person's language travels with the code to the message that carries it (none given: the default's).
      await service.for('email-code', account.id, {}, 'de').send({ scope: 'cred-2', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      expect(r.sent.map((m) => m.language)).toEqual([undefined, 'de']);
    });

    test('50 concurrent checks of the right code: exactly one accepted', async () => {
      const { r, codes, to } = await setup();
      await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: { ...RULES, maxAttempts: 10 } });
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => codes.check('s', r.last())));
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    });

    test('100 concurrent wrong guesses are checked at most maxAttempts times; then even the right code is refused', async () => {
      const { account, r, codes, to } = await setup();
      await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      const right = r.last();
      const wrong = right === '000000' ? '111111' : '000000';
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => codes.check('s', wrong)));
      expect(outcomes.filter((o) => !o.ok && o.reason === 'wrong')).toHaveLength(5);
      const row = await opened.services.db.selectFrom('challenge_codes').select('attempts').where('account_id', '=', account.id).executeTakeFirstOrThrow();
      expect(row.attempts).toBe(5);
      expect(await codes.check('s', right)).toMatchObject({ ok: false, reason: 'locked' });
    });

    test('a new code replaces the old one and inherits its spent tries; a used or exhausted scope says so', async () => {
      const { r, codes, to } = await setup();
      await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      const first = r.last();
      const wrong = (c: string) => (c === '000000' ? '111111' : '000000');
      await codes.check('s', wrong(first));
      await codes.check('s', wrong(first));
      const again = await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      expect(again).toMatchObject({ ok: true, status: { attemptsLeft: 3 } });
      const second = r.last();
      // The replaced code no longer works (and the try counts against the new one).
      if (first !== second) {
        const replaced = await codes.check('s', first);
        expect(replaced).toMatchObject({ ok: false, reason: 'wrong' });
        expect(said(replaced)).toContain('2 tries left');
      }
      await codes.check('s', wrong(second));
      await codes.check('s', wrong(second));
      expect((await codes.status('s', RULES))?.attemptsLeft).toBe(0);
      const refused = await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      expect(refused).toMatchObject({ ok: false, reason: 'locked' });
      expect(said(refused)).toMatch(/^Too many wrong codes\. You can ask for a new code in \d+ minutes\.$/);
      expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(500);
    });

    test('an expired code is refused as expired, not as wrong', async () => {
      const { account, r, codes, to } = await setup();
      await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      await opened.services.db
        .updateTable('challenge_codes')
        .set({ expires_at: new Date(Date.now() - 1) })
        .where('account_id', '=', account.id)
        .execute();
      expect(await codes.check('s', r.last())).toMatchObject({ ok: false, reason: 'expired' });
      const never = await codes.check('never-sent', '123456');
      expect(never).toMatchObject({ ok: false, reason: 'expired' });
      expect(said(never)).toContain('No code was sent');
      expect(await codes.check('s', 'abc')).toMatchObject({ ok: false, reason: 'invalid_input' });
    });

    test('the cooldown holds between sends of one scope, not across scopes', async () => {
      const { r, codes, to } = await setup();
      const rules = { ...RULES, cooldownSeconds: 60 };
      expect((await codes.send({ scope: 'a', channel: 'email', to, purpose: 'sign-in', rules })).ok).toBe(true);
      const soon = await codes.send({ scope: 'a', channel: 'email', to, purpose: 'sign-in', rules });
      expect(soon).toMatchObject({ ok: false, reason: 'locked' });
      expect(said(soon)).toMatch(/^A code was just sent\. You can ask for another one in \d+ seconds\.$/);
      expect((soon as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(50);
      expect((await codes.send({ scope: 'b', channel: 'email', to, purpose: 'sign-in', rules })).ok).toBe(true);
      expect(r.sent).toHaveLength(2);
      // Concurrent presses of the button send one code.
      const burst = await Promise.all(Array.from({ length: 10 }, () => codes.send({ scope: 'c', channel: 'email', to, purpose: 'sign-in', rules })));
      expect(burst.filter((o) => o.ok)).toHaveLength(1);
      expect(r.sent).toHaveLength(3);
    });

    test(`sending is throttled per account (${SEND_PER_ACCOUNT.points} an hour), with the same message whatever the address`, async () => {
      const { account, r, codes } = await setup();
      const outcomes = [];
      for (let i = 0; i < SEND_PER_ACCOUNT.points + 2; i++) {
        outcomes.push(
          await codes.send({ scope: `s${i}`, channel: 'email', to: `someone-${crypto.randomUUID()}@example.test`, purpose: 'enroll', rules: RULES }),
        );
      }
      expect(outcomes.filter((o) => o.ok)).toHaveLength(SEND_PER_ACCOUNT.points);
      expect(new Set(outcomes.filter((o) => !o.ok).map((o) => said(o)))).toEqual(new Set([expect.stringContaining('Too many codes were sent')]));
      expect(r.sent).toHaveLength(SEND_PER_ACCOUNT.points);
      expect((await listAudit(opened.services.db, { accountId: account.id, type: 'factor.send_throttled' })).length).toBe(2);
    });

    test(`one destination gets at most ${SEND_PER_DESTINATION.points} codes an hour, whichever accounts ask (no mail bombing)`, async () => {
      const victim = `victim-${crypto.randomUUID()}@example.test`;
      const outcomes = [];
      for (let i = 0; i < SEND_PER_DESTINATION.points + 3; i++) {
        const { codes } = await setup();
        // The address as typed: case does not make it another destination.
        outcomes.push(await codes.send({ scope: 'enroll:x', channel: 'email', to: i % 2 ? victim.toUpperCase() : victim, purpose: 'enroll', rules: RULES }));
      }
      expect(outcomes.filter((o) => o.ok)).toHaveLength(SEND_PER_DESTINATION.points);
      const other = await setup();
      expect((await other.codes.send({ scope: 'enroll:y', channel: 'email', to: other.to, purpose: 'enroll', rules: RULES })).ok).toBe(true);
    });

    test("accounts enrolling someone's address again and again do not use up that person's sign-in codes", async () => {
      const victim = await setup();
      const address = `b-${crypto.randomUUID()}@example.test`;
      // Attackers' accounts, from their own addresses, try to enrol B's address until the destination counter is full.
      const attempts = [];
      for (let i = 0; i < SEND_PER_DESTINATION.points + 5; i++) {
        const { codes } = await setup();
        attempts.push(await codes.send({ scope: `enroll:${i}`, channel: 'email', to: address, purpose: 'enroll', rules: RULES }));
      }
      expect(attempts.filter((o) => o.ok)).toHaveLength(SEND_PER_DESTINATION.points);
      // B signs in with the email code enrolled on that address: sent, and it works.
      const sent = await victim.codes.send({ scope: 'cred-b', channel: 'email', to: address, purpose: 'sign-in', rules: RULES });
      expect(sent).toMatchObject({ ok: true });
      expect(victim.r.sent.at(-1)).toMatchObject({ to: address, purpose: 'sign-in' });
      expect(await victim.codes.check('cred-b', victim.r.last())).toEqual({ ok: true, channel: 'email' });
      // Sign-in sends to one destination have a ceiling of their own.
      const more = [];
      for (let i = 0; i < SEND_PER_DESTINATION.points + 1; i++) {
        const { codes } = await setup();
        more.push(await codes.send({ scope: 'cred', channel: 'email', to: address, purpose: 'sign-in', rules: RULES }));
      }
      expect(more.filter((o) => o.ok)).toHaveLength(SEND_PER_DESTINATION.points - 1);
    });

    test(`one client address may ask for ${SEND_PER_ADDRESS.points} codes an hour across accounts; then locked with the same words, and another address still works`, async () => {
      const ip = `203.0.113.${++n % 250}`;
      const outcomes = [];
      for (let i = 0; i < SEND_PER_ADDRESS.points + 3; i++) {
        const account = await createAccount(opened.services.db, opened.services.hasher, { username: `oob-ip-${++n}` });
        const r = recorder();
        const codes = new OutOfBandService(opened.services.db, opened.services.codeHasher, r.messaging).for('email-code', account.id, { ip });
        outcomes.push(await codes.send({ scope: 's', channel: 'email', to: `oob-ip-${n}@example.test`, purpose: i % 2 ? 'sign-in' : 'enroll', rules: RULES }));
      }
      expect(outcomes.filter((o) => o.ok)).toHaveLength(SEND_PER_ADDRESS.points);
      const refused = outcomes.filter((o) => !o.ok) as Array<{ ok: false; reason: string; message: MessageRef; retryAfterSeconds: number }>;
      expect(refused).toHaveLength(3);
      for (const o of refused) {
        expect(o.reason).toBe('locked');
        expect(said(o)).toMatch(/^Too many codes were sent\. Try again in \d+ (?:seconds?|minutes?), or use another way to sign in\.$/);
        expect(o.retryAfterSeconds).toBeGreaterThan(3000);
      }
      // The same words as the per-account limit, so the answer says nothing about which counter (or account) it was.
      const { codes: own } = await setup();
      for (let i = 0; i < SEND_PER_ACCOUNT.points; i++)
        await own.send({ scope: `a${i}`, channel: 'email', to: `x${i}@example.test`, purpose: 'enroll', rules: RULES });
      const perAccount = (await own.send({ scope: 'a-last', channel: 'email', to: 'y@example.test', purpose: 'enroll', rules: RULES })) as {
        ok: false;
        message: MessageRef;
      };
      expect(said(perAccount).replace(/\d+ minutes?/, 'N')).toBe(said(refused[0]!).replace(/\d+ minutes?/, 'N'));
      // Another address is not affected.
      const other = await setup();
      expect((await other.codes.send({ scope: 's', channel: 'email', to: other.to, purpose: 'sign-in', rules: RULES })).ok).toBe(true);
    });

    test('the send limits come from the global policy: a lower sendPerAccount, sendPerAddress or sendPerDestination takes effect at the next send', async () => {
      const limits = {
        sendPerAccount: { points: 10, windowSeconds: 3600 },
        sendPerAddress: { points: 100, windowSeconds: 3600 },
        sendPerDestination: { points: 10, windowSeconds: 3600 },
      };
      const account = await createAccount(opened.services.db, opened.services.hasher, { username: `oob-policy-${++n}` });
      const r = recorder();
      const service = new OutOfBandService(opened.services.db, opened.services.codeHasher, r.messaging, async () => limits);
      const codes = service.for('email-code', account.id, { ip: `192.0.2.${++n % 250}` });
      const send = (to: string, i: number) => codes.send({ scope: `p${i}`, channel: 'email', to, purpose: 'enroll', rules: RULES });
      expect((await send('p@example.test', 0)).ok).toBe(true);
      limits.sendPerAccount = { points: 2, windowSeconds: 3600 };
      expect((await send('q@example.test', 1)).ok).toBe(true);
      expect(await send('r@example.test', 2)).toMatchObject({ ok: false, reason: 'locked' });
      limits.sendPerAccount = { points: 10, windowSeconds: 3600 };
      limits.sendPerDestination = { points: 1, windowSeconds: 3600 };
      expect(await send('p@example.test', 3)).toMatchObject({ ok: false, reason: 'locked' });
      limits.sendPerAddress = { points: 3, windowSeconds: 3600 };
      limits.sendPerDestination = { points: 10, windowSeconds: 3600 };
      expect((await send('s@example.test', 4)).ok).toBe(true);
      expect(await send('t@example.test', 5)).toMatchObject({ ok: false, reason: 'locked' });

      // Through the factor engine (codes written to the log, as in development), the numbers are the stored global policy's.
      const logging = await openServices(testConfig(39_997, { EMAIL_CODES: 'on' }), { handle: database, migrate: false });
      const other = await createAccount(opened.services.db, opened.services.hasher, { username: `oob-policy-${++n}` });
      await savePolicy(opened.services.db, 'global', { throttle: { sendPerAccount: { points: 1, windowSeconds: 3600 } } }, 'test');
      try {
        const engineCodes = logging.services.factors.outOfBand.for('email-code', other.id, { ip: `192.0.2.${++n % 250}` });
        expect((await engineCodes.send({ scope: 'e1', channel: 'email', to: 'e1@example.test', purpose: 'enroll', rules: RULES })).ok).toBe(true);
        expect(await engineCodes.send({ scope: 'e2', channel: 'email', to: 'e2@example.test', purpose: 'enroll', rules: RULES })).toMatchObject({
          ok: false,
          reason: 'locked',
        });
      } finally {
        await savePolicy(opened.services.db, 'global', {}, 'test');
        await logging.close();
      }
    });

    test('a failed delivery leaves nothing: no code stored, the previous code still valid, the cooldown released', async () => {
      const { account, r, codes, to } = await setup();
      const rules = { ...RULES, cooldownSeconds: 60 };
      await codes.send({ scope: 's', channel: 'sms', to: '+15555550100', purpose: 'sign-in', rules });
      const previous = r.last();
      await opened.services.db.deleteFrom('rate_limits').where('key', 'like', `oob:cooldown:email-code:${account.id}:%`).execute();
      for (const kind of ['timeout', 'rejected', 'unreachable'] as const) {
        r.failWith(kind);
        const failed = await codes.send({ scope: 's', channel: 'sms', to: '+15555550100', purpose: 'sign-in', rules });
        // "Nothing was sent" only when that is known; a gateway that went quiet may have taken it (finding 11).
        const words =
          kind === 'timeout'
            ? 'The text message service did not answer in time, so the text may or may not arrive'
            : 'We could not send the text message just now. Nothing was sent';
        expect(failed).toMatchObject({ ok: false, reason: 'unavailable' });
        expect(said(failed)).toContain(words);
      }
      r.failWith(undefined);
      expect(await opened.services.db.selectFrom('challenge_codes').select('id').where('account_id', '=', account.id).execute()).toHaveLength(1);
      expect((await listAudit(opened.services.db, { accountId: account.id, type: 'factor.delivery_failed' })).length).toBe(3);
      expect(await codes.check('s', previous)).toEqual({ ok: true, channel: 'sms' });
      // The cooldown a failed delivery took is given back: the user may try again at once.
      expect((await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules })).ok).toBe(true);
    });

    test('a channel this deployment cannot deliver over is unavailable', async () => {
      const { account } = await setup();
      const none: Messaging = {
        channels: [],
        email: 'off',
        sendCode: () => Promise.reject(new Error('unreachable')),
        sendEmail: () => Promise.reject(new Error('unreachable')),
        close() {},
      };
      const codes = new OutOfBandService(opened.services.db, opened.services.codeHasher, none).for('sms-code', account.id);
      expect(await codes.send({ scope: 's', channel: 'sms', to: '+15555550100', purpose: 'sign-in', rules: RULES })).toMatchObject({
        ok: false,
        reason: 'unavailable',
      });
    });

    test("scopes are private to their account and factor: another account's or factor's code never matches", async () => {
      const a = await setup();
      const b = await setup();
      await a.codes.send({ scope: 'same', channel: 'email', to: a.to, purpose: 'sign-in', rules: RULES });
      const code = a.r.last();
      expect((await b.codes.check('same', code)).ok).toBe(false);
      expect((await a.service.for('sms-code', a.account.id).check('same', code)).ok).toBe(false);
      expect(await a.codes.check('same', code)).toEqual({ ok: true, channel: 'email' });
    });

    test('bad rules from a factor are a bug, not a user failure', async () => {
      const { codes, to } = await setup();
      await expect(codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: { ...RULES, length: 3 } })).rejects.toThrow(/rules out of range/);
    });

    test('expired codes are purged with the other expired rows', async () => {
      const { account, codes, to } = await setup();
      await codes.send({ scope: 's', channel: 'email', to, purpose: 'sign-in', rules: RULES });
      await opened.services.db
        .updateTable('challenge_codes')
        .set({ expires_at: new Date(Date.now() - 3600_000) })
        .where('account_id', '=', account.id)
        .execute();
      await purgeExpired(opened.services.db);
      expect(await opened.services.db.selectFrom('challenge_codes').select('id').where('account_id', '=', account.id).execute()).toEqual([]);
    });
  });
}
