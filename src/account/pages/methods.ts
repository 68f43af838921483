/**
 * /account/methods: the account's credentials; rename; remove (refused with
 * the policy's reason, a fresh proof first); add, through the provider's own
 * add-factor flow (`twofold_enroll=any`, the account center being the app),
 * never a second enrolment page.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { factorLabel, speakerFor, type Speaker } from '../../../interactions/render.ts';
import { ADD_FACTOR_PARAM } from '../../mfa/add-factor.ts';
import {
  checkMethodRemoval,
  listMethods,
  recordRemovalRefused,
  removeMethod,
  renameMethod,
  type MethodView,
  type RemovalCheck,
} from '../../self-service/index.ts';
import { needsFreshProof, requireFreshProof } from '../fresh-proof.ts';
import { actingFrom, genuineForm, notFound, signedIn } from '../guard.ts';
import { accountPage, formatDate, noticeFrom } from '../page.ts';
import { startRoundTrip, withNotice, type AccountDeps } from '../round-trip.ts';
import type { CurrentAccount } from '../session.ts';

const NOTICES = ['renamed', 'removed', 'removedWithCodes', 'added', 'notAdded', 'proofCancelled'];
const METHODS = '/account/methods';

function describe(deps: AccountDeps, speaker: Speaker, m: MethodView) {
  return {
    id: m.id,
    label: m.label,
    factorName: factorLabel(speaker, m.factorId),
    added: speaker.t('account.methods.added', { date: formatDate(speaker.lang, m.createdAt) }),
    lastUsed: m.lastUsedAt ? speaker.t('account.methods.lastUsed', { date: formatDate(speaker.lang, m.lastUsedAt) }) : speaker.t('account.methods.neverUsed'),
    ...(m.webauthn ? { keyKind: speaker.t(m.webauthn.synced ? 'account.methods.synced' : 'account.methods.deviceBound') } : {}),
    ...(m.webauthn?.authenticator ? { authenticator: speaker.t('account.methods.authenticator', { name: m.webauthn.authenticator }) } : {}),
    ...(m.remaining !== undefined ? { codesLeft: speaker.t('account.methods.codesLeft', { left: m.remaining }) } : {}),
  };
}

/** The credential id in the path, when it looks like one (anything else names nothing). */
function credentialParam(ctx: Context): string | undefined {
  const id = ctx.params.id;
  return typeof id === 'string' && /^[\w-]{1,64}$/.test(id) ? id : undefined;
}

async function showRemoval(
  ctx: Context,
  deps: AccountDeps,
  current: CurrentAccount,
  check: Exclude<RemovalCheck, { reason: 'not_found' }>,
  status: number,
): Promise<void> {
  const speaker = speakerFor(ctx);
  const { label } = check.method;
  if (!check.ok) {
    const refusal =
      check.refusal.code === 'policy'
        ? speaker.t('account.remove.refused.policy', { level: check.refusal.level })
        : speaker.t('account.remove.refused.lastSignIn');
    return accountPage(ctx, 'remove', { titleKey: 'account.remove.refused.title', titleParams: { label }, refusal }, status, current, 'methods');
  }
  accountPage(
    ctx,
    'remove',
    {
      titleKey: 'account.remove.title',
      titleParams: { label },
      id: check.method.id,
      label,
      recovery: check.recovery.length > 0,
      needsProof: await needsFreshProof(deps.services, current),
    },
    status,
    current,
    'methods',
  );
}

export function methodRoutes(router: Router, deps: AccountDeps): void {
  const { services } = deps;

  router.get(METHODS, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const speaker = speakerFor(ctx);
    const methods = (await listMethods(services, { accountId: current.account.id })).map((m) => describe(deps, speaker, m));
    accountPage(ctx, 'methods', { titleKey: 'account.methods.title', methods, noticeKey: noticeFrom(ctx, NOTICES) }, 200, current, 'methods');
  });

  // Adding goes through the sign-in pages: the add-factor flow asks for a fresh proof of a method the account has.
  router.post(`${METHODS}/add`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    await startRoundTrip(
      ctx,
      deps,
      { purpose: 'add', returnTo: METHODS, sub: current.account.id },
      { [ADD_FACTOR_PARAM]: 'any', max_age: String(services.config.ACCOUNT_FRESH_PROOF) },
    );
  });

  router.get(`${METHODS}/:id/rename`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const id = credentialParam(ctx);
    const method = id && (await listMethods(services, { accountId: current.account.id })).find((m) => m.id === id);
    if (!method) return notFound(ctx, current);
    accountPage(
      ctx,
      'rename',
      { titleKey: 'account.rename.title', titleParams: { label: method.label }, id: method.id, label: method.label },
      200,
      current,
      'methods',
    );
  });

  router.post(`${METHODS}/:id/rename`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const form = await genuineForm(ctx, deps, current);
    if (!form) return;
    const id = credentialParam(ctx);
    if (!id) return notFound(ctx, current);
    const result = await renameMethod(services, {
      accountId: current.account.id,
      credentialId: id,
      label: (form.label ?? '').slice(0, 1024),
      acting: actingFrom(ctx),
    });
    if (result.ok) {
      ctx.status = 303;
      return ctx.redirect(withNotice(METHODS, 'renamed'));
    }
    if (result.reason === 'not_found') return notFound(ctx, current);
    const method = (await listMethods(services, { accountId: current.account.id })).find((m) => m.id === id);
    if (!method) return notFound(ctx, current);
    const error = speakerFor(ctx).t('account.rename.invalid');
    accountPage(
      ctx,
      'rename',
      { titleKey: 'account.rename.title', titleParams: { label: method.label }, id, label: form.label ?? '', error },
      400,
      current,
      'methods',
    );
  });

  router.get(`${METHODS}/:id/remove`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const id = credentialParam(ctx);
    const check = id ? await checkMethodRemoval(services, { accountId: current.account.id, credentialId: id }) : undefined;
    if (!check || (!check.ok && check.reason === 'not_found')) return notFound(ctx, current);
    await showRemoval(ctx, deps, current, check, 200);
  });

  router.post(`${METHODS}/:id/remove`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    const id = credentialParam(ctx);
    const check = id ? await checkMethodRemoval(services, { accountId: current.account.id, credentialId: id }) : undefined;
    if (!check || (!check.ok && check.reason === 'not_found')) return notFound(ctx, current);
    // A refusal needs no proof to be shown (the operation records it); a removal does.
    if (!check.ok) {
      await recordRemovalRefused(services, { accountId: current.account.id, credentialId: id!, refusal: check.refusal.code, acting: actingFrom(ctx) });
      return showRemoval(ctx, deps, current, check, 409);
    }
    if (!(await requireFreshProof(ctx, deps, current, `${METHODS}/${id}/remove`))) return;
    const result = await removeMethod(services, { accountId: current.account.id, credentialId: id!, acting: actingFrom(ctx) });
    if (!result.ok) {
      if (result.reason === 'not_found') return notFound(ctx, current);
      return showRemoval(ctx, deps, current, result, 409);
    }
    ctx.status = 303;
    ctx.redirect(withNotice(METHODS, result.recovery.length ? 'removedWithCodes' : 'removed'));
  });
}
