/**
 * /account/password: a person changes their own password. The change needs
 * a fresh proof first (fresh-proof.ts: the provider's own max_age and, when
 * the account has a second factor, an essential acr of level 2), asked for
 * before the form is shown so nobody types passwords twice, and again on
 * submit should it have lapsed meanwhile. The form itself asks for the
 * current password (throttled like a sign-in's), the new one twice (the
 * rules in src/accounts/password-rules.ts), and whether to sign out every
 * other session (on unless unticked). The session the change is made in
 * stays signed in; the change is audited and the person told by email
 * (src/accounts/password-change.ts).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { speakerFor } from '../../../interactions/render.ts';
import { checkPassword } from '../../accounts/accounts.ts';
import { changePassword } from '../../accounts/password-change.ts';
import { passwordIsOnlyFactor } from '../../accounts/new-password.ts';
import { minimumLength } from '../../accounts/password-rules.ts';
import { passwordSucceeded, takePasswordAttempt, type PasswordGuess } from '../../security/password-throttle.ts';
import { refund } from '../../security/rate-limit.ts';
import { recordAudit } from '../../security/audit.ts';
import { globalPolicy } from '../../policy/store.ts';
import { needsFreshProof, requireFreshProof } from '../fresh-proof.ts';
import { actingFrom, genuineForm, signedIn } from '../guard.ts';
import { accountPage } from '../page.ts';
import type { AccountDeps } from '../round-trip.ts';
import type { CurrentAccount } from '../session.ts';

export const PASSWORD_PAGE = '/account/password';

interface FormState {
  error?: string;
  /** The box as the person left it (ticked on a first showing). */
  signOutOthers?: boolean;
}

async function showForm(ctx: Context, deps: AccountDeps, current: CurrentAccount, state: FormState = {}, status = 200): Promise<void> {
  const { services } = deps;
  const speaker = speakerFor(ctx);
  const onlyFactor = await passwordIsOnlyFactor(services.db, services.factors.registry, current.account.id);
  const notice = doneNotice(ctx, speaker.t);
  accountPage(
    ctx,
    'password',
    {
      titleKey: 'password.change.title',
      username: current.account.username,
      noPassword: current.account.password_hash === null,
      needsProof: await needsFreshProof(services, current),
      min: minimumLength({ onlyFactor }),
      signOutOthers: state.signOutOthers ?? true,
      ...(state.error ? { error: state.error } : {}),
      ...(notice ? { notice } : {}),
    },
    status,
    current,
    'password',
  );
}

/** The notice after a change (`?done=ended&n=2`, `?done=kept`), in words. */
function doneNotice(ctx: Context, t: (key: string, params?: Record<string, string | number>) => string): string | undefined {
  if (ctx.query.done === 'kept') return `${t('password.change.done')} ${t('password.change.doneKept')}`;
  if (ctx.query.done !== 'ended') return undefined;
  const n = Number(ctx.query.n);
  return `${t('password.change.done')} ${t('password.change.doneSignedOut', { count: Number.isInteger(n) && n >= 0 && n < 10_000 ? n : 0 })}`;
}

export function passwordPageRoutes(router: Router, deps: AccountDeps): void {
  const { services } = deps;

  router.get(PASSWORD_PAGE, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    await showForm(ctx, deps, current);
  });

  // "Continue": the fresh proof before the form, through the sign-in pages and back here.
  router.post(`${PASSWORD_PAGE}/proof`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    if (await requireFreshProof(ctx, deps, current, PASSWORD_PAGE)) {
      ctx.status = 303;
      ctx.redirect(PASSWORD_PAGE);
    }
  });

  router.post(PASSWORD_PAGE, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const form = await genuineForm(ctx, deps, current);
    if (!form) return;
    const { t, lang } = speakerFor(ctx);
    const { account } = current;
    const signOutOthers = form.signOutOthers === 'yes';
    if (account.password_hash === null) return showForm(ctx, deps, current, {}, 409);
    if (!(await requireFreshProof(ctx, deps, current, PASSWORD_PAGE))) return;
    const currentPassword = form.current ?? '';
    const password = form.password ?? '';
    const confirm = form.confirm ?? '';
    if (!currentPassword) return showForm(ctx, deps, current, { error: t('password.change.missingCurrent'), signOutOthers }, 400);
    if (!password || !confirm) return showForm(ctx, deps, current, { error: t('password.rule.missing'), signOutOthers }, 400);
    if (password !== confirm) return showForm(ctx, deps, current, { error: t('password.rule.mismatch'), signOutOthers }, 400);

    // The current password is a guess like any other: counted before it is checked, on the account's counters.
    const acting = actingFrom(ctx);
    const audit = { ip: acting.ip, userAgent: acting.userAgent, clientId: acting.clientId };
    const guess: PasswordGuess = { subject: account.id, ip: acting.ip ?? 'unknown' };
    const limits = (await globalPolicy(services.db, services.config.MFA)).policy.throttle;
    const verdict = await takePasswordAttempt(services.db, guess, limits);
    if (!verdict.allowed) {
      await recordAudit(services.db, 'account.password_change_refused', { ...audit, accountId: account.id, actor: 'user' }, { why: 'throttled' });
      ctx.set('Retry-After', String(verdict.retryAfterSeconds));
      return showForm(
        ctx,
        deps,
        current,
        { error: t('password.change.throttled', { minutes: Math.max(1, Math.ceil(verdict.retryAfterSeconds / 60)) }), signOutOthers },
        429,
      );
    }
    let checked: Awaited<ReturnType<typeof checkPassword>>;
    try {
      checked = await checkPassword(services.db, services.hasher, account, currentPassword);
    } catch (err) {
      await refund(services.db, verdict).catch(() => undefined); // never checked: not a failed guess
      throw err;
    }
    if (!checked.ok) {
      await recordAudit(services.db, 'account.password_change_refused', { ...audit, accountId: account.id, actor: 'user' }, { why: 'wrong_current' });
      return showForm(ctx, deps, current, { error: t('password.change.wrongCurrent'), signOutOthers }, 401);
    }
    await passwordSucceeded(services.db, guess, verdict, limits);

    const result = await changePassword(
      services,
      { accountId: account.id, password, via: 'self', actor: 'user', keepSessionUid: current.sessionUid, endOtherSessions: signOutOthers },
      { audit, language: lang },
    );
    if (!result.ok) {
      if (result.reason === 'refused') {
        await recordAudit(services.db, 'account.password_change_refused', { ...audit, accountId: account.id, actor: 'user' }, { why: result.refusal });
        return showForm(ctx, deps, current, { error: t(result.message.key, result.message.params), signOutOthers }, 400);
      }
      // The account went away meanwhile, or the input was not what the form sends.
      return showForm(ctx, deps, current, { error: t('password.change.failed'), signOutOthers }, 400);
    }
    ctx.status = 303;
    ctx.redirect(signOutOthers ? `${PASSWORD_PAGE}?done=ended&n=${result.sessionsEnded.length}` : `${PASSWORD_PAGE}?done=kept`);
  });
}
