/**
 * The account center's routes, under /account: one table of sections, each a
 * module of thin routes over src/self-service/. Every page needs the
 * account center session (guard.ts); every form its token; sensitive changes a
 * fresh proof (fresh-proof.ts). A section built elsewhere (the password,
 * /account/password) adds one line here and reuses the same helpers.
 */
import crypto from 'node:crypto';
import Router from '@koa/router';
import type { Services } from '../services.ts';
import { ProviderLink } from './provider-link.ts';
import { finishRoundTrip, type AccountDeps } from './round-trip.ts';
import { CALLBACK_PATH, SIGNED_OUT_PATH } from './client.ts';
import { genuineForm, signedIn } from './guard.ts';
import { accountPage } from './page.ts';
import { endAccountSession } from './session.ts';
import { overviewRoutes } from './pages/overview.ts';
import { methodRoutes } from './pages/methods.ts';
import { backupCodeRoutes } from './pages/backup-codes.ts';
import { deviceRoutes } from './pages/devices.ts';
import { sessionRoutes } from './pages/sessions.ts';
import { appRoutes } from './pages/apps.ts';
import { passwordPageRoutes } from './pages/password.ts';

const SECTIONS: Array<(router: Router, deps: AccountDeps) => void> = [
  overviewRoutes,
  methodRoutes,
  backupCodeRoutes,
  deviceRoutes,
  sessionRoutes,
  appRoutes,
  passwordPageRoutes,
];

export function accountRoutes(services: Services): Router {
  const deps: AccountDeps = { services, link: new ProviderLink(services.config.ISSUER, services.config.TRUST_PROXY) };
  const router = new Router();

  router.get(CALLBACK_PATH, (ctx) => finishRoundTrip(ctx, deps));

  // Signing out is RP-initiated logout: this session ends here, the provider's at its end-session endpoint.
  router.post('/account/sign-out', async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    endAccountSession(ctx, services);
    ctx.status = 303;
    ctx.redirect(await deps.link.endSessionUrl(ctx, crypto.randomBytes(12).toString('base64url')));
  });

  router.get(SIGNED_OUT_PATH, (ctx) => accountPage(ctx, 'signed-out', { titleKey: 'account.signedOut.title' }));

  for (const section of SECTIONS) section(router, deps);
  return router;
}
