/**
 * A person's sign-in methods: list, rename, and remove (refused with the
 * policy's reason when the method is needed; the last factor takes the backup
 * codes with it, src/mfa/removal.ts). Adding one is the provider's add-factor
 * flow (`twofold_enroll`), not an operation here.
 */
import { z } from 'zod';
import type { Services } from '../services.ts';
import { recordAudit } from '../security/audit.ts';
import { checkRemoval, removeCredential, type RemovalRefusal } from '../mfa/removal.ts';
import { actingSchema, auditOf, idSchema } from './acting.ts';
import { authenticatorName } from './authenticators.ts';

export interface MethodView {
  id: string;
  factorId: string;
  label: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** Backup codes and the like: a fallback, listed with the codes left. */
  recoveryOnly: boolean;
  /** One-time codes left (backup codes). */
  remaining?: number;
  /** WebAuthn keys and passkeys: synced (backup eligible, the BE flag) or bound to one device, and the authenticator's name when known. */
  webauthn?: { synced: boolean; authenticator?: string };
}

export const listMethodsInput = z.object({ accountId: idSchema }).strict();

export async function listMethods(services: Services, input: z.input<typeof listMethodsInput>): Promise<MethodView[]> {
  const { accountId } = listMethodsInput.parse(input);
  const { store, registry } = services.factors;
  const [summaries, credentials] = await Promise.all([store.summaries(accountId), store.list(accountId)]);
  return summaries.map((s) => {
    const data = credentials.find((c) => c.id === s.id)?.data ?? {};
    const isKey = typeof data.aaguid === 'string' && typeof data.backupEligible === 'boolean';
    const name = isKey ? authenticatorName(data.aaguid) : undefined;
    return {
      id: s.id,
      factorId: s.factorId,
      label: s.label,
      createdAt: s.createdAt,
      lastUsedAt: s.lastUsedAt,
      recoveryOnly: registry.get(s.factorId)?.factor.recoveryOnly === true,
      ...(s.remaining !== undefined ? { remaining: s.remaining } : {}),
      ...(isKey ? { webauthn: { synced: data.backupEligible === true, ...(name ? { authenticator: name } : {}) } } : {}),
    };
  });
}

export const renameMethodInput = z
  .object({
    accountId: idSchema,
    credentialId: idSchema,
    label: z.string().trim().min(1, 'a name is required').max(64, 'at most 64 characters'),
    acting: actingSchema,
  })
  .strict();
export type RenameMethodInput = z.input<typeof renameMethodInput>;
export type RenameMethodResult = { ok: true; label: string } | { ok: false; reason: 'not_found' } | { ok: false; reason: 'invalid_label'; message: string };

/** Renames one of the account's own credentials; another account's id is `not_found`, as an unknown one is. */
export async function renameMethod(services: Services, input: RenameMethodInput): Promise<RenameMethodResult> {
  const parsed = renameMethodInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.path[0] === 'label') return { ok: false, reason: 'invalid_label', message: issue.message };
    throw parsed.error;
  }
  const { accountId, credentialId, label, acting } = parsed.data;
  if (!(await services.factors.store.rename(accountId, credentialId, label))) return { ok: false, reason: 'not_found' };
  await recordAudit(services.db, 'factor.renamed', auditOf(accountId, acting), { credential: credentialId, label });
  return { ok: true, label };
}

export const removeMethodInput = z.object({ accountId: idSchema, credentialId: idSchema, acting: actingSchema }).strict();
export type RemoveMethodInput = z.input<typeof removeMethodInput>;

export type RemovalCheck =
  /** `recovery`: backup codes that go too, as nothing would be left for them to back up. */
  | { ok: true; method: MethodView; recovery: string[] }
  | { ok: false; reason: 'not_found' }
  | { ok: false; reason: 'refused'; method: MethodView; refusal: RemovalRefusal };

export const checkRemovalInput = z.object({ accountId: idSchema, credentialId: idSchema }).strict();

/** What removing the credential would do, or why it is refused: asked before the person confirms, and again when they do. */
export async function checkMethodRemoval(services: Services, input: z.input<typeof checkRemovalInput>): Promise<RemovalCheck> {
  const { accountId, credentialId } = checkRemovalInput.parse(input);
  const method = (await listMethods(services, { accountId })).find((m) => m.id === credentialId);
  if (!method) return { ok: false, reason: 'not_found' };
  const verdict = await checkRemoval(services, accountId, [credentialId]);
  if (!verdict.ok) {
    const refusal: RemovalRefusal = verdict.code === 'policy' ? { code: 'policy', level: verdict.level, rule: verdict.rule } : { code: 'last_sign_in' };
    return { ok: false, reason: 'refused', method, refusal };
  }
  return { ok: true, method, recovery: verdict.recovery };
}

export type RemoveMethodResult = { ok: true; method: MethodView; recovery: string[] } | Exclude<RemovalCheck, { ok: true }>;

/** Removes one of the account's credentials unless the policy needs it; audited (factor.removed, and factor.recovery_removed for codes that went with it). */
export async function removeMethod(services: Services, input: RemoveMethodInput): Promise<RemoveMethodResult> {
  const { accountId, credentialId, acting } = removeMethodInput.parse(input);
  const check = await checkMethodRemoval(services, { accountId, credentialId });
  if (!check.ok) {
    if (check.reason === 'refused') await recordRemovalRefused(services, { accountId, credentialId, refusal: check.refusal.code, acting });
    return check;
  }
  const { removed, recovery } = await removeCredential(services, accountId, credentialId, auditOf(accountId, acting));
  if (!removed) return { ok: false, reason: 'not_found' };
  return { ok: true, method: check.method, recovery };
}

export const removalRefusedInput = z
  .object({ accountId: idSchema, credentialId: idSchema, refusal: z.enum(['last_sign_in', 'policy']), acting: actingSchema })
  .strict();

/** Records that a removal was asked for and refused (a refusal is shown before any proof is asked for, so it is recorded on its own). */
export async function recordRemovalRefused(services: Services, input: z.input<typeof removalRefusedInput>): Promise<void> {
  const { accountId, credentialId, refusal, acting } = removalRefusedInput.parse(input);
  await recordAudit(services.db, 'factor.removal_refused', auditOf(accountId, acting), { credential: credentialId, refusal });
}
