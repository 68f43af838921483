/**
 * One-time codes delivered out of band (email, text message, voice call), done
 * once for every factor that sends codes, so no plugin can get them wrong:
 *
 * - a code is random digits, delivered first and only then stored, as a keyed
 *   hash (HMAC under a key derived from SECRET_KEY), with an expiry;
 * - a code is accepted by one conditional UPDATE that also spends a try, so it
 *   is accepted at most once across all processes, and N parallel guesses are
 *   checked at most `maxAttempts` times;
 * - a new code replaces the scope's previous one and inherits the tries spent
 *   on it (a new code never resets the failure count; NIST SP 800-63B);
 * - sending is throttled per scope (cooldown), per account, per client address
 *   and per destination (enrolment and sign-in sends counted apart), with the
 *   global policy's numbers, and the answers never depend on whom a
 *   destination belongs to;
 * - a delivery that fails (the mail server or the gateway refused, failed or
 *   did not answer in time) leaves nothing behind: no code stored, the
 *   cooldown released, the previous code still valid. A person is told the
 *   truth: "nothing was sent" only when the message was refused or never
 *   left; after no answer in time, that it may arrive and will not work.
 */
import crypto from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { KeyedHasher } from '../security/keyed-hash.ts';
import { consume, consumeAll, giveBack, reset, withNumbers, type LimitRule } from '../security/rate-limit.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { DeliveryError, type Messaging } from '../messaging/index.ts';
import { logger } from '../logger.ts';
import type { CodeChannel, CodeRules, CodeStatus, Failure, MessageRef, OutOfBandCodes } from '../../factors/types.ts';
import { waitParams } from './wait-text.ts';

/** Codes sent for one account, whatever the channel: 10 an hour. */
export const SEND_PER_ACCOUNT: LimitRule = { name: 'oob:send:acct:1h', points: 10, windowSeconds: 3600 };
/** Codes requested from one client address, across accounts: 100 an hour (offices share addresses). */
export const SEND_PER_ADDRESS: LimitRule = { name: 'oob:send:ip:1h', points: 100, windowSeconds: 3600 };
/**
 * Codes sent to one email address or phone number, across accounts: 10 an hour (no mail bombing through
 * enrolment). Counted per purpose: enrolment sends (to an address anyone can type) and sign-in sends (to a
 * credential its account proved) apart, so accounts enrolling someone else's address cannot use up the
 * sends that person's own sign-in needs.
 */
export const SEND_PER_DESTINATION: LimitRule = { name: 'oob:send:to:1h', points: 10, windowSeconds: 3600 };
const DESTINATION_BY_PURPOSE: Record<'sign-in' | 'enroll', string> = { enroll: SEND_PER_DESTINATION.name, 'sign-in': 'oob:send:to:sign-in:1h' };
const COOLDOWN = 'oob:cooldown';

/** The send limits an admin may set in the global policy (`throttle`); the counter names stay fixed. */
export interface SendLimits {
  sendPerAccount: { points: number; windowSeconds: number };
  sendPerAddress: { points: number; windowSeconds: number };
  sendPerDestination: { points: number; windowSeconds: number };
}
const DEFAULT_SEND_LIMITS: SendLimits = { sendPerAccount: SEND_PER_ACCOUNT, sendPerAddress: SEND_PER_ADDRESS, sendPerDestination: SEND_PER_DESTINATION };

/**
 * What the person is told when the mail server or the gateway refused the message, or could not be reached: it was
 * not sent (`codes.notSent.*`); and when it did not answer in time (`codes.noAnswer.*`). It may have taken the
 * message before going quiet, so "nothing was sent" could be false; what is true is that the code in it was never
 * stored, so it will not work if it arrives.
 */
const FAILED_DELIVERY: Record<'refused' | 'timeout', Record<CodeChannel, MessageRef>> = {
  refused: { email: { key: 'codes.notSent.email' }, sms: { key: 'codes.notSent.sms' }, voice: { key: 'codes.notSent.voice' } },
  timeout: { email: { key: 'codes.noAnswer.email' }, sms: { key: 'codes.noAnswer.sms' }, voice: { key: 'codes.noAnswer.voice' } },
};

function failedDeliveryMessage(channel: CodeChannel, kind: DeliveryError['kind']): MessageRef {
  return FAILED_DELIVERY[kind === 'timeout' ? 'timeout' : 'refused'][channel];
}

type SendOutcome = { ok: true; status: CodeStatus } | (Failure & { retryAfterSeconds?: number });

