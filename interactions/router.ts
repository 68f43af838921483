/**
 * The routes of /interaction/:uid. Each step lives in its own module; this
 * table decides which one a request reaches, from the prompt the provider asks.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { findClientRow } from '../src/oidc/clients.ts';
import { findAccountById } from '../src/accounts/accounts.ts';
import { HttpError } from '../src/http/errors.ts';
import { loadInteraction, sameOrigin, page, type InteractionDeps, type InteractionDetails } from './context.ts';
import { showLogin, submitLogin } from './login.ts';
import { submitFirstFactor } from './first-factor.ts';
import { showConsent, submitConsent } from './consent.ts';
import { abortInteraction } from './abort.ts';
import { currentSignIn } from './sign-in.ts';
import { acknowledgeNotice, advance, checkFactor, restartFactor, returnToFactor, skipStep, submitEnroll, submitFactor } from './second-factor.ts';
import { speakerFor, views } from './render.ts';

async function clientName(deps: InteractionDeps, details: InteractionDetails): Promise<string | undefined> {
  const row = await findClientRow(deps.services.db, String(details.params.client_id));
  // Only the exact client_id counts (findClientRow also matches names, for the CLI).
  return row && row.client_id === details.params.client_id ? row.name : undefined;
}

function wrongStep(ctx: Context, details: InteractionDetails): void {
  // The user pressed back or submitted an old form: send them to the current step.
  ctx.redirect(`/interaction/${details.uid}`);
}

export function interactionRoutes(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  for (const { factor } of deps.services.factors.registry.all()) views().addPartials(factor.viewsDir, `${factor.id}/`);

  router.use(async (ctx, next) => {
    if (ctx.method === 'POST' && !sameOrigin(ctx, deps.services.config.ISSUER)) {
      throw new HttpError(403, 'invalid_request', 'Cross-site form submissions are refused.', { key: 'error.crossSite' });
    }
    await next();
  });

  router.get('/', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    const name = await clientName(deps, details);
    // Past the password (or stepping up an existing session): the second step.
    const signIn = await currentSignIn(deps, details);
    if (signIn) return advance(ctx, deps, details, signIn, name);
    switch (details.prompt.name) {
      case 'login':
        return showLogin(ctx, deps, details, name);
      case 'consent': {
        const account = details.session?.accountId ? await findAccountById(deps.services.db, details.session.accountId) : undefined;
        return showConsent(ctx, details, name, account?.username);
      }
      default: {
        const { t } = speakerFor(ctx);
        return page(ctx, 'error', { title: t('error.title'), message: t('error.stepUnsupported'), uid: details.uid, clientName: name }, 400);
      }
    }
  });

  router.post('/login', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    if (details.prompt.name !== 'login' || (await currentSignIn(deps, details))) return wrongStep(ctx, details);
    await submitLogin(ctx, deps, details, await clientName(deps, details));
  });

  router.post('/first-factor/:factor', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await submitFirstFactor(ctx, deps, details, await clientName(deps, details));
  });

  router.post('/factor/:factor', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await submitFactor(ctx, deps, details, await clientName(deps, details));
  });

  // A waiting factor: the page's poll (GET, JSON) and its "Check again" button (POST).
  for (const method of ['get', 'post'] as const) {
    router[method]('/factor/:factor/status', async (ctx) => {
      const details = await loadInteraction(ctx, deps);
      if (!details) return;
      await checkFactor(ctx, deps, details, await clientName(deps, details));
    });
    // A factor's browser return (a redirect back from another site).
    router[method]('/factor/:factor/return', async (ctx) => {
      const details = await loadInteraction(ctx, deps);
      if (!details) return;
      await returnToFactor(ctx, deps, details, await clientName(deps, details));
    });
  }

  router.post('/factor/:factor/restart', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await restartFactor(ctx, deps, details);
  });

  router.post('/enroll/:factor', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await submitEnroll(ctx, deps, details, await clientName(deps, details));
  });

  router.post('/skip', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await skipStep(ctx, deps, details);
  });

  router.post('/continue', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await acknowledgeNotice(ctx, deps, details);
  });

  router.post('/consent', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    if (details.prompt.name !== 'consent') return wrongStep(ctx, details);
    await submitConsent(ctx, deps, details);
  });

  router.get('/abort', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    if (!details) return;
    await abortInteraction(ctx, deps);
  });

  return router;
}
