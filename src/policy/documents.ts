/**
 * Policy documents: what admins write (YAML or JSON), validated with zod.
 * A bad document is refused with the path of the bad field.
 *
 * Combination rule: documents are merged from broad to narrow (global, then
 * the account's groups, then the app) and the strictest requirement wins. A
 * narrower document can raise the bar, never lower it.
 */
import { z } from 'zod';

const level = z.union([z.literal(1), z.literal(2), z.literal(3)]);
const seconds = z.number().int().min(1).max(400 * 86400);
const factorList = z.array(z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, 'a factor id')).min(1);

const limitRule = z.object({ points: z.number().int().min(1).max(1000), windowSeconds: z.number().int().min(1).max(7 * 86400) }).strict();
const rule = (points: number, windowSeconds: number) => limitRule.default({ points, windowSeconds });
/** The burst brake: `points` free failures, then waits from `delaySeconds` doubling to `maxDelaySeconds`; the streak clears after `windowSeconds` of quiet. */
const burstRule = limitRule
  .extend({ delaySeconds: z.number().int().min(1).max(3600).default(30), maxDelaySeconds: z.number().int().min(1).max(86400).default(900) })
  .strict()
  .refine((r) => r.maxDelaySeconds >= r.delaySeconds, { message: 'maxDelaySeconds must be at least delaySeconds', path: ['maxDelaySeconds'] });
/** NIST SP 800-63B: at most 100 failed guesses per account in any 24 hours, so the window is at least a day. */
const dailyRule = limitRule
  .refine((r) => r.points <= 100, { message: 'at most 100 failures per account in 24 hours', path: ['points'] })
  .refine((r) => r.windowSeconds >= 86400, { message: 'at least 86400 (the ceiling is per 24 hours)', path: ['windowSeconds'] });

export const globalPolicySchema = z
  .object({
    /** `off`: only when an app asks; `optional`: for accounts that enrolled a factor; `required`: everyone. */
    mfa: z.enum(['off', 'optional', 'required']).default('optional'),
    /** The level every sign-in must reach at least. */
    minLevel: level.default(1),
    /** Factors that may be used at all (absent: every registered factor). */
    factors: factorList.optional(),
    /**
     * Session lifetimes (NIST SP 800-63B rev 4, section 2.2.3/2.3.3 reauthentication): how long a level stays proved.
     * `levelMaxAge`: seconds from the proof; older second-factor proofs stop counting and the session falls back (level
     * 2: 24 h, level 3: 12 h). `levelIdle`: seconds without activity in the session (an authorization request or a
     * sign-in step using it) after which the level lapses (level 2: 1 h, level 3: 15 min). Either way the second factor
     * is asked again, not the password (the session lasts SESSION_TTL). Level 3 is held to the shorter of both
     * levels' limits. An omitted entry keeps its default; longer limits are the operator's choice, up to 400 days.
     */
    levelMaxAge: z.object({ '2': seconds.default(24 * 3600), '3': seconds.default(12 * 3600) }).strict().prefault({}),
    levelIdle: z.object({ '2': seconds.default(3600), '3': seconds.default(15 * 60) }).strict().prefault({}),
    /**
     * Throttling and lockout. Second factor: `perAccountBurst` (a backoff), `perAccountDay` (rolling:
     * never more than `points` in any `windowSeconds`; at most 100 in at least 24 hours, NIST SP 800-63B),
     * `perAddress`. Passwords: `passwordPerLogin`, `passwordPerAddress`. Code sends (email, SMS):
     * `sendPerAccount`, `sendPerAddress`, `sendPerDestination`. Defaults are the built-in numbers.
     */
    throttle: z
      .object({
        perAccountBurst: burstRule.default({ points: 5, windowSeconds: 300, delaySeconds: 30, maxDelaySeconds: 900 }),
        perAccountDay: dailyRule.default({ points: 100, windowSeconds: 86400 }),
        perAddress: rule(50, 900),
        passwordPerLogin: rule(20, 900),
        passwordPerAddress: rule(100, 900),
        sendPerAccount: rule(10, 3600),
        sendPerAddress: rule(100, 3600),
        sendPerDestination: rule(10, 3600),
      })
      .strict()
      .prefault({}),
    /** "Don't ask again on this device". Off by default. */
    trustedDevices: z
      .object({ enabled: z.boolean().default(false), days: z.number().int().min(1).max(365).default(30) })
      .strict()
      .default({ enabled: false, days: 30 }),
  })
  .strict();
export type GlobalPolicy = z.infer<typeof globalPolicySchema>;

export const groupPolicySchema = z
  .object({
    /** The level members must reach. */
    level: level.optional(),
    factors: factorList.optional(),
    /** Until when members without a second factor may skip enrolment (reminded at each sign-in). */
    enrollmentDeadline: z
      .union([
        z.object({ date: z.iso.date() }).strict(),
        z.object({ days: z.number().int().min(0).max(3650) }).strict(),
      ])
      .optional(),
  })
  .strict();
export type GroupPolicy = z.infer<typeof groupPolicySchema>;

export const clientPolicySchema = z
  .object({
    mfa: z.enum(['off', 'optional', 'required']).optional(),
    /** A minimum acr (from the ACR table) that a request cannot lower. */
    minAcr: z.string().min(1).optional(),
    factors: factorList.optional(),
    /** Maximum age of the authentication, in seconds: older sessions sign in again. A request's max_age can only shorten it. */
    maxAuthAge: seconds.optional(),
    /** Whether a trusted device may stand in for the second factor for this app (when the global policy enables them). */
    trustedDevices: z.enum(['allow', 'deny']).optional(),
    /** `deny`: proofs from synced (backup-eligible, amr `swk`) passkeys do not count for this app; device-bound keys do. */
    syncedPasskeys: z.enum(['allow', 'deny']).optional(),
  })
  .strict();
export type ClientPolicy = z.infer<typeof clientPolicySchema>;

export class PolicyDocumentError extends Error {}

/** Parses a document; a failure names the path of the first bad field. */
export function parsePolicy<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length ? issue.path.join('.') : '(document)';
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
  throw new PolicyDocumentError(`${what}: ${where}: ${message}`);
}
