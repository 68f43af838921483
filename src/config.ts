/**
 * Twofold's configuration: one zod schema for environment variables and the
 * optional config file (JSON or YAML, same UPPER_SNAKE keys as the environment;
 * the environment wins). Every knob is documented here and in docs/configuration.md.
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

/*
 * The value helpers say what is allowed in their message, since that message is
 * the one line an operator sees: `PORT: expected an integer from 1 to 65535 (got "abc")`.
 */
const BOOLEAN_WORDS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false };

const bool = z.unknown().transform((v, ctx): boolean => {
  if (typeof v === 'boolean') return v;
  const word = typeof v === 'string' ? BOOLEAN_WORDS[v.trim().toLowerCase()] : undefined;
  if (word !== undefined) return word;
  ctx.addIssue({ code: 'custom', message: 'expected true, false, 1, 0, yes or no' });
  return z.NEVER;
});

/** A whole number in [min, max], from a number (config file) or its decimal digits (environment). */
const integerIn = (min: number, max: number, message: string) =>
  z.unknown().transform((v, ctx): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });

const int = (min: number, max: number) => integerIn(min, max, `expected an integer from ${min} to ${max}`);

/** An absolute http:// or https:// URL. */
const httpUrl = (what = 'an http:// or https:// URL') => z.url({ protocol: /^https?$/, error: `expected ${what}` });

/** A list given as a comma-separated string (environment) or an array (config file). */
const list = (item: z.ZodType<string, string>) =>
  z
    .union([z.array(z.string()), z.string()])
    .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(item));

/** Seconds, as an integer. */
const seconds = (min: number, max: number) => integerIn(min, max, `expected whole seconds from ${min} to ${max}`);

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
  z.object({ scope: z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/), accessTokenTTL: z.number().int().min(60).max(86400).optional() }).strict(),
);

