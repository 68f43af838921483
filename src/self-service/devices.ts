/** A person's trusted devices ("don't ask again on this device"): the ones that still count, and revoking one. */
import { z } from 'zod';
import type { Services } from '../services.ts';
import { listDevices, revokeDevice } from '../mfa/trusted-devices.ts';
import { recordAudit } from '../security/audit.ts';
import { actingSchema, auditOf, idSchema } from './acting.ts';

export interface DeviceView {
  id: string;
  label: string;
  /** The factor whose proof created it (null: trusted before Twofold recorded it). */
  factorId: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date;
}

export const listDevicesInput = z.object({ accountId: idSchema }).strict();

/** Only devices that still stand in for a factor: revoked, expired and voided ones (factors or password changed) do nothing. */
export async function listTrustedDevices(services: Services, input: z.input<typeof listDevicesInput>): Promise<DeviceView[]> {
  const { accountId } = listDevicesInput.parse(input);
  return (await listDevices(services.db, accountId))
    .filter((d) => d.state === 'live')
    .map((d) => ({ id: d.id, label: d.label, factorId: d.factor_id, createdAt: d.created_at, lastUsedAt: d.last_used_at, expiresAt: d.expires_at }));
}

export const revokeDeviceInput = z.object({ accountId: idSchema, deviceId: idSchema, acting: actingSchema }).strict();

export async function revokeTrustedDevice(
  services: Services,
  input: z.input<typeof revokeDeviceInput>,
): Promise<{ ok: true } | { ok: false; reason: 'not_found' }> {
  const { accountId, deviceId, acting } = revokeDeviceInput.parse(input);
  if (!(await revokeDevice(services.db, accountId, deviceId))) return { ok: false, reason: 'not_found' };
  await recordAudit(services.db, 'device.revoked', auditOf(accountId, acting), { device: deviceId });
  return { ok: true };
}
