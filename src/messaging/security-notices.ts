/**
 * Security notices by email: the person hears of every change to how their
 * account signs in (a password changed, set or reset, a method added or
 * removed, new backup codes), and of a reset link or a sign-up asked for
 * with their address, and the link that confirms a new account's address. Sent to the account's email address through the
 * deployment's mailer (the log in development), in the person's language,
 * with words from the provider's catalogue (`notify.*`, which a theme may
 * override).
 *
 * A notice never undoes or blocks what it reports: a failed delivery is
 * logged and audited (`notice.failed`), and the caller carries on. Every
 * attempt is audited (`notice.sent`, `notice.failed`, `notice.skipped` when
 * the account has no address or email is off), never with a link's token.
 */
import type { Kysely } from 'kysely';
import type { Account, Database } from '../db/schema.ts';
import type { Config } from '../config.ts';
import type { Messaging } from './index.ts';
import type { Catalogue, Params } from '../i18n/catalogue.ts';
import { recordAudit, type AuditContext } from '../security/audit.ts';
import { logger } from '../logger.ts';

export type SecurityEvent =
  | { type: 'password_changed' }
  | { type: 'password_set_by_admin' }
  | { type: 'password_reset' }
  | { type: 'reset_link'; link: string; minutes: number }
  | { type: 'sign_up_existing' }
  | { type: 'verify_email'; link: string; hours: number }
  | { type: 'method_added'; factorId: string; label?: string }
  | { type: 'method_removed'; factorId: string; label?: string }
  | { type: 'backup_codes_regenerated' }
  | { type: 'methods_reset' };

export type NoticeOutcome = 'sent' | 'failed' | 'skipped';

export interface NoticeServices {
  db: Kysely<Database>;
  config: Config;
  messaging: Messaging;
  catalogue: Catalogue;
}

export interface NoticeOptions {
  /** The person's language (the request's); default: DEFAULT_LANGUAGE. */
  language?: string;
  /** Who caused it, from where: recorded with the notice's audit event. */
  audit?: AuditContext;
  /** The time of the change (default: now). */
  at?: Date;
}

type NoticeAccount = Pick<Account, 'id' | 'username' | 'email' | 'display_name'>;

/** The catalogue prefix of each event: `notify.<prefix>.subject` and `.body`. */
const PREFIX: Record<SecurityEvent['type'], string> = {
  password_changed: 'passwordChanged',
  password_set_by_admin: 'passwordSetByAdmin',
  password_reset: 'passwordReset',
  reset_link: 'resetLink',
  sign_up_existing: 'signUpExisting',
  verify_email: 'verifyEmail',
  method_added: 'methodAdded',
  method_removed: 'methodRemoved',
  backup_codes_regenerated: 'backupCodesRegenerated',
  methods_reset: 'methodsReset',
};

/** One paragraph of a notice: a catalogue message, or a link. */
type Paragraph = { key: string; params?: Params; small?: boolean } | { link: string; label: string };

export interface RenderedNotice {
  lang: string;
  subject: string;
  text: string;
  html: string;
}

