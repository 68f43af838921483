/**
 * Twofold's configuration: one zod schema for environment variables and the
 * optional config file (JSON or YAML, same UPPER_SNAKE keys as the environment;
 * the environment wins). Every knob is documented in its metadata, from which
 * docs/configuration.md is generated (`npm run docs:config`).
 *
 * A bad value stops the start with one line naming the key and what is allowed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { DEFAULT_ACR_TABLE, TWOFOLD_ACR } from './policy/acr-table.ts';
import { BrandError, resolveBrand, type Brand } from './brand/brand.ts';
import { parseHex, type Hex } from './brand/contrast.ts';
import { BUILT_IN_FACTOR_IDS } from '../factors/built-in.ts';

/*
 * The value helpers say what is allowed in their message, since that message is
 * the one line an operator sees: `PORT: expected an integer from 1 to 65535 (got "abc")`.
 * Their metadata says the same for docs/configuration.md (see settingMeta).
 */
const BOOLEAN_WORDS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false };

const bool = z
  .unknown()
  .transform((v, ctx): boolean => {
    if (typeof v === 'boolean') return v;
    const word = typeof v === 'string' ? BOOLEAN_WORDS[v.trim().toLowerCase()] : undefined;
    if (word !== undefined) return word;
    ctx.addIssue({ code: 'custom', message: 'expected true, false, 1, 0, yes or no' });
    return z.NEVER;
  })
  .meta({ format: 'boolean' });

/** A whole number in [min, max], from a number (config file) or its decimal digits (environment). */
const integerIn = (min: number, max: number, message: string) =>
  z.unknown().transform((v, ctx): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });

const int = (min: number, max: number) =>
  integerIn(min, max, `expected an integer from ${min} to ${max}`).meta({ format: 'integer', minimum: min, maximum: max });

/** An absolute http:// or https:// URL. */
const httpUrl = (what = 'an http:// or https:// URL') => z.url({ protocol: /^https?$/, error: `expected ${what}` });

/** A list given as a comma-separated string (environment) or an array (config file). */
const list = (item: z.ZodType<string, string>) =>
  z
    .union([z.array(z.string()), z.string()])
    .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(item));

/** Seconds, as an integer. */
const seconds = (min: number, max: number) =>
  integerIn(min, max, `expected whole seconds from ${min} to ${max}`).meta({ format: 'seconds', minimum: min, maximum: max });

/** A product name: one line; no colon, since authenticator apps split their label (`issuer:account`) at the first one. */
const brandName = z
  .string()
  .trim()
  .min(1, 'expected 1–64 characters')
  .max(64, 'expected 1–64 characters')
  .regex(/^[^\p{Cc}:]+$/u, 'expected one line without a colon (authenticator apps split their label at a colon)');

/** A colour, as `#rrggbb`. */
const hexColor = z.unknown().transform((v, ctx): Hex => {
  const hex = typeof v === 'string' ? parseHex(v) : undefined;
  if (hex) return hex;
  // YAML reads an unquoted `#1f6feb` as a comment, leaving the key empty.
  ctx.addIssue({
    code: 'custom',
    message: v === null ? 'expected a colour as #rrggbb or #rgb (quote it in YAML: "#1f6feb")' : 'expected a colour as #rrggbb or #rgb',
  });
  return z.NEVER;
});

/** An `acr` value: a space separates values in acr_values, so none inside one. */
const ACR_VALUE = /^[\x21-\x7E]{1,255}$/;
/** ACR_VALUES: the table, or a message saying what is wrong with it. */
function readAcrTable(value: Record<string, unknown> | string): Record<string, 1 | 2 | 3> | string {
  let raw: unknown = value;
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('{')) {
      try {
        raw = JSON.parse(text);
      } catch {
        return 'a JSON object of acr value to level (1, 2 or 3), or the path of a JSON or YAML file holding one';
      }
    } else {
      try {
        raw = YAML.parse(fs.readFileSync(text, 'utf8')) as unknown; // YAML is a superset of JSON
      } catch (err) {
        return `cannot read ${text} as JSON or YAML (${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]})`;
      }
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'an object of acr value to level (1, 2 or 3)';
  // No prototype: a value named like an Object property (`__proto__`) is a value like any other.
  const table: Record<string, 1 | 2 | 3> = Object.create(null) as Record<string, 1 | 2 | 3>;
  for (const [value, level] of Object.entries(raw)) {
    if (!ACR_VALUE.test(value)) return `${JSON.stringify(value)}: an acr value is printable ASCII with no spaces, at most 255 characters`;
    if (level !== 1 && level !== 2 && level !== 3) return `${value}: the level must be 1, 2 or 3`;
    table[value] = level;
  }
  for (const [level, urn] of Object.entries(TWOFOLD_ACR)) {
    const given = table[urn];
    if (given !== undefined && given !== Number(level)) return `${urn}: Twofold's own value always means level ${level}`;
  }
  const own = Object.fromEntries(Object.entries(TWOFOLD_ACR).map(([level, urn]) => [urn, Number(level) as 1 | 2 | 3]));
  return { ...own, ...table };
}

const resourceServersSchema = z.record(
  z.url(),
  z
    .object({
      scope: z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/),
      accessTokenTTL: z.number().int().min(60).max(86400).optional(),
    })
    .strict(),
);

/*
 * Every setting carries its documentation as metadata, and docs/configuration.md
 * is generated from it (`npm run docs:config`): `description` (markdown, the
 * meaning; links are relative to docs/), `format` (what is accepted, where the
 * type does not say it), `defaultText` (a default the schema cannot show: one
 * computed at start), and `secret` (never echoed in an error).
 */
