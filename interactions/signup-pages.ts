/**
 * The pages of self-service sign-up (src/accounts/sign-up.ts):
 *
 *   GET  /signup?uid=…      the form, from "Create an account" on the sign-in
 *                           page of an app that allows it
 *   POST /signup            the same answer for a taken and a free address;
 *                           429 only for the client address's throttle
 *   POST /signup/resend     "send the link again" from the page a pending
 *                           account gets at sign-in; the same answer always
 *   GET  /signup/verify     the emailed link: the password and a button that
 *                           confirm (a mail scanner fetching it spends nothing)
 *   POST /signup/verify     with the password chosen at sign-up: spends the
 *                           link; the account can sign in
 *
 * Everything answers 404 while SIGN_UP is off; the form also while the app
 * that started the sign-in denies it (`twofold_sign_up`), or without one.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import { z } from 'zod';
import type { Services } from '../src/services.ts';
import { clientAddress } from '../src/http/client-address.ts';
import { confirmEmail, inspectVerifyLink, requestSignUp, resendVerification, VERIFY_PATH, VERIFY_TTL_SECONDS } from '../src/accounts/sign-up.ts';
import { MIN_LENGTH_ONLY_FACTOR } from '../src/accounts/password-rules.ts';
import { findClientRow } from '../src/oidc/clients.ts';
import { page, readForm, sameOrigin } from './context.ts';
import { speakerFor } from './render.ts';

export const SIGN_UP_PATH = '/signup';

const UID = /^[A-Za-z0-9_-]{1,64}$/;
const uidOf = (value: unknown) => (typeof value === 'string' && UID.test(value) ? value : undefined);
const minutesOf = (seconds: number) => Math.max(1, Math.ceil(seconds / 60));
const HOURS = VERIFY_TTL_SECONDS / 3600;

const signUpForm = z.object({ email: z.string().trim().max(254), password: z.string().max(1024), confirm: z.string().max(1024) });

/** Whether the app may offer sign-up: SIGN_UP on, and its `twofold_sign_up` not `deny`. */
export async function appAllowsSignUp(services: Pick<Services, 'db' | 'config'>, clientId: unknown): Promise<boolean> {
  if (!services.config.SIGN_UP || typeof clientId !== 'string') return false;
  const row = await findClientRow(services.db, clientId);
  return !!row && row.metadata.twofold_sign_up !== 'deny';
}

/** The app of a sign-in in progress, when it allows sign-up. */
async function signUpApp(services: Services, provider: () => Provider, uid: string | undefined): Promise<string | undefined> {
  if (!uid) return undefined;
  const interaction = await provider().Interaction.find(uid);
  const clientId = interaction?.params.client_id;
  return (await appAllowsSignUp(services, clientId)) ? (clientId as string) : undefined;
}