export const configSchema = z
  .object({
    /** `development` (default) or `production`. Production refuses to start without SECRET_KEY (or SECRET_KEY_FILE) and an https ISSUER. */
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    /** TCP port the provider listens on. */
    PORT: int(1, 65535).default(3000),
    /** Interface to bind; empty means every interface (IPv4 and IPv6). */
    HOST: z.string().default(''),
    /** The issuer URL apps see; defaults to http://localhost:$PORT. No trailing slash, no query. */
    ISSUER: httpUrl('an http:// or https:// URL such as https://id.example.com')
      .refine((u) => !u.endsWith('/') && !u.includes('?') && !u.includes('#'), 'expected a URL without a trailing slash, query or fragment, such as https://id.example.com')
      .optional(),
    /** postgres:// URL; unset means embedded PGlite under DATA_DIR. */
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      .optional(),
    /** Maximum connections in the PostgreSQL pool. */
    DATABASE_POOL_SIZE: int(1, 200).default(10),
    /** Folder for PGlite's files, the generated development secret and the local admin socket. */
    DATA_DIR: z.string().min(1).default('./data'),
    /**
     * 32-byte key (64 hex chars or base64) that encrypts secrets at rest and keys the hashes under which tokens, codes
     * and session ids are stored. Generated into DATA_DIR in development; in production this or SECRET_KEY_FILE is required.
     */
    SECRET_KEY: z
      .string()
      .refine((v) => decodeKey(v) !== undefined, '32 bytes as 64 hex characters or base64')
      .optional(),
    /**
     * A file holding SECRET_KEY (same format, surrounding whitespace ignored), so the key stays out of the environment
     * and out of DATA_DIR: a Kubernetes or Docker secret, a systemd credential. Set this or SECRET_KEY, not both. The
     * file must not be readable by other users nor writable by anyone but its owner (`chmod 600`, `400` or `640`; a
     * Kubernetes secret: `defaultMode: 0400`), and in production it must not lie inside DATA_DIR (a backup of the folder
     * would carry the key with what it protects).
     */
    SECRET_KEY_FILE: z.string().min(1).optional(),
    /** Trust X-Forwarded-* headers from a TLS-terminating proxy. Off by default: forwarded headers are ignored. */
    TRUST_PROXY: bool.default(false),
    /** `all` (default, OAuth 2.1) requires PKCE from every client; `public` only from clients without a secret. */
    PKCE_REQUIRED: z.enum(['all', 'public']).default('all'),
    /** Second factor: `off` (only when an app asks), `optional` (for accounts that enrolled one), `required` (everyone; enrol at sign-in). */
    MFA: z.enum(['off', 'optional', 'required']).default('optional'),
    /** Per-factor settings as a JSON object, e.g. {"totp":{"digits":8},"backup-codes":{"count":12}}. */
    FACTOR_SETTINGS: z
      .union([z.record(z.string(), z.unknown()), z.string()])
      .transform((v, ctx) => {
        if (typeof v !== 'string') return v;
        try {
          const parsed = JSON.parse(v) as unknown;
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
        } catch {
          /* reported below */
        }
        ctx.addIssue({ code: 'custom', message: 'a JSON object keyed by factor id' });
        return z.NEVER;
      })
      .default({}),
    /**
     * APIs (RFC 8707 resource indicators) as a JSON object: {"https://api.example.com": {"scope": "orders:read orders:write"}}.
     * Access tokens for them are JWTs carrying acr, amr and auth_time (RFC 9470). An API that should introspect tokens is
     * registered as a client instead (`twofold client add … --resource-server <indicator>`), which takes precedence over an
     * entry here for the same indicator.
     */
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
      .default({}),
    /**
     * The ACR table: `acr` values and the level (1–3) each means, as a JSON object, or the path of a JSON or YAML
     * file holding one. Replaces the default table; Twofold's own URNs (urn:twofold:acr:1…3) are always present at
     * their own level. Used by the policy, discovery's acr_values_supported and `--min-acr`.
     */
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
      .default(DEFAULT_ACR_TABLE),
    /** The name authenticator apps show for this provider (defaults to the issuer's host). */
    ISSUER_NAME: z.string().min(1).max(64).optional(),
    /** WebAuthn relying party ID: the issuer's host (default) or a registrable suffix of it. Changing it orphans every registered key. */
    WEBAUTHN_RP_ID: z
      .string()
      .toLowerCase()
      .regex(/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'a host name such as example.com (no scheme, port or path)')
      .optional(),
    /** Origins WebAuthn responses may come from, comma-separated (default: the issuer's origin). */
    WEBAUTHN_ORIGINS: list(httpUrl('http:// or https:// origins').refine((u) => URL.canParse(u) && new URL(u).origin === u, 'an origin (scheme://host[:port], nothing after)')).optional(),
    /** `none` (default): any authenticator may register; `required`: only with an attestation that chains to WEBAUTHN_ATTESTATION_ROOTS. */
    WEBAUTHN_ATTESTATION: z.enum(['none', 'required']).default('none'),
    /** Authenticator models (AAGUIDs) allowed to register, comma-separated; empty allows any. Needs WEBAUTHN_ATTESTATION=required. */
    WEBAUTHN_AAGUIDS: list(z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'AAGUIDs such as cb69481e-8ff7-4039-93ec-0a2729a154a8')).default([]),
    /** A PEM file of attestation trust anchors (authenticator vendors' roots). Needed by WEBAUTHN_ATTESTATION=required. */
    WEBAUTHN_ATTESTATION_ROOTS: z.string().min(1).optional(),
    /** SMTP server for emailed codes, a nodemailer URL: smtp://user:pass@host:587 (STARTTLS when offered) or smtps://…:465 (TLS). */
    SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\/[^\s]+$/, 'an smtp:// or smtps:// URL')
      .optional(),
    /** The From of emailed codes, e.g. `Example ID <no-reply@example.com>` (default: the provider's name at no-reply@ the issuer's host). */
    MAIL_FROM: z
      .string()
      .min(3)
      .max(320)
      .regex(/^[^\r\n]*@[^\r\n]*$/, 'one line with an email address')
      .optional(),
    /** The `email-code` factor: `auto` (default: on when SMTP_URL is set), `on` (development without SMTP_URL: codes go to the log), `off`. */
    EMAIL_CODES: z.enum(['auto', 'on', 'off']).default('auto'),
    /** HTTPS endpoint of the operator's SMS/voice gateway; setting it turns the `sms-code` factor on (off by default). */
    SMS_WEBHOOK_URL: httpUrl().optional(),
    /** Key for the HMAC-SHA256 signature of each webhook request (Twofold-Signature header); at least 32 characters. */
    SMS_WEBHOOK_SECRET: z.string().min(32, 'at least 32 characters (e.g. `openssl rand -hex 32`)').optional(),
    /** Seconds to wait for the SMS gateway before telling the user it failed. */
    SMS_WEBHOOK_TIMEOUT: seconds(1, 60).default(10),
    /** Folder whose code-email.*.hbs, code-sms.hbs, code-voice.hbs replace the built-in messages. */
    MESSAGE_TEMPLATES_DIR: z.string().min(1).optional(),
    /** Folder whose layout.hbs, page views (login.hbs, …), factors/<id>/<view>.hbs, theme.css and logo.svg/logo.png restyle the sign-in pages; checked at start. */
    THEME_DIR: z.string().min(1).optional(),
    /** Run pending migrations at start. */
    MIGRATE_ON_START: bool.default(true),
    /** pino log level. */
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** argon2id memory cost in KiB (OWASP ASVS 5.0: m=12288, t=3, p=1). */
    ARGON2_MEMORY_KIB: int(8192, 4 * 1024 * 1024).default(12288),
    /** argon2id iterations. */
    ARGON2_ITERATIONS: int(1, 20).default(3),
    /** argon2id lanes. */
    ARGON2_PARALLELISM: int(1, 16).default(1),
    /** Password hashes computed at once (off the main thread); defaults to the core count. */
    HASH_CONCURRENCY: int(1, 256).default(Math.max(1, os.availableParallelism())),
    /** Hashes allowed to wait for a slot; beyond this the provider answers 503 with Retry-After. */
    HASH_QUEUE_LIMIT: int(0, 100000).default(64),
    /** Provider processes (a node:cluster sharing the port); more than 1 needs DATABASE_URL. */
    WORKERS: int(1, 64).default(1),
    /**
     * Seconds a shutdown (SIGTERM, SIGINT) may take. Requests in flight get most of it to finish (new
     * connections are refused at once), then open connections are cut and the database closed; when the time is
     * up the process exits (status 1) whatever is still running. A second signal exits at once.
     */
    SHUTDOWN_TIMEOUT: seconds(1, 600).default(10),
    /** Lifetimes, in seconds. */
    ACCESS_TOKEN_TTL: seconds(60, 86400).default(3600),
    ID_TOKEN_TTL: seconds(60, 86400).default(3600),
    AUTHORIZATION_CODE_TTL: seconds(10, 600).default(60),
    REFRESH_TOKEN_TTL: seconds(300, 365 * 86400).default(14 * 86400),
    SESSION_TTL: seconds(300, 365 * 86400).default(14 * 86400),
    INTERACTION_TTL: seconds(60, 86400).default(3600),
    /** How recent a sign-in (and the proof of an existing factor) must be to add a sign-in method at an app's request. */
    ADD_FACTOR_MAX_AUTH_AGE: seconds(1, 3600).default(300),
    GRANT_TTL: seconds(300, 365 * 86400).default(14 * 86400),
    /** How long a retired signing key stays published after rotation (must outlive tokens it signed). */
    KEY_RETIREMENT_TTL: seconds(60, 365 * 86400).default(2 * 86400),
    /**
     * How long `twofold keys rotate` publishes the next signing keys (in the JWKS) before they sign, so apps that
     * cache the JWKS hold them when the switch comes; at least the longest JWKS cache among your apps. 0 switches at
     * once. The JWKS is served with Cache-Control max-age of half this (at most 600 s).
     */
    KEY_PUBLISH_DELAY: seconds(0, 30 * 86400).default(3600),
    /**
     * OIDC Back-Channel Logout 1.0: apps registered with a back-channel logout URI are told (a signed logout token)
     * when a session they were part of ends. Off: discovery does not advertise it and nothing is sent.
     */
    BACKCHANNEL_LOGOUT: bool.default(true),
    /**
     * The device authorization grant (RFC 8628) for apps registered with --device-flow (CLIs, TVs): the person
     * approves at /device in a browser, through the normal sign-in. Off: discovery does not advertise
     * device_authorization_endpoint and /device_auth and /device answer 404.
     */
    DEVICE_FLOW: bool.default(true),
    /** How long a device's user code can be entered and its device code polled, in seconds. */
    DEVICE_CODE_TTL: seconds(60, 3600).default(600),
    /** Attempts to deliver one logout notice before it is given up (audited as backchannel_logout.failed). */
    BACKCHANNEL_LOGOUT_ATTEMPTS: int(1, 20).default(5),
    /** Seconds before the first retry of a failed notice; each further retry waits four times longer. */
    BACKCHANNEL_LOGOUT_BACKOFF: seconds(1, 3600).default(30),
    /** How often expired provider rows are purged, in seconds (0 disables). */
    PURGE_INTERVAL: seconds(0, 86400).default(600),
    /** How long the `twofold` command waits for a PGlite data folder held by a provider that is starting or stopping, or by another run. */
    CLI_BUSY_WAIT: seconds(1, 600).default(30),
  })
  .strict();

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
    throw new ConfigError(`Invalid configuration: WEBAUTHN_RP_ID: WebAuthn needs a host name, not an IP address (got ${JSON.stringify(rpId)}); use localhost or a domain for ISSUER`);
  }
  const under = (host: string) => host === rpId || host.endsWith(`.${rpId}`);
  if (!under(issuerUrl.hostname)) {
    throw new ConfigError(`Invalid configuration: WEBAUTHN_RP_ID: must be the issuer's host or a registrable suffix of it (${issuerUrl.hostname}) (got ${JSON.stringify(rpId)})`);
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
      throw new ConfigError(`Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: cannot read ${raw.WEBAUTHN_ATTESTATION_ROOTS} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    attestationRoots = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    for (const cert of attestationRoots) {
      try {
        new crypto.X509Certificate(cert);
      } catch {
        throw new ConfigError(`Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: ${raw.WEBAUTHN_ATTESTATION_ROOTS} holds a certificate that does not parse`);
      }
    }
    if (!attestationRoots.length) throw new ConfigError(`Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: no PEM certificate in ${raw.WEBAUTHN_ATTESTATION_ROOTS}`);
  }
  if (raw.WEBAUTHN_ATTESTATION === 'required' && !attestationRoots.length) {
    throw new ConfigError('Invalid configuration: WEBAUTHN_ATTESTATION_ROOTS: required with WEBAUTHN_ATTESTATION=required (without trust anchors any self-made attestation would pass)');
  }
  if (raw.WEBAUTHN_AAGUIDS.length && raw.WEBAUTHN_ATTESTATION !== 'required') {
    throw new ConfigError('Invalid configuration: WEBAUTHN_AAGUIDS: needs WEBAUTHN_ATTESTATION=required (without a verified attestation an AAGUID is whatever the authenticator claims)');
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
    throw new ConfigError('Invalid configuration: SMS_WEBHOOK_SECRET: required with SMS_WEBHOOK_URL (the gateway verifies each request with it; e.g. `openssl rand -hex 32`)');
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
    ...Object.entries(raw.RESOURCE_SERVERS).flatMap(([api, server]): Array<[string, number]> => (server.accessTokenTTL ? [[`RESOURCE_SERVERS ${api} accessTokenTTL`, server.accessTokenTTL]] : [])),
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

const KNOWN_KEYS = new Set(Object.keys(configSchema.shape));

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
    const shown = got === undefined ? '' : ` (got ${JSON.stringify(['SECRET_KEY', 'DATABASE_URL', 'SMTP_URL', 'SMS_WEBHOOK_SECRET'].includes(key) ? '…' : got)})`;
    const message = issue.code === 'unrecognized_keys' ? `unknown setting(s) ${issue.keys.join(', ')}` : issue.message;
    throw new ConfigError(`Invalid configuration: ${issue.code === 'unrecognized_keys' ? 'config file' : key}: ${message}${shown}`);
  }
  const raw = result.data;
  const production = raw.NODE_ENV === 'production';
  const issuer = raw.ISSUER ?? `http://localhost:${raw.PORT}`;
  const dataDir = path.resolve(raw.DATA_DIR);
  const secretKey = raw.SECRET_KEY_FILE ? readSecretKeyFile(raw, dataDir, production) : raw.SECRET_KEY;
  if (production && !secretKey) {
    throw new ConfigError('Invalid configuration: SECRET_KEY: required in production, or SECRET_KEY_FILE (32 bytes as 64 hex characters or base64; e.g. `openssl rand -hex 32`)');
  }
  if (production && !issuer.startsWith('https://')) {
    throw new ConfigError(`Invalid configuration: ISSUER: must be https:// in production (got ${JSON.stringify(issuer)})`);
  }
  checkKeyRetirement(raw);
  return {
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