export const configSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development').meta({
      description: '`production` refuses to start without `SECRET_KEY` (or `SECRET_KEY_FILE`) or with an `ISSUER` that is not `https://`.',
    }),
    PORT: int(1, 65535).default(3000).meta({ description: 'TCP port to listen on.' }),
    HOST: z.string().default('').meta({ format: 'a host name or address', description: 'Interface to bind; empty means every interface, IPv4 and IPv6.' }),
    ISSUER: httpUrl('an http:// or https:// URL such as https://id.example.com')
      .refine(
        (u) => !u.endsWith('/') && !u.includes('?') && !u.includes('#'),
        'expected a URL without a trailing slash, query or fragment, such as https://id.example.com',
      )
      .optional()
      .meta({
        format: '`http://` or `https://` URL, no trailing slash, query or fragment',
        defaultText: '`http://localhost:$PORT`',
        description: 'The issuer URL apps see and every endpoint is built on. Set it to the public URL when behind a proxy or running several processes.',
      }),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      .optional()
      .meta({
        format: '`postgres://` or `postgresql://` URL',
        secret: true,
        description: 'The PostgreSQL database. Unset: embedded PGlite in `DATA_DIR/pgdata`.',
      }),
    DATABASE_POOL_SIZE: int(1, 200).default(10).meta({ description: 'Maximum connections in the PostgreSQL pool.' }),
    DATA_DIR: z.string().min(1).default('./data').meta({
      format: 'a folder',
      description:
        "Folder for PGlite's files, the generated development secret key (`secret.key`), the data-folder lock and the admin socket (`twofold.sock`).",
    }),
    SECRET_KEY: z
      .string()
      .refine((v) => decodeKey(v) !== undefined, '32 bytes as 64 hex characters or base64')
      .optional()
      .meta({
        format: '32 bytes, as 64 hex characters or base64 (`openssl rand -hex 32`)',
        defaultText: 'generated in development',
        secret: true,
        description:
          'Encrypts secrets at rest and keys the hashes tokens, codes and session ids are stored under. In development it is generated once into `DATA_DIR/secret.key`; required in production (or `SECRET_KEY_FILE`). Changing it makes the stored keys and secrets unreadable and ends every session and token.',
      }),
    SECRET_KEY_FILE: z.string().min(1).optional().meta({
      format: 'a file',
      description:
        'A file holding `SECRET_KEY` instead (same format, surrounding whitespace ignored), so the key stays out of the environment and out of `DATA_DIR`: a Kubernetes or Docker secret, a systemd credential (see [SECRET_KEY_FILE](running.md#keeping-the-key-out-of-the-environment-secret_key_file)). Set this or `SECRET_KEY`, not both. Refused when others can read it or others than its owner can write it (`chmod 600`, `400` or `640`; a Kubernetes secret: `defaultMode: 0400`), and in production when it lies inside `DATA_DIR` (a backup of the folder would carry the key with what it protects).',
    }),
    TRUST_PROXY: bool.default(false).meta({
      description:
        'Trust `X-Forwarded-Proto` and `X-Forwarded-For` from a TLS-terminating proxy (for HSTS and the client address). Off: forwarded headers are ignored. `X-Forwarded-Host` is never read: every public URL comes from `ISSUER`. See [Operations](running.md#behind-a-tls-proxy).',
    }),
    PKCE_REQUIRED: z
      .enum(['all', 'public'])
      .default('all')
      .meta({ description: '`all` (OAuth 2.1): every client must use PKCE (S256). `public`: only clients without a secret.' }),
    MFA: z.enum(['off', 'optional', 'required']).default('optional').meta({
      description:
        'The second factor: the global mode until a global policy document is stored (`twofold policy set`), which then wins. `off`: a second factor only when the app asks for it. `optional`: for accounts that enrolled one. `required`: for everyone; accounts without one enrol at sign-in.',
    }),
    FACTORS: list(z.string())
      .refine((entries) => new Set(entries).size === entries.length, { message: 'each factor is listed once' })
      .default([...BUILT_IN_FACTOR_IDS])
      .meta({
        format: 'a comma-separated list (a list in a config file)',
        defaultText: `every built-in factor: \`${BUILT_IN_FACTOR_IDS.join(',')}\``,
        description:
          "The second factors that run, in the order the pages list them. Each is a built-in factor's id (see [The built-in factors](factors.md)) or a module whose default export is a factor: a path beginning with `./`, `../` or `/` (relative to the working directory, like every path here), or the name of an npm package installed in Twofold's folder (see [Naming a factor in FACTORS](writing-a-factor.md#naming-a-factor-in-factors)). They load at start; one that cannot be loaded stops the start, naming the entry. A factor left out is neither offered nor accepted (its users' credentials stay stored, unused). A listed factor that cannot work here (codes with no channel to send them) is off: the start-up log says which factors are on, and why the others are off. See [Choosing the factors](factors.md#choosing-the-factors).",
      }),
    FACTOR_SETTINGS: z
      .unknown()
      .transform((v, ctx): Record<string, unknown> => {
        let parsed = v;
        if (typeof v === 'string') {
          try {
            parsed = JSON.parse(v) as unknown;
          } catch {
            parsed = undefined;
          }
        }
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
        ctx.addIssue({ code: 'custom', message: 'a JSON object keyed by factor id' });
        return z.NEVER;
      })
      .default({})
      .meta({
        format: 'a JSON object keyed by factor id (an object in a config file)',
        // A factor's settings may hold an API key: a typo must not print them.
        secret: true,
        description:
          'Settings of the factors in `FACTORS`, by factor id: `{"<factor id>": {"<setting>": <value>, …}, …}`; what is left out keeps its default. Each factor documents its own: see [Factor settings](factors.md#factor-settings) for the built-in ones. They are checked at start, also for a listed factor that is off; an id that is neither listed nor built in stops the start, and the settings of a built-in factor left out of `FACTORS` are ignored. Fields a factor marks secret are never shown (`twofold factors` prints `[redacted]`).',
      }),
    RESOURCE_SERVERS: z
      .union([z.record(z.string(), z.unknown()), z.string()])
      .transform((v, ctx) => {
        let parsed: unknown = v;
        if (typeof v === 'string') {
          try {
            parsed = JSON.parse(v);
          } catch {
            parsed = undefined;
          }
        }
        const result = resourceServersSchema.safeParse(parsed);
        if (result.success) return result.data;
        ctx.addIssue({ code: 'custom', message: 'a JSON object of absolute URIs to {"scope": "…", "accessTokenTTL"?: seconds}' });
        return z.NEVER;
      })
      .default({})
      .meta({
        format: 'a JSON object of absolute URIs to `{"scope": "…", "accessTokenTTL"?: seconds}` (`accessTokenTTL`: 60–86400)',
        description:
          'Your APIs (RFC 8707 resource indicators), e.g. `{"https://api.example.com": {"scope": "orders:read orders:write", "accessTokenTTL": 600}}`. Access tokens requested with `resource=` for one of them are JWTs (RFC 9068, ES256) carrying `acr`, `amr` and `auth_time` (RFC 9470). An API that should introspect tokens is registered as a client instead (`twofold client add … --resource-server <indicator>`), which takes precedence over an entry here for the same indicator.',
      }),
    ACR_VALUES: z
      .union([z.record(z.string(), z.unknown()), z.string()])
      .transform((v, ctx) => {
        const table = readAcrTable(v);
        if (typeof table === 'string') {
          ctx.addIssue({ code: 'custom', message: table });
          return z.NEVER;
        }
        return table;
      })
      .default(DEFAULT_ACR_TABLE)
      .meta({
        format: 'a JSON object of `acr` value → level (1, 2 or 3), or the path of a JSON or YAML file holding one',
        defaultText: 'the table in [levels](connecting-apps.md#second-factors-levels-acr-and-amr)',
        description:
          "The ACR table. Replaces the default table; Twofold's own URNs (`urn:twofold:acr:1`…`3`) are always present at their own level. Used by the policy, discovery's `acr_values_supported` and `client add|update --min-acr`.",
      }),
    WEBAUTHN_RP_ID: z
      .string()
      .toLowerCase()
      .regex(
        /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
        'a host name such as example.com (no scheme, port or path)',
      )
      .optional()
      .meta({
        format: 'a host name (no scheme, port or path), not an IP address',
        defaultText: "the issuer's host",
        description:
          "The WebAuthn relying party ID: the issuer's host or a registrable suffix of it (`example.com` for `https://id.example.com`, so keys also work on other hosts of the domain). Every registered key is bound to it: changing it makes them all unusable.",
      }),
    WEBAUTHN_ORIGINS: list(
      httpUrl('http:// or https:// origins').refine((u) => URL.canParse(u) && new URL(u).origin === u, 'an origin (scheme://host[:port], nothing after)'),
    )
      .optional()
      .meta({
        format: 'origins (`scheme://host[:port]`), comma-separated (a list in a config file)',
        defaultText: "the issuer's origin",
        description:
          "Origins a WebAuthn answer may come from, each on the RP ID's host or below it, `https` (or `http://localhost`), and including the issuer's origin (the sign-in pages are served there).",
      }),
    WEBAUTHN_ATTESTATION: z.enum(['none', 'required']).default('none').meta({
      description:
        '`none`: any authenticator may register (no attestation asked). `required`: only authenticators whose attestation certificate chain leads to `WEBAUTHN_ATTESTATION_ROOTS`; no attestation and self attestation are refused.',
    }),
    WEBAUTHN_AAGUIDS: list(
      z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'AAGUIDs such as cb69481e-8ff7-4039-93ec-0a2729a154a8'),
    )
      .default([])
      .meta({
        format: 'AAGUIDs such as `cb69481e-8ff7-4039-93ec-0a2729a154a8`, comma-separated (a list in a config file)',
        defaultText: '(any)',
        description:
          'Authenticator models (AAGUIDs) allowed to register; empty allows any. Needs `WEBAUTHN_ATTESTATION=required`: without a verified attestation an AAGUID is whatever the authenticator claims.',
      }),
    WEBAUTHN_ATTESTATION_ROOTS: z.string().min(1).optional().meta({
      format: 'a PEM file',
      description:
        "Trust anchors (the authenticator vendors' attestation roots, e.g. from the FIDO Metadata Service). Required with `WEBAUTHN_ATTESTATION=required`.",
    }),
    SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\/[^\s]+$/, 'an smtp:// or smtps:// URL')
      .optional()
      .meta({
        format: '`smtp://` or `smtps://` URL',
        secret: true,
        description:
          'The mail server for emailed codes, a nodemailer URL: `smtp://user:pass@host:587` (upgrades with STARTTLS when offered) or `smtps://user:pass@host:465` (TLS from the start); nodemailer options as query parameters, e.g. `?requireTLS=true` to refuse a server that does not offer STARTTLS. Setting it gives the factors that email codes a channel (see [Email and SMS codes](factors.md#email-and-sms-codes)).',
      }),
    MAIL_FROM: z
      .string()
      .min(3)
      .max(320)
      .regex(/^[^\r\n]*@[^\r\n]*$/, 'one line with an email address')
      .optional()
      .meta({
        format: 'one line with an email address (3–320 characters)',
        defaultText: '`"<BRAND_NAME>" <no-reply@<issuer host>>`',
        description: 'The From of emailed codes, e.g. `Example ID <no-reply@example.com>`.',
      }),
    EMAIL_CODES: z.enum(['auto', 'on', 'off']).default('auto').meta({
      description:
        'Whether codes are emailed. `auto`: when `SMTP_URL` is set. `on`: yes; without `SMTP_URL` the codes are written to the log (development only: production refuses to start). `off`: no, and the factors that email codes are off.',
    }),
    SMS_WEBHOOK_URL: httpUrl().optional().meta({
      format: '`http://` or `https://` URL (`https://` in production)',
      description:
        'Your SMS/voice gateway (see [The SMS webhook](factors.md#the-sms-webhook)). Setting it (with the secret) gives the factors that text or call a channel; without it they are off.',
    }),
    SMS_WEBHOOK_SECRET: z.string().min(32, 'at least 32 characters (e.g. `openssl rand -hex 32`)').optional().meta({
      format: 'at least 32 characters (`openssl rand -hex 32`)',
      secret: true,
      description: 'Key of the `Twofold-Signature` HMAC-SHA256 on every webhook request. Required with `SMS_WEBHOOK_URL`.',
    }),
    SMS_WEBHOOK_TIMEOUT: seconds(1, 60)
      .default(10)
      .meta({ description: 'Seconds to wait for the gateway before telling the user the message could not be sent.' }),
    MESSAGE_TEMPLATES_DIR: z.string().min(1).optional().meta({
      format: 'a folder',
      description:
        'A folder of templates (`code-email.*.hbs`, `code-sms.hbs`, `code-voice.hbs`) that replace the built-in messages by file name (see [Message templates](factors.md#message-templates)).',
    }),
    THEME_DIR: z.string().min(1).optional().meta({
      format: 'a folder',
      description:
        'A folder whose `layout.hbs`, page views (`login.hbs`, …), `factors/<id>/<view>.hbs`, `theme.css` and `logo.svg`/`logo.png` restyle the sign-in pages, and whose `messages/<language>.json` replace texts or add a language; checked at start (see [Themes](running.md#themes)). Its logo wins over `BRAND_LOGO`, and `theme.css` over the `BRAND_COLOR` variables.',
    }),
    BRAND_NAME: brandName.optional().meta({
      format: '1–64 characters, no colon',
      defaultText: '`Twofold`',
      description:
        "The product name: on every page (header and window title), in authenticator apps (the TOTP issuer, in front of the account's name), in the browser's passkey and security key prompts (the WebAuthn relying party name), in emailed and texted codes, and in the default `MAIL_FROM`. See [Brand](running.md#brand).",
    }),
    ISSUER_NAME: brandName.optional().meta({
      format: '1–64 characters, no colon',
      description: 'The older name of `BRAND_NAME`, still read. Setting both to different names is refused.',
    }),
    BRAND_LOGO: z.string().min(1).optional().meta({
      format: 'an `.svg` or `.png` file (at most 1 MiB)',
      description:
        "The logo in every page's header, served from this origin (`/assets/brand-logo.svg` or `.png`, the link carrying a hash of the file). Read at start; a missing or unreadable file, or one that is not the image its name says, stops the start. A theme's own `logo.svg`/`logo.png` wins over it.",
    }),
    BRAND_COLOR: hexColor.optional().meta({
      format: '`#rrggbb` or `#rgb` (quoted in YAML)',
      defaultText: '`#3b5bdb`',
      description:
        "The primary colour (links, buttons, the name in the header) in the light scheme. Must read at WCAG AA (4.5:1) on the pages' white card, or the start stops with the measured ratio and the nearest shade that passes. The text on buttons of this colour is black or white, whichever reads better.",
    }),
    BRAND_COLOR_DARK: hexColor.optional().meta({
      format: '`#rrggbb` or `#rgb` (quoted in YAML)',
      defaultText: '`#8ea2ff`; with `BRAND_COLOR`, that colour lightened where needed',
      description:
        'The primary colour in the dark scheme, checked the same way on the dark card (`#1d2026`). Unset: `BRAND_COLOR` where it reads at 4.5:1 there, else its nearest lighter shade that does. Needs `BRAND_COLOR`.',
    }),
    DEFAULT_LANGUAGE: z
      .string()
      .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'a language tag such as en or de')
      .default('en')
      .meta({
        format: 'a language tag',
        description:
          "The pages' language when neither the app's `ui_locales` nor the browser's `Accept-Language` names one Twofold has: `en`, `de`, or a language the theme adds (`messages/<language>.json` in THEME_DIR).",
      }),
    PSEUDO_LANGUAGE: bool.default(false).meta({
      description:
        'Offers the pseudo-language `en-XA` (English with accented letters in ⟦ ⟧) for translators and tests: text on a page that stays plain did not come from the message catalogue.',
    }),
    MIGRATE_ON_START: bool.default(true).meta({
      description:
        'Apply pending migrations when the provider starts. With `false`, a provider refuses to start on an outdated schema. The `twofold` command migrates only as `twofold migrate`, or on PGlite when this is `true`; otherwise it refuses an outdated schema, with advice that fits (on PostgreSQL: run `twofold migrate`).',
    }),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .meta({ description: 'The pino log level, from the environment or the config file. The `twofold` command defaults to `warn`.' }),
    ARGON2_MEMORY_KIB: int(8192, 4 * 1024 * 1024)
      .default(12288)
      .meta({ description: 'argon2id memory cost in KiB (the default follows OWASP ASVS 5.0: m=12288, t=3, p=1).' }),
    ARGON2_ITERATIONS: int(1, 20).default(3).meta({ description: 'argon2id iterations.' }),
    ARGON2_PARALLELISM: int(1, 16).default(1).meta({ description: 'argon2id lanes.' }),
    HASH_CONCURRENCY: int(1, 256)
      .default(Math.max(1, os.availableParallelism()))
      .meta({ defaultText: 'the number of CPU cores', description: "Password hashes computed at once, on libuv's thread pool, off the event loop." }),
    HASH_QUEUE_LIMIT: int(0, 100000)
      .default(64)
      .meta({ description: 'Hashes allowed to wait for a slot; beyond that the provider answers 503 with `Retry-After`.' }),
    WORKERS: int(1, 64).default(1).meta({
      description:
        'Provider processes sharing the port (node:cluster). More than 1 needs `DATABASE_URL`; the default `HASH_CONCURRENCY` is then shared among them. On a 2-core machine it does not pay (see [Benchmarks](benchmarks.md)).',
    }),
    SHUTDOWN_TIMEOUT: seconds(1, 600).default(10).meta({
      description:
        'Hard deadline for a graceful stop, from the first SIGTERM/SIGINT: requests in flight get 80 % of it (new connections are refused at once), then open connections are cut and the database closed; when the time is up the process exits (status 1) whatever is still running. A second signal exits at once. See [Shutdown](running.md#shutdown).',
    }),
    ACCESS_TOKEN_TTL: seconds(60, 86400).default(3600).meta({ description: 'Access token lifetime.' }),
    ID_TOKEN_TTL: seconds(60, 86400).default(3600).meta({ description: 'ID token lifetime.' }),
    AUTHORIZATION_CODE_TTL: seconds(10, 600).default(60).meta({ description: 'Authorization code lifetime.' }),
    REFRESH_TOKEN_TTL: seconds(300, 365 * 86400)
      .default(14 * 86400)
      .meta({ description: 'Refresh token lifetime.' }),
    SESSION_TTL: seconds(300, 365 * 86400)
      .default(14 * 86400)
      .meta({ description: 'Provider session lifetime.' }),
    INTERACTION_TTL: seconds(60, 86400).default(3600).meta({ description: "How long a sign-in may take, from the app's request to the answer." }),
    ADD_FACTOR_MAX_AUTH_AGE: seconds(1, 3600).default(300).meta({
      description:
        "Adding a sign-in method at an app's request (`twofold_enroll`) needs a sign-in, and a proof of an existing factor, at most this many seconds old.",
    }),
    ACCOUNT_FRESH_PROOF: seconds(30, 3600).default(300).meta({
      description:
        'The account center (`/account`) makes a sensitive change (adding or removing a sign-in method, new backup codes, signing out everywhere, a new password) only within this many seconds of a proof of the password and, when the account has one, a second factor; an older one is asked again through the sign-in pages (`max_age`). See [The account center](account-center.md).',
    }),
    GRANT_TTL: seconds(300, 365 * 86400)
      .default(14 * 86400)
      .meta({
        description:
          "Lifetime of a user's grant to an app. A third-party app's consent is remembered in its grant, whose end each sign-in to the app moves to this long from then: an app unused this long asks for consent again. See [Remembered consent](administering.md#remembered-consent).",
      }),
    KEY_RETIREMENT_TTL: seconds(60, 365 * 86400)
      .default(2 * 86400)
      .meta({
        description:
          "How long signing keys retired by a rotation stay published. Must outlive the tokens they signed: a value below `ID_TOKEN_TTL`, `ACCESS_TOKEN_TTL` or an API's `accessTokenTTL` in `RESOURCE_SERVERS` is refused at start.",
      }),
    KEY_PUBLISH_DELAY: seconds(0, 30 * 86400)
      .default(3600)
      .meta({
        defaultText: '`3600` (1 hour)',
        description:
          'How long `twofold keys rotate` publishes the next signing keys in the JWKS before they sign, so apps that cached the JWKS already hold them. At least the longest JWKS cache among your apps; `0` switches at once (apps with a cached JWKS then fail until they refetch). `/jwks` is served with `Cache-Control: public, max-age=` half of it, at most 600. See [Key rotation](running.md#key-rotation).',
      }),
    BACKCHANNEL_LOGOUT: bool.default(true).meta({
      description:
        'OIDC Back-Channel Logout 1.0 for apps registered with `--backchannel-logout-uri`. `false`: discovery does not advertise `backchannel_logout_supported` and nothing is sent.',
    }),
    DEVICE_FLOW: bool.default(true).meta({
      description:
        'The device authorization grant (RFC 8628) for apps registered with `--device-flow` (CLIs, TVs); see [connecting-apps](connecting-apps.md#devices-and-clis). `false`: discovery does not advertise `device_authorization_endpoint` or the device grant, and `/device/auth` and `/device` answer 404.',
    }),
    SIGN_UP: bool.default(false).meta({
      description:
        'Self-service sign-up: the sign-in page offers "Create an account" (an email address, which becomes the username, and a password) for apps that allow it (`twofold client update <app> --sign-up allow|deny`, default allow). A new account cannot sign in until its email address is confirmed through an emailed link; needs email delivery. `false`: no link, and `/signup` answers 404. See [Sign-up](account-center.md#sign-up).',
    }),
    DEVICE_CODE_TTL: seconds(60, 3600).default(600).meta({ description: "How long a device's user code can be entered and its device code polled." }),
    BACKCHANNEL_LOGOUT_ATTEMPTS: int(1, 20)
      .default(5)
      .meta({ description: 'Attempts to deliver one logout notice before it is given up, logged and audited (`backchannel_logout.failed`).' }),
    BACKCHANNEL_LOGOUT_BACKOFF: seconds(1, 3600).default(30).meta({
      description:
        'Seconds before the first retry of a failed logout notice; each further retry waits four times longer (30 s, 2 min, 8 min, 32 min with the defaults).',
    }),
    PURGE_INTERVAL: seconds(0, 86400).default(600).meta({ description: 'How often expired provider rows (codes, sessions, tokens) are deleted; 0 disables.' }),
    CLI_BUSY_WAIT: seconds(1, 600).default(30).meta({
      description:
        'How long the `twofold` command waits for a PGlite data folder held by a provider that is starting or stopping, or by another run, before it gives up.',
    }),
    METRICS: z.enum(['off', 'token', 'listener']).default('off').meta({
      description:
        "Prometheus metrics at `/metrics` (see [Metrics](running.md#metrics)). `off`: not served. `token`: on the main listener, for `Authorization: Bearer <METRICS_TOKEN>` only (401 otherwise). `listener`: on a listener of its own (`METRICS_HOST`:`METRICS_PORT`), which also asks for the token when one is set. With `WORKERS` > 1 only `listener` is accepted: the cluster primary serves every worker's metrics summed.",
    }),
    METRICS_TOKEN: z.string().min(16, 'expected at least 16 characters (e.g. `openssl rand -hex 32`)').optional().meta({
      format: 'at least 16 characters (`openssl rand -hex 32`)',
      secret: true,
      description: 'The bearer token a scrape must send; compared in constant time. Required with `METRICS=token`.',
    }),
    METRICS_TOKEN_FILE: z.string().min(1).optional().meta({
      format: 'a file',
      description: 'A file holding `METRICS_TOKEN` (surrounding whitespace ignored), to keep it out of the environment; exactly one of the two.',
    }),
    METRICS_PORT: int(0, 65535).default(9464).meta({ description: 'Port of the metrics listener (`METRICS=listener`); 0 picks a free one.' }),
    METRICS_HOST: z.string().default('127.0.0.1').meta({
      format: 'an interface address',
      description:
        'Interface of the metrics listener: loopback by default, so only the host (or a sidecar) can scrape; set `0.0.0.0` or empty for every interface only on a network you trust, or with a token.',
    }),
  })
  .strict();