interface CodeRow {
  id: string;
  channel: string;
  attempts: number;
  max_attempts: number;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

function checkRules(rules: CodeRules): void {
  const ok =
    Number.isInteger(rules.length) &&
    rules.length >= 4 &&
    rules.length <= 10 &&
    Number.isInteger(rules.ttlSeconds) &&
    rules.ttlSeconds >= 30 &&
    rules.ttlSeconds <= 86400 &&
    Number.isInteger(rules.maxAttempts) &&
    rules.maxAttempts >= 1 &&
    rules.maxAttempts <= 20 &&
    Number.isInteger(rules.cooldownSeconds) &&
    rules.cooldownSeconds >= 0 &&
    rules.cooldownSeconds <= 3600;
  if (!ok) throw new Error(`code rules out of range: ${JSON.stringify(rules)}`);
}

/** Uniformly random digits. */
export function randomDigits(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += String(crypto.randomInt(10));
  return out;
}

export class OutOfBandService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hasher: KeyedHasher,
    private readonly messaging: Messaging,
    /** Read at each send (the global policy's numbers in the engine; the defaults otherwise). */
    private readonly limits: () => Promise<SendLimits> = () => Promise.resolve(DEFAULT_SEND_LIMITS),
  ) {}

  /**
   * The codes of one factor for one account, with the request's client address for the throttles and the audit
   * log, and the person's language, which the message carrying a code is written in (the deployment's default
   * language when not given).
   */
  for(factorId: string, accountId: string, audit: AuditContext = {}, language?: string): OutOfBandCodes {
    const { db, hasher, messaging, limits } = this;
    const who = { ...audit, accountId };
    const ip = audit.ip ?? 'unknown';
    const hashOf = (scope: string, code: string) => hasher.hash(code, `oob:${factorId}:${accountId}:${scope}`);
    const cooldownKey = (scope: string) => `${factorId}:${accountId}:${scope}`;
    const inScope = (scope: string) =>
      db.selectFrom('challenge_codes').where('account_id', '=', accountId).where('factor_id', '=', factorId).where('scope', '=', scope);

    /** The scope's newest code still in its lifetime and unused (it may have no tries left). */
    const live = async (scope: string, now: Date): Promise<CodeRow | undefined> =>
      inScope(scope)
        .select(['id', 'channel', 'attempts', 'max_attempts', 'created_at', 'expires_at', 'used_at'])
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst();

    const statusOf = (row: CodeRow, cooldownSeconds: number): CodeStatus => {
      const attemptsLeft = Math.max(0, row.max_attempts - row.attempts);
      const afterCooldown = new Date(new Date(row.created_at).getTime() + cooldownSeconds * 1000);
      return {
        channel: row.channel as CodeChannel,
        sentAt: new Date(row.created_at),
        expiresAt: new Date(row.expires_at),
        // With no tries left, a new code would inherit none: the next one comes when this one would have expired.
        resendAt: attemptsLeft === 0 ? new Date(row.expires_at) : afterCooldown,
        attemptsLeft,
      };
    };

    return {
      channels: messaging.channels,

      async send({ scope, channel, to, purpose, rules }): Promise<SendOutcome> {
        checkRules(rules);
        if (!messaging.channels.includes(channel)) return { ok: false, reason: 'unavailable', message: { key: 'codes.channelOff' } };
        const now = new Date();
        const current = await live(scope, now);
        if (current && current.attempts >= current.max_attempts) {
          const wait = Math.max(1, Math.ceil((new Date(current.expires_at).getTime() - now.getTime()) / 1000));
          return { ok: false, reason: 'locked', retryAfterSeconds: wait, message: { key: 'codes.triesUsedUp', params: waitParams(wait) } };
        }
        const cooldown: LimitRule = { name: COOLDOWN, points: 1, windowSeconds: rules.cooldownSeconds };
        if (rules.cooldownSeconds > 0) {
          const verdict = await consume(db, cooldown, cooldownKey(scope));
          if (!verdict.allowed) {
            return {
              ok: false,
              reason: 'locked',
              retryAfterSeconds: verdict.retryAfterSeconds,
              message: { key: 'codes.cooldown', params: waitParams(verdict.retryAfterSeconds) },
            };
          }
        }
        const release = () => (rules.cooldownSeconds > 0 ? reset(db, cooldown, cooldownKey(scope)) : Promise.resolve());
        // Destinations are counted by keyed hash: the counters never hold an address in clear.
        const destination = hasher.hash(to.trim().toLowerCase(), 'oob:destination');
        const { sendPerAccount, sendPerAddress, sendPerDestination } = await limits();
        const counters = [
          { rule: withNumbers(SEND_PER_ACCOUNT, sendPerAccount), subject: accountId },
          { rule: withNumbers(SEND_PER_ADDRESS, sendPerAddress), subject: ip },
          { rule: withNumbers({ ...SEND_PER_DESTINATION, name: DESTINATION_BY_PURPOSE[purpose] }, sendPerDestination), subject: destination },
        ];
        const verdicts = await consumeAll(db, counters);
        const blocked = verdicts.filter((v) => !v.allowed);
        if (blocked.length) {
          // Nothing is sent, so nothing is counted: one full counter does not use up the others.
          await Promise.all([
            release(),
            giveBack(
              db,
              counters.map((c, i) => ({ ...c, result: verdicts[i]! })),
            ),
          ]);
          const wait = Math.max(...blocked.map((v) => v.retryAfterSeconds));
          await recordAudit(db, 'factor.send_throttled', who, { factor: factorId, channel });
          return { ok: false, reason: 'locked', retryAfterSeconds: wait, message: { key: 'codes.sendThrottled', params: waitParams(wait) } };
        }

        const code = randomDigits(rules.length);
        const expiresAt = new Date(Date.now() + rules.ttlSeconds * 1000);
        try {
          await messaging.sendCode({ channel, to, code, purpose, expiresAt, language });
        } catch (err) {
          if (!(err instanceof DeliveryError)) throw err;
          await release();
          logger.warn({ err: err.message, factor: factorId, channel, kind: err.kind }, 'code delivery failed');
          await recordAudit(db, 'factor.delivery_failed', who, { factor: factorId, channel, kind: err.kind });
          return { ok: false, reason: 'unavailable', message: failedDeliveryMessage(channel, err.kind) };
        }

        // Delivered: now, and only now, the code replaces the scope's previous one, inheriting its spent tries.
        const row = await db.transaction().execute(async (trx) => {
          const at = new Date();
          const previous = await trx
            .updateTable('challenge_codes')
            .set({ expires_at: at })
            .where('account_id', '=', accountId)
            .where('factor_id', '=', factorId)
            .where('scope', '=', scope)
            .where('used_at', 'is', null)
            .where('expires_at', '>', at)
            .returning('attempts')
            .execute();
          const carried = Math.min(rules.maxAttempts, Math.max(0, ...previous.map((p) => p.attempts)));
          return trx
            .insertInto('challenge_codes')
            .values({
              id: crypto.randomBytes(12).toString('base64url'),
              account_id: accountId,
              factor_id: factorId,
              scope,
              channel,
              code_hash: hashOf(scope, code),
              attempts: carried,
              max_attempts: rules.maxAttempts,
              created_at: at,
              expires_at: expiresAt,
            })
            .returning(['id', 'channel', 'attempts', 'max_attempts', 'created_at', 'expires_at', 'used_at'])
            .executeTakeFirstOrThrow();
        });
        await recordAudit(db, 'factor.code_sent', who, { factor: factorId, channel, purpose });
        return { ok: true, status: statusOf(row, rules.cooldownSeconds) };
      },

      async check(scope, input) {
        const code = input.replace(/\s/g, '');
        if (!/^\d{4,10}$/.test(code)) return { ok: false, reason: 'invalid_input', message: { key: 'codes.checkFormat' } };
        const now = new Date();
        const hash = hashOf(scope, code);
        // One statement spends a try and accepts the code if it matches: one winner, and no more checks than tries.
        const result = await sql<{ accepted: boolean; channel: string; attempts: number; max_attempts: number }>`
          update challenge_codes set
            attempts = attempts + 1,
            used_at = case when code_hash = ${hash} then ${now}::timestamptz else null end
          where account_id = ${accountId} and factor_id = ${factorId} and scope = ${scope}
            and used_at is null and expires_at > ${now}::timestamptz and attempts < max_attempts
          returning (used_at is not null) as accepted, channel, attempts, max_attempts`.execute(db);
        const rows = result.rows;
        const won = rows.find((r) => r.accepted);
        if (won) return { ok: true, channel: won.channel as CodeChannel };
        if (rows.length) {
          const left = Math.max(0, ...rows.map((r) => r.max_attempts - r.attempts));
          return {
            ok: false,
            reason: 'wrong',
            message: left === 0 ? { key: 'codes.wrongLast' } : { key: 'codes.wrong', params: { left } },
          };
        }
        // Nothing live took the try: say why, without spending anything.
        const used = await inScope(scope).select('id').where('code_hash', '=', hash).where('used_at', 'is not', null).executeTakeFirst();
        if (used) return { ok: false, reason: 'already_used', message: { key: 'codes.alreadyUsed' } };
        const current = await live(scope, now);
        if (current && current.attempts >= current.max_attempts) {
          const wait = (new Date(current.expires_at).getTime() - now.getTime()) / 1000;
          return { ok: false, reason: 'locked', message: { key: 'codes.locked', params: waitParams(wait) } };
        }
        const any = await inScope(scope).select('id').executeTakeFirst();
        return any ? { ok: false, reason: 'expired', message: { key: 'codes.expired' } } : { ok: false, reason: 'expired', message: { key: 'codes.noneSent' } };
      },

      async status(scope, rules) {
        const row = await live(scope, new Date());
        return row && statusOf(row, rules.cooldownSeconds);
      },
    };
  }
}
