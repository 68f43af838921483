/**
 * The account center's pages: the sign-in pages' layout, stylesheet and CSP,
 * a wider card, the account center's navigation, every text from the
 * catalogue (`account.*`) in the person's language.
 */
import type { Context } from 'koa';
import { speakerFor, views, type Speaker } from '../../interactions/render.ts';
import type { Params } from '../i18n/catalogue.ts';
import { CSRF_FIELD } from './csrf.ts';
import type { CurrentAccount } from './session.ts';

/** The sections, in the order the navigation lists them; `password` is built beside this room (/account/password). */
export const SECTIONS = ['overview', 'methods', 'codes', 'devices', 'sessions', 'apps', 'password'] as const;
export type Section = (typeof SECTIONS)[number];

const HREF: Record<Section, string> = {
  overview: '/account',
  methods: '/account/methods',
  codes: '/account/backup-codes',
  devices: '/account/devices',
  sessions: '/account/sessions',
  apps: '/account/apps',
  password: '/account/password',
};

const NAV_KEY: Record<Section, string> = {
  overview: 'account.nav.overview',
  methods: 'account.nav.methods',
  codes: 'account.nav.backupCodes',
  devices: 'account.nav.devices',
  sessions: 'account.nav.sessions',
  apps: 'account.nav.apps',
  password: 'account.nav.password',
};

export interface PageData extends Record<string, unknown> {
  /** The page's title, by key (or `title` as text). */
  titleKey?: string;
  titleParams?: Params;
  /** The error page's message, by key. */
  messageKey?: string;
  messageParams?: Params;
  /** A notice to show (`notice=<code>` after a change), by key. */
  noticeKey?: string;
  noticeParams?: Params;
}

/** What every signed-in page gets: the navigation, the form token, who is signed in. */
function chrome(speaker: Speaker, current: CurrentAccount, active: Section | undefined) {
  return {
    nav: SECTIONS.map((s) => ({ href: HREF[s], label: speaker.t(NAV_KEY[s]), current: s === active })),
    csrfField: CSRF_FIELD,
    csrf: current.session.csrf,
    who: current.account.display_name ?? current.account.username,
  };
}

/** Renders `account/<view>` (status 200 unless said), signed in (`current`, with the navigation) or not. */
export function accountPage(ctx: Context, view: string, data: PageData, status = 200, current?: CurrentAccount, active?: Section): void {
  const speaker = speakerFor(ctx);
  const { titleKey, titleParams, messageKey, messageParams, noticeKey, noticeParams, ...rest } = data;
  const title = typeof rest.title === 'string' ? rest.title : speaker.t(titleKey ?? 'account.title', titleParams);
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = views().render(`account/${view}`, {
    lang: speaker.lang,
    pageClass: 'wide',
    ...(current ? chrome(speaker, current, active) : {}),
    ...(messageKey ? { message: speaker.t(messageKey, messageParams) } : {}),
    ...(noticeKey ? { notice: speaker.t(noticeKey, noticeParams) } : {}),
    ...rest,
    title,
  });
}

/** The notice a page was sent with (`?notice=<code>`), when it is one of `known`. */
export function noticeFrom(ctx: Context, known: readonly string[]): string | undefined {
  const code = ctx.query.notice;
  return typeof code === 'string' && known.includes(code) ? `account.notice.${code}` : undefined;
}

/** A date and time in the person's language, in UTC (the server does not know their time zone), e.g. "6 Dec 2026, 09:15 UTC". */
export function formatDate(lang: string, date: Date): string {
  const language = lang === 'en-XA' ? 'en' : lang;
  return new Intl.DateTimeFormat(language, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZone: 'UTC',
    timeZoneName: 'short',
  }).format(date);
}
