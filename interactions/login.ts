/** The login step: username or email, and password. */
import type { Context } from 'koa';
import { z } from 'zod';
import { checkPassword, findAccountByLogin } from '../src/accounts/accounts.ts';
import { recordAudit } from '../src/security/audit.ts';
import { clientAddress } from '../src/http/client-address.ts';
import { knownDevice } from '../src/security/device-cookie.ts';
import { page, readForm, type InteractionDeps, type InteractionDetails } from './context.ts';
import { passwordSucceeded, takePasswordAttempt, type PasswordGuess } from '../src/security/password-throttle.ts';
import { readKnownBrowser } from './known-browser.ts';
import { refund } from '../src/security/rate-limit.ts';
import { globalPolicy } from '../src/policy/store.ts';
import { startSignIn } from './sign-in.ts';
import { advance } from './second-factor.ts';
import { firstFactorViews } from './first-factor-views.ts';
import { speakerFor } from './render.ts';
import { waitParams } from '../src/mfa/wait-text.ts';
import { appAllowsSignUp } from './signup-pages.ts';

const loginForm = z.object({
  login: z.string().trim().min(1).max(254),
  password: z.string().min(1).max(1024),
});

export async function showLogin(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  clientName: string | undefined,
  extra: Record<string, unknown> = {},
  status = 200,
): Promise<void> {
  // First factors (passkeys) offered beside the password, each with a fresh challenge for this interaction.
  const speaker = speakerFor(ctx);
  const firstFactors = await firstFactorViews(deps, details, speaker);
  const signUp = await appAllowsSignUp(deps.services, details.params.client_id);
  page(
    ctx,
    'login',
    { title: speaker.t('login.title'), uid: details.uid, clientName, login: details.params.login_hint, firstFactors, signUp, ...extra },
    status,
  );
}

export async function submitLogin(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const { db, hasher } = deps.services;
  const { t } = speakerFor(ctx);
  const parsed = loginForm.safeParse(await readForm(ctx));
  if (!parsed.success) {
    await showLogin(ctx, deps, details, clientName, { error: t('login.incomplete') }, 400);
    return;
  }
  const { login, password } = parsed.data;
  const ip = clientAddress(ctx);
  const audit = { ip, userAgent: ctx.get('user-agent'), clientId: String(details.params.client_id) };
  const loginKey = login.toLowerCase();

  // Counted per account, whichever of its logins was typed; a login that names no account under a keyed hash of
  // it, on the same counters with the same numbers, so nothing here tells whether it exists. A browser that has
  // completed a sign-in to the account has counters of its own (src/security/password-throttle.ts).
  const account = await findAccountByLogin(db, login);
  // Both read whether or not the login names an account: the same work either way.
  const browser = readKnownBrowser(ctx, deps);
  const unknownLogin = `login.${deps.services.codeHasher.hash(loginKey, 'throttle:unknown-login')}`;
  const guess: PasswordGuess = { subject: account?.id ?? unknownLogin, ip, knownDevice: account && knownDevice(browser, account) };
  const limits = (await globalPolicy(db, deps.services.config.MFA)).policy.throttle;
  // Counted before the password is checked: parallel guesses cannot outrun the limit.
  const verdict = await takePasswordAttempt(db, guess, limits);
  const known = guess.knownDevice ? 'known' : 'unknown';
  if (!verdict.allowed) {
    await recordAudit(db, 'login.throttled', { ...audit, accountId: account?.id }, { login: loginKey.slice(0, 254), browser: known });
    ctx.set('Retry-After', String(verdict.retryAfterSeconds));
    await showLogin(ctx, deps, details, clientName, { login, error: t('failure.locked', waitParams(verdict.retryAfterSeconds)) }, 429);
    return;
  }

  let result: Awaited<ReturnType<typeof checkPassword>>;
  try {
    result = await checkPassword(db, hasher, account, password);
  } catch (err) {
    // Never checked (the hasher's queue was full, or the database failed): not a failed guess.
    await refund(db, verdict).catch(() => undefined);
    throw err;
  }
  if (!result.ok) {
    await recordAudit(db, 'login.failed', { ...audit, accountId: account?.id }, { login: loginKey.slice(0, 254), browser: known });
    await showLogin(ctx, deps, details, clientName, { login, error: t('login.incorrect') }, 401);
    return;
  }
  await passwordSucceeded(db, guess, verdict, limits);
  if (result.account.sign_up_pending) {
    // The right password, but the address is not confirmed: nothing signs in until it is (src/accounts/sign-up.ts).
    await recordAudit(db, 'login.sign_up_pending', { ...audit, accountId: result.account.id, actor: 'user' });
    const email = result.account.email ?? result.account.username;
    page(ctx, 'signup-pending', { title: t('signup.pendingTitle'), uid: details.uid, email }, 403);
    return;
  }
  await recordAudit(db, 'login.password_verified', { ...audit, accountId: result.account.id, actor: 'user' });
  // The password is one proof; the policy decides whether more are needed.
  const signIn = await startSignIn(deps, details, result.account);
  await advance(ctx, deps, details, signIn, clientName);
}
