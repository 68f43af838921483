/**
 * Whether credentials may be removed without leaving the account short of
 * what its policy requires. The policy decides, as at sign-in: the account's
 * requirement (the global policy and its groups' policies; an app's own
 * minimum is checked when the user signs in to it) is compared before and after
 * the removal, with the password as the first proof. A removal is refused when
 * the account could meet the requirement with its factors before and could
 * not after (it would be sent to enrol, or refused, at its next sign-in), and
 * when it would leave an account without a password no way to sign in.
 *
 * Removing factors the policy does not need (a second key, the only factor
 * under MFA=optional) is allowed. An administrator may override (--force).
 *
 * Backup codes are never left as an account's only factor: they back up
 * another one and are useless (and would be a second factor nobody chose)
 * without it. Removing the last factor that is not recovery-only removes the
 * backup codes with it, audited as `factor.recovery_removed`; the verdict
 * names them in `recovery`, and the policy is asked about the account as it
 * will be after both.
 */
import type { Services } from '../services.ts';
import type { Credential } from '../../factors/types.ts';
import type { AuditContext } from '../security/audit.ts';
import { recordAudit } from '../security/audit.ts';
import { decide, type Decision, type PolicyInput } from '../policy/decide.ts';
import { PASSWORD_EVIDENCE } from '../policy/levels.ts';
import { policyInput } from './requirement.ts';
import { epochSeconds } from '../clock.ts';

/**
 * Why a removal is refused: `last_sign_in`, the account has no password and this is its last passkey; `policy`, the
 * policy requires `level` and what would be left cannot reach it.
 */
export type RemovalRefusal = { code: 'last_sign_in' } | { code: 'policy'; level: number; rule: string };

/** `recovery`: the backup codes (credential ids) that go with the removal, since nothing would be left for them to back up. */
export type RemovalVerdict = ({ ok: true } | ({ ok: false; reason: string } & RemovalRefusal)) & { recovery: string[] };

/** Met now or one proof away with what the account has: the account can sign in. */
const canMeet = (d: Decision) => d.type === 'satisfied' || d.type === 'step_up' || (d.type === 'enroll' && d.optional);

export async function checkRemoval(services: Services, accountId: string, credentialIds: string[]): Promise<RemovalVerdict> {
  const engine = services.factors;
  const all = await engine.store.list(accountId);
  const removed = all.filter((c) => credentialIds.includes(c.id));
  if (!removed.length) return { ok: true, recovery: [] };
  const left = all.filter((c) => !credentialIds.includes(c.id));
  const recovery = orphanedRecovery(services, left);
  const remaining = left.filter((c) => !recovery.includes(c.id));
  const verdict = await judge(services, accountId, remaining);
  return { ...verdict, recovery };
}

/**
 * Removes one credential, and the backup codes with it when nothing they back
 * up is left (see above). Returns whether the credential existed, and the ids
 * of the backup codes removed with it.
 */
export async function removeCredential(
  services: Services,
  accountId: string,
  credentialId: string,
  audit: AuditContext,
): Promise<{ removed: boolean; recovery: string[] }> {
  const engine = services.factors;
  if (!(await engine.remove(accountId, credentialId, audit))) return { removed: false, recovery: [] };
  const recovery: string[] = [];
  for (const id of orphanedRecovery(services, await engine.store.list(accountId))) if (await engine.remove(accountId, id, audit)) recovery.push(id);
  if (recovery.length)
    await recordAudit(
      services.db,
      'factor.recovery_removed',
      { ...audit, accountId },
      { credentials: recovery, with: credentialId, reason: 'backup codes are never an account’s only factor' },
    );
  return { removed: true, recovery };
}

/** The recovery-only credentials among `left` when nothing else is left for them to back up (else none). */
function orphanedRecovery(services: Services, left: Credential[]): string[] {
  const isRecovery = (c: Credential) => services.factors.registry.get(c.factorId)?.factor.recoveryOnly === true;
  return left.some((c) => !isRecovery(c)) ? [] : left.filter(isRecovery).map((c) => c.id);
}

async function judge(services: Services, accountId: string, remaining: Credential[]): Promise<{ ok: true } | ({ ok: false; reason: string } & RemovalRefusal)> {
  const engine = services.factors;

  const account = await services.db.selectFrom('accounts').select('password_hash').where('id', '=', accountId).executeTakeFirst();
  if (account && account.password_hash === null) {
    // A credential a first factor accepts (a passkey, or a key it shares credentials with).
    const firstFactorIds = new Set(engine.registry.firstFactors().flatMap((r) => engine.credentialFactors(r.factor.id)));
    const canStillSignIn = remaining.some((c) => firstFactorIds.has(c.factorId));
    if (!canStillSignIn) return { ok: false, code: 'last_sign_in', reason: 'the account has no password, and this is its last passkey: it could not sign in' };
  }

  const input = await policyInput(services, { accountId, request: { acrValues: [] }, evidence: [] });
  const now = epochSeconds(services.clock);
  const ask = (enrolled: PolicyInput['enrolled']) => decide({ ...input, enrolled, evidence: [PASSWORD_EVIDENCE(now)], trustedDevice: undefined, now });
  const enrolledAfter = input.enrolled.filter((f) => remaining.some((c) => c.factorId === f.id));
  const before = ask(input.enrolled);
  const after = ask(enrolledAfter);
  if (canMeet(before) && !canMeet(after)) {
    const target = after.type === 'satisfied' ? after.level : after.target;
    return {
      ok: false,
      code: 'policy',
      level: target,
      rule: before.rule,
      reason: `the policy requires level ${target} (${before.rule}) and the account's other factors cannot reach it`,
    };
  }
  return { ok: true };
}
