/** The login step: username or email, and password. */
import type { Context } from 'koa';
import { z } from 'zod';
import { authenticatePassword } from '../src/accounts/accounts.ts';
import { recordAudit } from '../src/security/audit.ts';
import { consumeAll, reset } from '../src/security/rate-limit.ts';
import { clientAddress } from '../src/http/client-address.ts';
import { page, readForm, type InteractionDeps, type InteractionDetails } from './context.ts';
import { passwordRules } from './throttle-rules.ts';
import { globalPolicy } from '../src/policy/store.ts';
import { startSignIn } from './sign-in.ts';
import { advance } from './second-factor.ts';
import { firstFactorViews } from './first-factor.ts';
import { waitText } from '../src/mfa/wait-text.ts';

const loginForm = z.object({
  login: z.string().trim().min(1).max(254),
  password: z.string().min(1).max(1024),
});

export async function showLogin(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  // First factors (passkeys) offered beside the password, each with a fresh challenge for this interaction.
  const firstFactors = await firstFactorViews(deps, details);
  page(ctx, 'login', { title: 'Sign in', uid: details.uid, clientName, login: details.params.login_hint, firstFactors, ...extra }, status);
}

export async function submitLogin(ctx: Context, deps: InteractionDeps, details: InteractionDetails, clientName: string | undefined): Promise<void> {
  const { db, hasher } = deps.services;
  const parsed = loginForm.safeParse(await readForm(ctx));
  if (!parsed.success) {
    await showLogin(ctx, deps, details, clientName, { error: 'Enter your username or email and your password.' }, 400);
    return;
  }
  const { login, password } = parsed.data;
  const ip = clientAddress(ctx);
  const audit = { ip, userAgent: ctx.get('user-agent'), clientId: String(details.params.client_id) };
  const loginKey = login.toLowerCase();

  // The numbers are the global policy's (`throttle`); the same for every login, so nothing here depends on whether it exists.
  const rules = passwordRules((await globalPolicy(db, deps.services.config.MFA)).policy.throttle);
  const [perAddress, perLogin] = await consumeAll(db, [
    { rule: rules.perAddress, subject: ip },
    { rule: rules.perLogin, subject: loginKey },
  ]);
  if (!perAddress.allowed || !perLogin.allowed) {
    const wait = Math.max(perAddress.allowed ? 0 : perAddress.retryAfterSeconds, perLogin.allowed ? 0 : perLogin.retryAfterSeconds);
    await recordAudit(db, 'login.throttled', audit, { login: loginKey.slice(0, 254) });
    ctx.set('Retry-After', String(wait));
    await showLogin(ctx, deps, details, clientName, { login, error: `Too many attempts. Try again in ${waitText(wait)}.` }, 429);
    return;
  }

  const result = await authenticatePassword(db, hasher, login, password);
  if (!result.ok) {
    await recordAudit(db, 'login.failed', audit, { login: loginKey.slice(0, 254) });
    await showLogin(ctx, deps, details, clientName, { login, error: 'Incorrect username or password.' }, 401);
    return;
  }
  await reset(db, rules.perLogin, loginKey);
  await recordAudit(db, 'login.password_verified', { ...audit, accountId: result.account.id, actor: 'user' });
  // The password is one proof; the policy decides whether more are needed.
  const signIn = await startSignIn(deps, details, result.account);
  await advance(ctx, deps, details, signIn, clientName);
}