/** What the schema's metadata says about one setting (see configSchema). */
export interface SettingMeta {
  description?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  defaultText?: string;
  secret?: boolean;
  /** The accepted words, when the setting is an enum. */
  options?: readonly string[];
}

/**
 * One setting's metadata, merged over its layers (`.default()`, `.optional()`,
 * a transform's input), the outermost winning: a helper such as `seconds()`
 * says the range, the key's own `.meta()` the meaning.
 */
export function settingMeta(schema: z.ZodType): SettingMeta {
  const layers: SettingMeta[] = [];
  let options: readonly string[] | undefined;
  let node: z.core.$ZodType | undefined = schema;
  while (node) {
    const meta = z.globalRegistry.get(node as z.ZodType);
    if (meta) layers.push(meta as SettingMeta);
    const def = node._zod.def as z.core.$ZodTypeDef & { innerType?: z.core.$ZodType; in?: z.core.$ZodType; entries?: Record<string, string> };
    if (def.type === 'enum' && def.entries) options = Object.values(def.entries);
    node = def.type === 'default' || def.type === 'optional' ? def.innerType : def.type === 'pipe' ? def.in : undefined;
  }
  return Object.assign({}, ...layers.reverse(), options ? { options } : {}) as SettingMeta;
}

export type RawConfig = z.infer<typeof configSchema>;

