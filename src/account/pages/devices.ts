/** /account/devices: the trusted devices that still count, and revoking one. */
import type Router from '@koa/router';
import { factorLabel, speakerFor } from '../../../interactions/render.ts';
import { listTrustedDevices, revokeTrustedDevice } from '../../self-service/index.ts';
import { actingFrom, genuineForm, notFound, signedIn } from '../guard.ts';
import { accountPage, formatDate, noticeFrom } from '../page.ts';
import { withNotice, type AccountDeps } from '../round-trip.ts';

const DEVICES = '/account/devices';

export function deviceRoutes(router: Router, deps: AccountDeps): void {
  router.get(DEVICES, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    const speaker = speakerFor(ctx);
    const date = (d: Date) => formatDate(speaker.lang, d);
    const devices = (await listTrustedDevices(deps.services, { accountId: current.account.id })).map((d) => ({
      id: d.id,
      label: d.label,
      ...(d.factorId ? { factor: speaker.t('account.devices.by', { factor: factorLabel(speaker, d.factorId) }) } : {}),
      created: speaker.t('account.devices.created', { date: date(d.createdAt) }),
      lastUsed: d.lastUsedAt ? speaker.t('account.devices.lastUsed', { date: date(d.lastUsedAt) }) : speaker.t('account.devices.neverUsed'),
      expires: speaker.t('account.devices.expires', { date: date(d.expiresAt) }),
    }));
    accountPage(ctx, 'devices', { titleKey: 'account.devices.title', devices, noticeKey: noticeFrom(ctx, ['deviceRevoked']) }, 200, current, 'devices');
  });

  router.post(`${DEVICES}/:id/revoke`, async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) return;
    if (!(await genuineForm(ctx, deps, current))) return;
    const id = String(ctx.params.id);
    const result = /^[\w-]{1,64}$/.test(id)
      ? await revokeTrustedDevice(deps.services, { accountId: current.account.id, deviceId: id, acting: actingFrom(ctx) })
      : undefined;
    if (!result?.ok) return notFound(ctx, current);
    ctx.status = 303;
    ctx.redirect(withNotice(DEVICES, 'deviceRevoked'));
  });
}
