/**
 * /account/sessions: where the person is signed in, signing one session out,
 * and signing out everywhere (a fresh proof first). Ending the session the
 * account center itself runs on signs the person out here too.
 */
import type Router from '@koa/router';
import { speakerFor } from '../../../interactions/render.ts';
import { endAllSessions, endSession, listSessions } from '../../self-service/index.ts';
import { needsFreshProof, requireFreshProof } from '../fresh-proof.ts';
import { actingFrom, genuineForm, notFound, signedIn } from '../guard.ts';
import { accountPage, formatDate, noticeFrom } from '../page.ts';
import { withNotice, type AccountDeps } from '../round-trip.ts';
import { endAccountSession } from '../session.ts';
import { SIGNED_OUT_PATH } from '../client.ts';

const SESSIONS = '/account/sessions';

export function sessionRoutes(router: Router, deps: AccountDeps): void {
  router.get(SESSIONS, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const speaker = speakerFor(ctx);
    const date = (d: Date) => formatDate(speaker.lang, d);
    const sessions = (await listSessions(deps.services, { accountId: current.account.id })).map((s) => ({
      uid: s.uid,
      current: s.uid === current.sessionUid,
      browser: s.browser ?? speaker.t('account.sessions.unknownBrowser'),
      ip: s.ip,
      started: s.startedAt ? speaker.t('account.sessions.started', { date: date(s.startedAt) }) : '',
      lastSeen: s.lastSeenAt ? speaker.t('account.sessions.lastSeen', { date: date(s.lastSeenAt) }) : '',
      apps: s.apps.map((a) => a.name).join(', '),
    }));
    // This browser first.
    sessions.sort((a, b) => Number(b.current) - Number(a.current));
    const needsProof = await needsFreshProof(deps.services, current);
    accountPage(
      ctx,
      'sessions',
      { titleKey: 'account.sessions.title', sessions, needsProof, noticeKey: noticeFrom(ctx, ['sessionEnded', 'proofCancelled']) },
      200,
      current,
      'sessions',
    );
  });

  router.post(`${SESSIONS}/end-all`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    if (!(await requireFreshProof(ctx, deps, current, SESSIONS))) return;
    await endAllSessions(deps.services, { accountId: current.account.id, acting: actingFrom(ctx) });
    endAccountSession(ctx, deps.services);
    ctx.status = 303;
    ctx.redirect(SIGNED_OUT_PATH);
  });

  router.post(`${SESSIONS}/:uid/end`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    const uid = String(ctx.params.uid);
    const result = /^[\w-]{1,128}$/.test(uid)
      ? await endSession(deps.services, { accountId: current.account.id, sessionUid: uid, acting: actingFrom(ctx) })
      : undefined;
    if (!result?.ok) return notFound(ctx, current);
    ctx.status = 303;
    if (uid === current.sessionUid) {
      endAccountSession(ctx, deps.services);
      return ctx.redirect(SIGNED_OUT_PATH);
    }
    ctx.redirect(withNotice(SESSIONS, 'sessionEnded'));
  });
}