export interface Config extends Omit<RawConfig, 'ISSUER'> {
  ISSUER: string;
  /** Absolute data folder. */
  dataDir: string;
  production: boolean;
  /** Whether cookies must be Secure (issuer is https). */
  secureCookies: boolean;
  /** How emailed codes leave: over SMTP, to the log (development only), or not at all (the factor is off). */
  emailDelivery: 'smtp' | 'log' | 'off';
  /** The WebAuthn relying party, resolved (defaults from ISSUER, roots read from their file). */
  webauthn: WebAuthnConfig;
  /** The metrics bearer token, from METRICS_TOKEN or METRICS_TOKEN_FILE. */
  metricsToken?: string;
  /** The product name, logo and colours, checked (BRAND_*, ISSUER_NAME). */
  brand: Brand;
}

export interface WebAuthnConfig {
  rpId: string;
  origins: string[];
  attestation: 'none' | 'required';
  aaguids: string[];
  /** PEM certificates. */
  attestationRoots: string[];
}

/**
 * Resolves the WebAuthn relying party and checks what browsers would refuse
 * later, one key at a time: every origin must be the RP ID's host or below it,
 * the issuer's origin must be allowed (the sign-in pages are served there), and
 * an attestation requirement needs trust anchors (without them any self-made
 * certificate would pass, and an AAGUID is just what the authenticator claims).
 */