/** The notice's subject and its text and HTML parts. Exported for tests and the page gallery. */
export function renderNotice(
  services: Pick<NoticeServices, 'config' | 'catalogue'>,
  account: NoticeAccount,
  event: SecurityEvent,
  options: NoticeOptions = {},
): RenderedNotice {
  const { catalogue } = services;
  const lang = options.language && catalogue.offers(options.language) ? options.language : catalogue.defaultLanguage;
  const product = services.config.brand.name;
  const prefix = `notify.${PREFIX[event.type]}`;
  const params: Params = { product, username: account.username };
  if (event.type === 'method_added' || event.type === 'method_removed') params.method = methodName(catalogue, lang, event.factorId, event.label);
  if (event.type === 'reset_link') params.minutes = event.minutes;
  if (event.type === 'verify_email') params.hours = event.hours;
  const when = new Intl.DateTimeFormat(lang, { dateStyle: 'long', timeStyle: 'long', timeZone: 'UTC' }).format(options.at ?? new Date());

  const paragraphs: Paragraph[] = [
    { key: 'notify.greeting', params: { name: account.display_name ?? account.username } },
    { key: `${prefix}.body`, params },
  ];
  if (event.type === 'reset_link') {
    paragraphs.push({ link: event.link, label: catalogue.text(lang, 'notify.resetLink.button') });
    paragraphs.push({ key: 'notify.resetLink.secondFactor' }, { key: 'notify.resetLink.ignore' });
  } else if (event.type === 'verify_email') {
    paragraphs.push({ link: event.link, label: catalogue.text(lang, 'notify.verifyEmail.button') });
    paragraphs.push({ key: 'notify.verifyEmail.ignore' });
  } else if (event.type === 'sign_up_existing') {
    paragraphs.push({ key: 'notify.signUpExisting.ignore' });
  } else {
    paragraphs.push({ key: 'notify.when', params: { when } }, { key: 'notify.notYou' });
  }
  paragraphs.push({ key: 'notify.footer', params: { product }, small: true });

  const text = paragraphs.map((p) => ('link' in p ? p.link : catalogue.text(lang, p.key, p.params))).join('\n\n');
  const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = paragraphs
    .map((p) =>
      'link' in p
        ? `<p style="margin:20px 0"><a href="${escape(p.link)}" style="display:inline-block;padding:10px 18px;background:#0b57d0;color:#ffffff;border-radius:6px;text-decoration:none;font-weight:600">${escape(p.label)}</a></p><p style="font-size:13px;color:#57606a;word-break:break-all">${escape(p.link)}</p>`
        : `<p${p.small ? ' style="font-size:12px;color:#57606a"' : ''}>${catalogue.html(lang, p.key, p.params)}</p>`,
    )
    .join('\n      ');
  const html = `<!doctype html>
<html lang="${escape(lang)}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(product)}</title></head>
<body style="margin:0;padding:24px;background:#f4f5f7;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328">
  <table role="presentation" width="100%" cellspacing="0" cellpadding="0" style="max-width:520px;margin:0 auto;background:#ffffff;border-radius:8px">
    <tr><td style="padding:24px 28px 8px;font-size:14px;font-weight:600;color:#57606a">${escape(product)}</td></tr>
    <tr><td style="padding:0 28px 16px;font-size:16px;line-height:1.5">
      ${body}
    </td></tr>
    <tr><td style="padding:8px 28px 24px;font-size:12px;color:#8c959f">${escape(services.config.ISSUER)}</td></tr>
  </table>
</body>
</html>
`;
  // A subject is one line.
  return { lang, subject: catalogue.text(lang, `${prefix}.subject`, params).replace(/\s+/g, ' ').trim(), text: `${text}\n`, html };
}

/** A factor's name in the person's language (its catalogue's `<id>.label`), with the credential's own name. */
function methodName(catalogue: Catalogue, lang: string, factorId: string, label: string | undefined): string {
  const key = `${factorId}.label`;
  const factor = catalogue.has('en', key) ? catalogue.text(lang, key) : factorId;
  return label && label !== factor ? `${factor} (${label})` : factor;
}

/** Sends the notice to the account's email address; never throws for a delivery that fails. */
export async function sendSecurityNotice(
  services: NoticeServices,
  account: NoticeAccount,
  event: SecurityEvent,
  options: NoticeOptions = {},
): Promise<NoticeOutcome> {
  const audit: AuditContext = { actor: 'system', ...options.audit, accountId: account.id };
  if (!account.email || services.config.emailDelivery === 'off') {
    await recordAudit(services.db, 'notice.skipped', audit, { notice: event.type, why: account.email ? 'email_off' : 'no_address' });
    return 'skipped';
  }
  const notice = renderNotice(services, account, event, options);
  try {
    await services.messaging.sendEmail({ to: account.email, subject: notice.subject, text: notice.text, html: notice.html });
  } catch (err) {
    logger.warn({ err, accountId: account.id, notice: event.type }, 'a security notice could not be sent');
    await recordAudit(services.db, 'notice.failed', audit, { notice: event.type, error: (err as Error).message.slice(0, 200) });
    return 'failed';
  }
  await recordAudit(services.db, 'notice.sent', audit, { notice: event.type, language: notice.lang });
  return 'sent';
}

/**
 * The hook for changes to an account's sign-in methods (enrolment, removal, new backup codes): looks the
 * account up and sends. Whoever adds, removes or regenerates a method calls this after the change is stored.
 */
export async function noticeMethodChange(
  services: NoticeServices,
  accountId: string,
  event: Extract<SecurityEvent, { type: 'method_added' | 'method_removed' | 'backup_codes_regenerated' | 'methods_reset' }>,
  options: NoticeOptions = {},
): Promise<NoticeOutcome> {
  const account = await services.db.selectFrom('accounts').select(['id', 'username', 'email', 'display_name']).where('id', '=', accountId).executeTakeFirst();
  if (!account) return 'skipped';
  return sendSecurityNotice(services, account, event, options);
}
