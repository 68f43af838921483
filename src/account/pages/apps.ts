/** /account/apps: apps holding a consent or refresh tokens, and revoking one (consent, grants and tokens at once). */
import type Router from '@koa/router';
import { speakerFor } from '../../../interactions/render.ts';
import { listApps, revokeApp } from '../../self-service/index.ts';
import { actingFrom, genuineForm, notFound, signedIn } from '../guard.ts';
import { accountPage, formatDate, noticeFrom } from '../page.ts';
import { withNotice, type AccountDeps } from '../round-trip.ts';

const APPS = '/account/apps';

export function appRoutes(router: Router, deps: AccountDeps): void {
  router.get(APPS, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const speaker = speakerFor(ctx);
    const apps = (await listApps(deps.services, { accountId: current.account.id })).map((a) => ({
      clientId: a.clientId,
      name: a.name,
      consent: a.consent,
      scopes: a.scopes.join(', '),
      refreshTokens: a.refreshTokens,
      since: a.since ? speaker.t('account.apps.since', { date: formatDate(speaker.lang, a.since) }) : undefined,
    }));
    accountPage(ctx, 'apps', { titleKey: 'account.apps.title', apps, noticeKey: noticeFrom(ctx, ['appRevoked']) }, 200, current, 'apps');
  });

  router.post(`${APPS}/:clientId/revoke`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    const clientId = String(ctx.params.clientId);
    const result = clientId.length <= 200 ? await revokeApp(deps.services, { accountId: current.account.id, clientId, acting: actingFrom(ctx) }) : undefined;
    if (!result?.ok) return notFound(ctx, current);
    ctx.status = 303;
    ctx.redirect(withNotice(APPS, 'appRevoked'));
  });
}