function resolveWebAuthn(raw: RawConfig, issuer: string): WebAuthnConfig {
  const issuerUrl = new URL(issuer);
  const rpId = raw.WEBAUTHN_RP_ID ?? issuerUrl.hostname;
  // Browsers refuse IP addresses as RP IDs. An issuer on an IP address still starts (WebAuthn just cannot work there); an explicit one is a mistake.
  if (raw.WEBAUTHN_RP_ID && /^\d+\.\d+\.\d+\.\d+$/.test(rpId)) {
    throw new ConfigError(
      `Invalid configuration: WEBAUTHN_RP_ID: WebAuthn needs a host name, not an IP address (got ${JSON.stringify(rpId)}); use localhost or a domain for ISSUER`,
    );
  }
  const under = (host: string) => host === rpId || host.endsWith(`.${rpId}`);
  if (!under(issuerUrl.hostname)) {
    throw new ConfigError(
      `Invalid configuration: WEBAUTHN_RP_ID: must be the issuer's host or a registrable suffix of it (${issuerUrl.hostname}) (got ${JSON.stringify(rpId)})`,
    );
  }
  const origins = raw.WEBAUTHN_ORIGINS ?? [issuerUrl.origin];
  for (const origin of origins) {
    const url = new URL(origin);
    if (!under(url.hostname)) throw new ConfigError(`Invalid configuration: WEBAUTHN_ORIGINS: ${origin} is not on ${rpId} or below it`);
    if (raw.WEBAUTHN_ORIGINS && url.protocol !== 'https:' && url.hostname !== 'localhost' && !url.hostname.endsWith('.localhost')) {
      throw new ConfigError(`Invalid configuration: WEBAUTHN_ORIGINS: ${origin} must be https (browsers allow WebAuthn over http only on localhost)`);
    }
  }
  if (!origins.includes(issuerUrl.origin)) {
    throw new ConfigError(`Invalid configuration: WEBAUTHN_ORIGINS: must include the issuer's origin ${issuerUrl.origin} (the sign-in pages are served there)`);
  }
  let attestationRoots: string[] = [];
  if (raw.WEBAUTHN_ATTESTATION_ROOTS) {
    let pem: string;
    try {
      pem = fs.readFileSync(raw.WEBAUTHN_ATTESTATION_ROOTS, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: cannot read ${raw.WEBAUTHN_ATTESTATION_ROOTS} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    attestationRoots = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    for (const cert of attestationRoots) {
      try {
        new crypto.X509Certificate(cert);
      } catch {
        throw new ConfigError(`Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: ${raw.WEBAUTHN_ATTESTATION_ROOTS} holds a certificate that does not parse`);
      }
    }
    if (!attestationRoots.length)
      throw new ConfigError(`Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: no PEM certificate in ${raw.WEBAUTHN_ATTESTATION_ROOTS}`);
  }
  if (raw.WEBAUTHN_ATTESTATION === 'required' && !attestationRoots.length) {
    throw new ConfigError(
      'Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: required with WEBAUTHN_ATTESTATION=required (without trust anchors any self-made attestation would pass)',
    );
  }
  if (raw.WEBAUTHN_AAGUIDS.length && raw.WEBAUTHN_ATTESTATION !== 'required') {
    throw new ConfigError(
      'Invalid configuration: WEBAUTHN_AAGUIDS: needs WEBAUTHN_ATTESTATION=required (without a verified attestation an AAGUID is whatever the authenticator claims)',
    );
  }
  return { rpId, origins, attestation: raw.WEBAUTHN_ATTESTATION, aaguids: raw.WEBAUTHN_AAGUIDS.map((a) => a.toLowerCase()), attestationRoots };
}

export class ConfigError extends Error {}

/** Decodes a 32-byte key given as 64 hex characters or base64; undefined when malformed. */
export function decodeKey(value: string): Buffer | undefined {
  const trimmed = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(trimmed)) {
    const buf = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (buf.length === 32) return buf;
  }
  return undefined;
}

/**
 * How codes leave. Email is on when an SMTP server is configured (`auto`), or
 * when asked for (`on`): in development without SMTP_URL the codes then go to
 * the log, which production refuses, since a code nobody can receive locks
 * users out and a code in a log is a code anyone with the logs can use. SMS is
 * on only with a gateway and its signing key.
 */
function resolveEmailDelivery(raw: RawConfig, production: boolean): Config['emailDelivery'] {
  if (raw.SMS_WEBHOOK_URL && !raw.SMS_WEBHOOK_SECRET) {
    throw new ConfigError(
      'Invalid configuration: SMS_WEBHOOK_SECRET: required with SMS_WEBHOOK_URL (the gateway verifies each request with it; e.g. `openssl rand -hex 32`)',
    );
  }
  if (raw.SMS_WEBHOOK_SECRET && !raw.SMS_WEBHOOK_URL) {
    throw new ConfigError('Invalid configuration: SMS_WEBHOOK_URL: SMS_WEBHOOK_SECRET is set but no gateway URL');
  }
  if (production && raw.SMS_WEBHOOK_URL && !raw.SMS_WEBHOOK_URL.startsWith('https://')) {
    throw new ConfigError(`Invalid configuration: SMS_WEBHOOK_URL: must be https:// in production (got ${JSON.stringify(raw.SMS_WEBHOOK_URL)})`);
  }
  if (raw.EMAIL_CODES === 'off') return 'off';
  if (raw.SMTP_URL) return 'smtp';
  if (raw.EMAIL_CODES === 'auto') return 'off';
  if (production) {
    throw new ConfigError(
      'Invalid configuration: EMAIL_CODES: on, but SMTP_URL is not set; in production codes are never written to the log (set SMTP_URL, e.g. smtps://user:pass@mail.example.com:465, or EMAIL_CODES=off)',
    );
  }
  return 'log';
}

/**
 * A rotated-out signing key stays published for KEY_RETIREMENT_TTL so that apps
 * can still verify what it signed just before the rotation: ID tokens, and the
 * JWT access tokens of RESOURCE_SERVERS. A shorter window would strand valid
 * tokens (their verification fails until they expire), so it is refused.
 */
function checkKeyRetirement(raw: RawConfig): void {
  const lifetimes: Array<[string, number]> = [
    ['ID_TOKEN_TTL', raw.ID_TOKEN_TTL],
    ['ACCESS_TOKEN_TTL', raw.ACCESS_TOKEN_TTL],
    ...Object.entries(raw.RESOURCE_SERVERS).flatMap(([api, server]): Array<[string, number]> =>
      server.accessTokenTTL ? [[`RESOURCE_SERVERS ${api} accessTokenTTL`, server.accessTokenTTL]] : [],
    ),
  ];
  const [longestKey, longest] = lifetimes.reduce((a, b) => (b[1] > a[1] ? b : a));
  if (raw.KEY_RETIREMENT_TTL < longest) {
    throw new ConfigError(
      `Invalid configuration: KEY_RETIREMENT_TTL: must be at least the longest lifetime of a token the signing keys sign (${longestKey}=${longest}), or tokens signed just before a rotation could not be verified (got ${raw.KEY_RETIREMENT_TTL})`,
    );
  }
}

/**
 * SECRET_KEY read from SECRET_KEY_FILE. Refused when others may read it (the
 * key would be anyone's on the machine) or write it (anyone could swap it), and
 * in production when it lies inside DATA_DIR. The checks and the read go
 * through one open file, so the file checked is the file read.
 */
function readSecretKeyFile(raw: RawConfig, dataDir: string, production: boolean): string {
  const fail = (why: string) => new ConfigError(`Invalid configuration: SECRET_KEY_FILE: ${why}`);
  if (raw.SECRET_KEY) throw fail('set either SECRET_KEY or SECRET_KEY_FILE, not both');
  const file = path.resolve(raw.SECRET_KEY_FILE!);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw fail(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw fail(`${file} is not a file`);
    // POSIX permission bits (Windows has none to check). Its group may read it (a service group), not change it.
    if (process.platform !== 'win32' && (stat.mode & 0o026) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      const who = stat.mode & 0o004 ? 'read by any user' : stat.mode & 0o002 ? 'written by any user' : 'written by its group';
      throw fail(`${file} can be ${who} (mode ${mode}); allow only its owner (chmod 600), or let its group read it (chmod 640)`);
    }
    if (production && isInside(realPath(file), realPath(dataDir))) {
      throw fail(`${file} is inside DATA_DIR (${dataDir}), so a backup of the data folder would carry the key with the data it protects; keep it elsewhere`);
    }
    const text = fs.readFileSync(fd, 'utf8');
    if (decodeKey(text) === undefined) throw fail(`${file} does not hold 32 bytes as 64 hex characters or base64`);
    return text.trim();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw fail(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    fs.closeSync(fd);
  }
}

function realPath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p; // a DATA_DIR not made yet
  }
}

