/** GET /account: who, the email, the methods in use, a warning when backup codes run low or are missing. */
import type Router from '@koa/router';
import { factorLabel, speakerFor } from '../../../interactions/render.ts';
import { accountOverview } from '../../self-service/index.ts';
import { signedIn } from '../guard.ts';
import { accountPage } from '../page.ts';
import type { AccountDeps } from '../round-trip.ts';

export function overviewRoutes(router: Router, deps: AccountDeps): void {
  router.get('/account', async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const overview = (await accountOverview(deps.services, { accountId: current.account.id }))!;
    const speaker = speakerFor(ctx);
    const codes = overview.backupCodes;
    const methods = overview.methods.map((m) => {
      const label = factorLabel(speaker, m.factorId);
      return m.count > 1 ? speaker.t('account.overview.methodCount', { label, count: m.count }) : label;
    });
    const codesWarning = codes.missing ? speaker.t('account.codes.missing') : codes.low ? speaker.t('account.codes.low', { left: codes.left }) : undefined;
    accountPage(ctx, 'overview', { titleKey: 'account.title', ...overview, methods, codesWarning }, 200, current, 'overview');
  });
}
