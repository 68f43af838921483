/**
 * The pages of a forgotten password (src/accounts/password-reset.ts):
 *
 *   GET  /password/forgot   the form (from "Forgot your password?" on the
 *                           sign-in page, which passes its interaction's uid
 *                           for the way back, and its language)
 *   POST /password/forgot   the same answer for every login; 429 only for
 *                           the client address's throttle
 *   GET  /password/reset    the emailed link: the new-password form, or why
 *                           the link does not work (nothing is spent)
 *   POST /password/reset    the new password, twice; spends the link only
 *                           when the password is set
 *
 * Outside /interaction/: the link is opened from a mailbox, often in another
 * browser, and needs no sign-in in progress. Every refusal is a page in the
 * person's language; nothing here ever answers 500 for what a browser sends.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Services } from '../src/services.ts';
import { clientAddress } from '../src/http/client-address.ts';
import { completePasswordReset, inspectResetLink, requestPasswordReset, RESET_PATH, RESET_TTL_SECONDS } from '../src/accounts/password-reset.ts';
import { passwordIsOnlyFactor } from '../src/accounts/new-password.ts';
import { minimumLength } from '../src/accounts/password-rules.ts';
import type { Account } from '../src/db/schema.ts';
import { page, readForm, sameOrigin } from './context.ts';
import { speakerFor } from './render.ts';

export const FORGOT_PATH = '/password/forgot';

/** An interaction uid as node-oidc-provider makes them: only such a value becomes a link back. */
const UID = /^[A-Za-z0-9_-]{1,64}$/;
const uidOf = (value: unknown) => (typeof value === 'string' && UID.test(value) ? value : undefined);

const forgotForm = z.object({ login: z.string().trim().min(1).max(254), uid: z.string().optional() });
const resetForm = z.object({ token: z.string().max(256), password: z.string().max(4096), confirm: z.string().max(4096) });

const minutesOf = (seconds: number) => Math.max(1, Math.ceil(seconds / 60));

export function forgotPasswordRoutes(services: Services): Router {
  const router = new Router();

  router.use(async (ctx, next) => {
    if (ctx.method === 'POST' && !sameOrigin(ctx, services.config.ISSUER)) {
      const { t } = speakerFor(ctx);
      return page(ctx, 'error', { title: t('password.forgot.title'), message: t('password.crossSite') }, 403);
    }
    await next();
  });

  router.get(FORGOT_PATH, (ctx) => showForgot(ctx, { uid: uidOf(ctx.query.uid) }));

  router.post(FORGOT_PATH, async (ctx) => {
    const { t, lang } = speakerFor(ctx);
    const body = await readForm(ctx);
    const uid = uidOf(body.uid);
    const parsed = forgotForm.safeParse(body);
    if (!parsed.success) return showForgot(ctx, { uid, error: t('password.forgot.incomplete') }, 400);
    const outcome = await requestPasswordReset(services, parsed.data.login, { ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), language: lang });
    if (!outcome.ok) {
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      return showForgot(ctx, { uid, login: parsed.data.login, error: t('password.forgot.throttled', { minutes: minutesOf(outcome.retryAfterSeconds) }) }, 429);
    }
    page(ctx, 'password-sent', { title: t('password.forgot.sentTitle'), uid, minutes: outcome.minutes });
  });

  router.get(RESET_PATH, async (ctx) => {
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
    const link = await inspectResetLink(services, token);
    if (!link.ok) return showBrokenLink(ctx, link.reason);
    await showReset(ctx, services, link.account, token);
  });

  router.post(RESET_PATH, async (ctx) => {
    const { t, lang } = speakerFor(ctx);
    const parsed = resetForm.safeParse(await readForm(ctx));
    if (!parsed.success) return showBrokenLink(ctx, 'unknown');
    const { token, password, confirm } = parsed.data;
    const link = await inspectResetLink(services, token);
    if (!link.ok) return showBrokenLink(ctx, link.reason);
    if (!password || !confirm) return showReset(ctx, services, link.account, token, t('password.rule.missing'), 400);
    if (password !== confirm) return showReset(ctx, services, link.account, token, t('password.rule.mismatch'), 400);
    const result = await completePasswordReset(services, token, password, { ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), language: lang });
    if (result.ok) {
      const secondFactor = !(await passwordIsOnlyFactor(services.db, services.factors.registry, link.account.id));
      return page(ctx, 'password-done', { title: t('password.reset.doneTitle'), secondFactor });
    }
    if (result.reason === 'refused') return showReset(ctx, services, link.account, token, t(result.message.key, result.message.params), 400);
    if (result.reason === 'link') return showBrokenLink(ctx, result.link);
    // The account went away, or the input was not what the form sends: the link is of no use either way.
    return showBrokenLink(ctx, 'unknown');
  });

  return router;
}

function showForgot(ctx: Context, data: { uid?: string; login?: string; error?: string }, status = 200): void {
  page(ctx, 'password-forgot', { title: speakerFor(ctx).t('password.forgot.title'), ...data }, status);
}

async function showReset(ctx: Context, services: Services, account: Account, token: string, error?: string, status = 200): Promise<void> {
  const onlyFactor = await passwordIsOnlyFactor(services.db, services.factors.registry, account.id);
  page(
    ctx,
    'password-reset',
    {
      title: speakerFor(ctx).t('password.reset.title'),
      username: account.username,
      token,
      min: minimumLength({ onlyFactor }),
      secondFactor: !onlyFactor,
      error,
    },
    status,
  );
}

/** Why a link cannot be used, with the way to a new one. Gone (410) when it was real once; 400 when it never was. */
function showBrokenLink(ctx: Context, reason: 'unknown' | 'expired' | 'used'): void {
  const { t, lang } = speakerFor(ctx);
  const message =
    reason === 'expired'
      ? t('password.reset.expired', { minutes: RESET_TTL_SECONDS / 60 })
      : reason === 'used'
        ? t('password.reset.used')
        : t('password.reset.unknown');
  page(
    ctx,
    'error',
    {
      title: t('password.reset.invalidTitle'),
      message,
      back: `${FORGOT_PATH}?ui_locales=${encodeURIComponent(lang)}`,
      backLabel: t('password.forgot.askAgain'),
    },
    reason === 'unknown' ? 400 : 410,
  );
}