function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/** METRICS_TOKEN or the content of METRICS_TOKEN_FILE, checked against METRICS. */
function resolveMetricsToken(raw: RawConfig): string | undefined {
  const fail = (key: string, why: string) => new ConfigError(`Invalid configuration: ${key}: ${why}`);
  let token = raw.METRICS_TOKEN;
  if (raw.METRICS_TOKEN_FILE) {
    if (token) throw fail('METRICS_TOKEN_FILE', 'set either METRICS_TOKEN or METRICS_TOKEN_FILE, not both');
    const file = path.resolve(raw.METRICS_TOKEN_FILE);
    try {
      token = fs.readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw fail('METRICS_TOKEN_FILE', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (token.length < 16) throw fail('METRICS_TOKEN_FILE', `${file} must hold at least 16 characters (e.g. \`openssl rand -hex 32\`)`);
  }
  if (raw.METRICS === 'token' && !token) throw fail('METRICS', '`token` needs METRICS_TOKEN or METRICS_TOKEN_FILE');
  // Behind a shared port a scrape reaches one worker at random; only the primary can add them up.
  if (raw.METRICS === 'token' && raw.WORKERS > 1)
    throw fail('METRICS', "with WORKERS > 1 use `listener` (the cluster primary serves every worker's metrics summed)");
  return token;
}

function loadBrand(raw: RawConfig): Brand {
  try {
    return resolveBrand(raw);
  } catch (err) {
    if (err instanceof BrandError) throw new ConfigError(`Invalid configuration: ${err.key}: ${err.message}`);
    throw err;
  }
}

const KNOWN_KEYS = new Set(Object.keys(configSchema.shape));
/** Settings whose value an error never echoes (marked `secret` in the schema). */
const SECRET_KEYS = new Set(Object.entries(configSchema.shape).flatMap(([key, schema]) => (settingMeta(schema).secret ? [key] : [])));

/** Reads the optional config file named by TWOFOLD_CONFIG (JSON or YAML). */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`TWOFOLD_CONFIG: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`TWOFOLD_CONFIG: ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`TWOFOLD_CONFIG: ${file} must hold an object of settings`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Builds the configuration from a config file (optional) and the environment.
 * Throws ConfigError with one line naming the first bad key.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const fromFile = env.TWOFOLD_CONFIG ? readConfigFile(env.TWOFOLD_CONFIG) : {};
  const fromEnv: Record<string, unknown> = {};
  for (const key of KNOWN_KEYS) {
    const value = env[key];
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  // HOST may legitimately be set to '' meaning "all interfaces".
  const merged = { ...fromFile, ...fromEnv };
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join('.') || '(config)';
    const got = issue.path.length ? (merged as Record<string, unknown>)[String(issue.path[0])] : undefined;
    const shown = got === undefined ? '' : ` (got ${JSON.stringify(SECRET_KEYS.has(String(issue.path[0])) ? '…' : got)})`;
    const message = issue.code === 'unrecognized_keys' ? `unknown setting(s) ${issue.keys.join(', ')}` : issue.message;
    throw new ConfigError(`Invalid configuration: ${issue.code === 'unrecognized_keys' ? 'config file' : key}: ${message}${shown}`);
  }
  const raw = result.data;
  const production = raw.NODE_ENV === 'production';
  const issuer = raw.ISSUER ?? `http://localhost:${raw.PORT}`;
  const dataDir = path.resolve(raw.DATA_DIR);
  const secretKey = raw.SECRET_KEY_FILE ? readSecretKeyFile(raw, dataDir, production) : raw.SECRET_KEY;
  if (production && !secretKey) {
    throw new ConfigError(
      'Invalid configuration: SECRET_KEY: required in production, or SECRET_KEY_FILE (32 bytes as 64 hex characters or base64; e.g. `openssl rand -hex 32`)',
    );
  }
  if (production && !issuer.startsWith('https://')) {
    throw new ConfigError(`Invalid configuration: ISSUER: must be https:// in production (got ${JSON.stringify(issuer)})`);
  }
  checkKeyRetirement(raw);
  const metricsToken = resolveMetricsToken(raw);
  return {
    metricsToken,
    brand: loadBrand(raw),
    ...raw,
    SECRET_KEY: secretKey,
    ISSUER: issuer,
    dataDir,
    production,
    secureCookies: issuer.startsWith('https://'),
    webauthn: resolveWebAuthn(raw, issuer),
    emailDelivery: resolveEmailDelivery(raw, production),
  };
}
