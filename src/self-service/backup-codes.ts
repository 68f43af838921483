/**
 * Backup codes: how many are left, and a new set. A new set is made by the
 * backup-codes factor itself, through the engine (its format, its count
 * setting, keyed hashes), and replaces the old one in one transaction (the
 * factor holds one credential per account): the old codes stop working the
 * moment the new ones exist. The codes are returned once, to be shown once.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { RegisteredFactor } from '../../factors/registry.ts';
import { findAccountById } from '../accounts/accounts.ts';
import { InteractionState } from '../mfa/step-state.ts';
import { recordAudit } from '../security/audit.ts';
import { actingSchema, auditOf, idSchema } from './acting.ts';

/** At or below this many codes left, a person is warned (and offered a new set). */
export const LOW_CODES = 3;

/** The recovery-only factor (backup codes), if one is registered. */
export function recoveryFactor(services: Services): RegisteredFactor | undefined {
  return services.factors.registry.all().find((r) => r.factor.recoveryOnly);
}

export interface BackupCodesStatus {
  /** The recovery factor's id, absent when none is registered. */
  factorId?: string;
  /** The account has a second factor for codes to back up. */
  secondFactor: boolean;
  /** The account has a set (possibly used up). */
  enrolled: boolean;
  left: number;
  /** A second factor and at most LOW_CODES codes left (none included). */
  low: boolean;
  /** A second factor and no codes left at all. */
  missing: boolean;
}

export const backupCodesStatusInput = z.object({ accountId: idSchema }).strict();

export async function backupCodesStatus(services: Services, input: z.input<typeof backupCodesStatusInput>): Promise<BackupCodesStatus> {
  const { accountId } = backupCodesStatusInput.parse(input);
  const recovery = recoveryFactor(services);
  const summaries = await services.factors.store.summaries(accountId);
  const secondFactor = summaries.some((s) => services.factors.registry.get(s.factorId)?.factor.recoveryOnly === false);
  const mine = recovery ? summaries.filter((s) => s.factorId === recovery.factor.id) : [];
  const left = mine.reduce((n, s) => n + (s.remaining ?? 0), 0);
  return {
    ...(recovery ? { factorId: recovery.factor.id } : {}),
    secondFactor,
    enrolled: mine.length > 0,
    left,
    low: secondFactor && recovery !== undefined && left <= LOW_CODES,
    missing: secondFactor && recovery !== undefined && left === 0,
  };
}

export const regenerateInput = z
  .object({
    accountId: idSchema,
    acting: actingSchema,
    /** The person's language, for the name the new set is stored under. */
    language: z.string().max(35).optional(),
  })
  .strict();
export type RegenerateInput = z.input<typeof regenerateInput>;
export type RegenerateResult =
  | { ok: true; codes: string[]; credentialId: string }
  /** `no_second_factor`: codes back up another method; `unavailable`: no backup-code factor here; `locked`: too many attempts. */
  | { ok: false; reason: 'no_second_factor' | 'unavailable' | 'locked' | 'unknown_account' };

export async function regenerateBackupCodes(services: Services, input: RegenerateInput): Promise<RegenerateResult> {
  const { accountId, acting, language } = regenerateInput.parse(input);
  const recovery = recoveryFactor(services);
  if (!recovery) return { ok: false, reason: 'unavailable' };
  const account = await findAccountById(services.db, accountId);
  if (!account) return { ok: false, reason: 'unknown_account' };
  if (!(await backupCodesStatus(services, { accountId })).secondFactor) return { ok: false, reason: 'no_second_factor' };
  const engine = services.factors;
  const audit = auditOf(accountId, acting);
  // The factor keeps its pending set in step state; this state is this regeneration's alone and gone after it.
  const state = InteractionState.of(services, `self-service:backup-codes:${crypto.randomBytes(16).toString('base64url')}`);
  try {
    const view = await engine.beginEnrollment(recovery.factor.id, account, state);
    const codes = view.data.codes;
    if (!Array.isArray(codes) || !codes.every((c) => typeof c === 'string')) throw new Error(`factor ${recovery.factor.id} did not show its codes`);
    // The factor's own confirmation that the codes were seen: they are, on the page this answer renders.
    const outcome = await engine.finishEnrollment(recovery.factor.id, account, state, { saved: 'yes' }, audit, undefined, language);
    if (!outcome.ok) return { ok: false, reason: outcome.reason === 'locked' ? 'locked' : 'unavailable' };
    await recordAudit(services.db, 'backup_codes.regenerated', audit, { credential: outcome.credentialId, count: codes.length });
    return { ok: true, codes: codes as string[], credentialId: outcome.credentialId };
  } finally {
    await state.clear();
  }
}