export function signUpRoutes(services: Services, provider: () => Provider): Router {
  const router = new Router();
  const context = (ctx: Context, clientId?: string) => ({ ip: clientAddress(ctx), userAgent: ctx.get('user-agent'), language: speakerFor(ctx).lang, clientId });

  router.use(async (ctx, next) => {
    if (!ctx.path.startsWith(SIGN_UP_PATH) || (ctx.path !== SIGN_UP_PATH && !ctx.path.startsWith(`${SIGN_UP_PATH}/`))) return next();
    const { t } = speakerFor(ctx);
    if (!services.config.SIGN_UP) return page(ctx, 'error', { title: t('signup.title'), message: t('signup.notFound') }, 404);
    if (ctx.method === 'POST' && !sameOrigin(ctx, services.config.ISSUER))
      return page(ctx, 'error', { title: t('signup.title'), message: t('signup.crossSite') }, 403);
    await next();
  });

  const notHere = (ctx: Context) => {
    const { t } = speakerFor(ctx);
    page(ctx, 'error', { title: t('signup.title'), message: t('signup.notFound') }, 404);
  };
  const showForm = (ctx: Context, data: { uid: string; email?: string; error?: string }, status = 200) =>
    page(ctx, 'signup', { title: speakerFor(ctx).t('signup.title'), min: MIN_LENGTH_ONLY_FACTOR, ...data }, status);

  router.get(SIGN_UP_PATH, async (ctx) => {
    const uid = uidOf(ctx.query.uid);
    if (!(await signUpApp(services, provider, uid))) return notHere(ctx);
    showForm(ctx, { uid: uid! });
  });

  router.post(SIGN_UP_PATH, async (ctx) => {
    const { t } = speakerFor(ctx);
    const body = await readForm(ctx);
    const uid = uidOf(body.uid);
    const clientId = await signUpApp(services, provider, uid);
    if (!clientId) return notHere(ctx);
    const parsed = signUpForm.safeParse(body);
    if (!parsed.success || !parsed.data.email || !parsed.data.password || !parsed.data.confirm)
      return showForm(ctx, { uid: uid!, email: parsed.data?.email, error: t('signup.incomplete') }, 400);
    const { email, password, confirm } = parsed.data;
    if (password !== confirm) return showForm(ctx, { uid: uid!, email, error: t('password.rule.mismatch') }, 400);
    const outcome = await requestSignUp(services, { email, password }, context(ctx, clientId));
    if (!outcome.ok) {
      if (outcome.reason === 'invalid_email') return showForm(ctx, { uid: uid!, email, error: t('signup.invalidEmail') }, 400);
      if (outcome.reason === 'refused') return showForm(ctx, { uid: uid!, email, error: t(outcome.message.key, outcome.message.params) }, 400);
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      return showForm(ctx, { uid: uid!, email, error: t('signup.throttled', { minutes: minutesOf(outcome.retryAfterSeconds) }) }, 429);
    }
    page(ctx, 'signup-sent', { title: t('signup.sentTitle'), uid, hours: HOURS });
  });

  router.post(`${SIGN_UP_PATH}/resend`, async (ctx) => {
    const { t } = speakerFor(ctx);
    const body = await readForm(ctx);
    const uid = uidOf(body.uid);
    const login = typeof body.login === 'string' ? body.login.slice(0, 254) : '';
    const outcome = await resendVerification(services, login, context(ctx));
    if (!outcome.ok) {
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      return page(
        ctx,
        'signup-pending',
        { title: t('signup.pendingTitle'), uid, email: login, error: t('signup.throttled', { minutes: minutesOf(outcome.retryAfterSeconds) }) },
        429,
      );
    }
    page(ctx, 'signup-pending', { title: t('signup.pendingTitle'), uid, email: login, resent: true });
  });

  router.get(VERIFY_PATH, async (ctx) => {
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
    const link = await inspectVerifyLink(services, token);
    if (!link.ok) return showBrokenLink(ctx, link.reason);
    page(ctx, 'signup-verify', { title: speakerFor(ctx).t('signup.verifyTitle'), token, email: link.account.email ?? link.account.username });
  });

  router.post(VERIFY_PATH, async (ctx) => {
    const { t } = speakerFor(ctx);
    const body = await readForm(ctx);
    const token = typeof body.token === 'string' ? body.token.slice(0, 256) : '';
    const password = typeof body.password === 'string' ? body.password.slice(0, 1024) : '';
    const outcome = await confirmEmail(services, token, password, context(ctx));
    if (!outcome.ok && outcome.reason === 'password') {
      const link = await inspectVerifyLink(services, token);
      if (!link.ok) return showBrokenLink(ctx, link.reason);
      return page(
        ctx,
        'signup-verify',
        { title: t('signup.verifyTitle'), token, email: link.account.email ?? link.account.username, error: t('signup.wrongPassword') },
        400,
      );
    }
    if (!outcome.ok) return showBrokenLink(ctx, outcome.reason);
    page(ctx, 'signup-verify', { title: speakerFor(ctx).t('signup.verifiedTitle'), done: true });
  });

  return router;
}

/** Why a link cannot be used. Gone (410) when it was real once; 400 when it never was. */
function showBrokenLink(ctx: Context, reason: 'unknown' | 'expired' | 'used'): void {
  const { t } = speakerFor(ctx);
  const message = reason === 'expired' ? t('signup.expired', { hours: HOURS }) : reason === 'used' ? t('signup.used') : t('signup.unknown');
  page(ctx, 'error', { title: t('signup.brokenTitle'), message }, reason === 'unknown' ? 400 : 410);
}
