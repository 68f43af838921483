/**
 * /account/backup-codes: how many are left, and a new set (a fresh proof
 * first). The new codes are kept sealed for one showing (the page after the
 * form, so a reload does not make another set) and shown once.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { speakerFor } from '../../../interactions/render.ts';
import { InteractionState } from '../../mfa/step-state.ts';
import { backupCodesStatus, regenerateBackupCodes } from '../../self-service/index.ts';
import { needsFreshProof, requireFreshProof } from '../fresh-proof.ts';
import { actingFrom, genuineForm, signedIn } from '../guard.ts';
import { accountPage } from '../page.ts';
import type { AccountDeps } from '../round-trip.ts';
import type { CurrentAccount } from '../session.ts';

const CODES = '/account/backup-codes';
const SHOW_SECONDS = 600;

/** Where the new codes wait for their one showing: keyed by the session's own secret and the account. */
function shownOnce(deps: AccountDeps, current: CurrentAccount): InteractionState {
  return InteractionState.of(deps.services, `account-codes:${current.account.id}:${current.session.csrf}`);
}

async function showStatus(ctx: Context, deps: AccountDeps, current: CurrentAccount, error?: string, status = 200): Promise<void> {
  const codes = await backupCodesStatus(deps.services, { accountId: current.account.id });
  const needsProof = codes.secondFactor && (await needsFreshProof(deps.services, current));
  accountPage(ctx, 'codes', { titleKey: 'account.codes.title', ...codes, needsProof, error }, status, current, 'codes');
}

export function backupCodeRoutes(router: Router, deps: AccountDeps): void {
  router.get(CODES, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (current) await showStatus(ctx, deps, current);
  });

  router.post(CODES, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    if (!(await requireFreshProof(ctx, deps, current, CODES))) return;
    const result = await regenerateBackupCodes(deps.services, { accountId: current.account.id, acting: actingFrom(ctx), language: speakerFor(ctx).lang });
    if (!result.ok) {
      const status = result.reason === 'no_second_factor' ? 409 : result.reason === 'locked' ? 429 : 503;
      return showStatus(
        ctx,
        deps,
        current,
        speakerFor(ctx).t(result.reason === 'no_second_factor' ? 'account.codes.noSecondFactor' : 'account.codes.unavailable'),
        status,
      );
    }
    await shownOnce(deps, current).set('codes', result.codes, SHOW_SECONDS);
    ctx.status = 303;
    ctx.redirect(`${CODES}/new`);
  });

  router.get(`${CODES}/new`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const codes = await shownOnce(deps, current).take<string[]>('codes');
    // Shown already (a reload, the back button): the codes are not kept anywhere to show again.
    if (!codes) return ctx.redirect(CODES);
    const filename = `${deps.services.config.brand.name.replace(/[^\w.-]+/g, '-').toLowerCase()}-backup-codes.txt`;
    accountPage(ctx, 'codes-new', { titleKey: 'account.codes.new.title', codes, download: `${codes.join('\n')}\n`, filename }, 200, current, 'codes');
  });
}
