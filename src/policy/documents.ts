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
const seconds = z
  .number()
  .int()
  .min(1)
  .max(400 * 86400);
const factorList = z.array(z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, 'a factor id')).min(1);

const limitRule = z
  .object({
    points: z.number().int().min(1).max(1000),
    windowSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86400),
  })
  .strict();
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

/** A rule's numbers, when they are valid: what an old `passwordPerLogin` is carried over as. */
const legacyPasswordRule = (value: unknown) => (limitRule.safeParse(value).success ? value : undefined);

/**
 * Documents written before passwords were counted per account set
 * `passwordPerLogin` (a fixed window per login as typed). Its numbers carry over
 * to `passwordUnknownBrowsers`, the rule that took its place (free failures per
 * account and window), unless that is set too; the old field is then dropped.
 */
function foldLegacyPasswordRule(value: unknown): unknown {
  if (!value || typeof value !== 'object' || !('passwordPerLogin' in value)) return value;
  const { passwordPerLogin, ...rest } = value as Record<string, unknown>;
  const carried = legacyPasswordRule(passwordPerLogin);
  // An invalid old rule stays, so the refusal names it.
  if (!carried) return value;
  return 'passwordUnknownBrowsers' in rest ? rest : { ...rest, passwordUnknownBrowsers: carried };
}

/**
 * Throttling and lockout (docs/security.md, "Lockouts"). A browser that has
 * completed a sign-in to an account carries a signed device cookie and is
 * *known* there; every other browser is *unknown*.
 *
 * Second factors, counted per account and factor: `perAccountBurst` (unknown
 * browsers together: a backoff), `knownBrowserBurst` (each known browser on its
 * own), `perAccountDay` (every browser: rolling, never more than `points` in any
 * `windowSeconds`; at most 100 in at least 24 hours, NIST SP 800-63B),
 * `unknownBrowsersDay` (unknown browsers' share of it; absent, half),
 * `perAddress` (unknown browsers, per client address across accounts). Before
 * any factor is proved, a passkey naming a credential counts per credential
 * (`perAccountBurst`'s numbers), per known browser (`knownBrowserBurst`'s) and
 * per address, never on the account's counters.
 *
 * Passwords, counted per account (an unknown login per name, alike):
 * `passwordUnknownBrowsers` (a backoff), `passwordKnownBrowser`,
 * `passwordPerAccountDay` (the NIST cap over all), `passwordUnknownBrowsersDay`
 * (unknown browsers' share; absent, half), `passwordPerAddress`.
 *
 * Code sends (email, SMS): `sendPerAccount`, `sendPerAddress`,
 * `sendPerDestination`. Defaults are the built-in numbers.
 */
const throttleSchema = z
  .preprocess(
    foldLegacyPasswordRule,
    z
      .object({
        perAccountBurst: burstRule.default({ points: 5, windowSeconds: 300, delaySeconds: 30, maxDelaySeconds: 900 }),
        knownBrowserBurst: burstRule.default({ points: 5, windowSeconds: 300, delaySeconds: 30, maxDelaySeconds: 900 }),
        perAccountDay: dailyRule.default({ points: 100, windowSeconds: 86400 }),
        unknownBrowsersDay: dailyRule.optional(),
        perAddress: rule(50, 900),
        passwordUnknownBrowsers: burstRule.default({ points: 20, windowSeconds: 900, delaySeconds: 30, maxDelaySeconds: 900 }),
        passwordKnownBrowser: burstRule.default({ points: 20, windowSeconds: 900, delaySeconds: 30, maxDelaySeconds: 900 }),
        passwordPerAccountDay: dailyRule.default({ points: 100, windowSeconds: 86400 }),
        passwordUnknownBrowsersDay: dailyRule.optional(),
        passwordPerAddress: rule(100, 900),
        /** Superseded by `passwordUnknownBrowsers`; valid numbers were carried over before this is read. */
        passwordPerLogin: limitRule.optional(),
        sendPerAccount: rule(10, 3600),
        sendPerAddress: rule(100, 3600),
        sendPerDestination: rule(10, 3600),
      })
      .strict()
      // A share the whole cap would leave known browsers nothing: an attacker's failures could lock the owner again.
      .refine((t) => !t.unknownBrowsersDay || t.perAccountDay.points < 2 || t.unknownBrowsersDay.points < t.perAccountDay.points, {
        message: 'must be less than perAccountDay.points, so known browsers keep a share',
        path: ['unknownBrowsersDay', 'points'],
      })
      .refine(
        (t) => !t.passwordUnknownBrowsersDay || t.passwordPerAccountDay.points < 2 || t.passwordUnknownBrowsersDay.points < t.passwordPerAccountDay.points,
        {
          message: 'must be less than passwordPerAccountDay.points, so known browsers keep a share',
          path: ['passwordUnknownBrowsersDay', 'points'],
        },
      )
      .transform(({ passwordPerLogin: _superseded, ...rest }) => rest),
  )
  .prefault({});

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
    levelMaxAge: z
      .object({ '2': seconds.default(24 * 3600), '3': seconds.default(12 * 3600) })
      .strict()
      .prefault({}),
    levelIdle: z
      .object({ '2': seconds.default(3600), '3': seconds.default(15 * 60) })
      .strict()
      .prefault({}),
    /** Throttling and lockout: see `throttleSchema` and docs/security.md ("Lockouts"). */
    throttle: throttleSchema,
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
    enrollmentDeadline: z.union([z.object({ date: z.iso.date() }).strict(), z.object({ days: z.number().int().min(0).max(3650) }).strict()]).optional(),
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
