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
 */
import type { Services } from '../services.ts';
import { decide, type Decision, type PolicyInput } from '../policy/decide.ts';
import { PASSWORD_EVIDENCE } from '../policy/levels.ts';
import { policyInput } from './requirement.ts';

export type RemovalVerdict = { ok: true } | { ok: false; reason: string };

/** Met now or one proof away with what the account has: the account can sign in. */
const canMeet = (d: Decision) => d.type === 'satisfied' || d.type === 'step_up' || (d.type === 'enroll' && d.optional);

export async function checkRemoval(services: Services, accountId: string, credentialIds: string[]): Promise<RemovalVerdict> {
  const engine = services.factors;
  const all = await engine.store.list(accountId);
  const removed = all.filter((c) => credentialIds.includes(c.id));
  if (!removed.length) return { ok: true };
  const remaining = all.filter((c) => !credentialIds.includes(c.id));

  const account = await services.db.selectFrom('accounts').select('password_hash').where('id', '=', accountId).executeTakeFirst();
  if (account && account.password_hash === null) {
    // A credential a first factor accepts (a passkey, or a key it shares credentials with).
    const firstFactorIds = new Set(engine.registry.firstFactors().flatMap((r) => engine.credentialFactors(r.factor.id)));
    const canStillSignIn = remaining.some((c) => firstFactorIds.has(c.factorId));
    if (!canStillSignIn) return { ok: false, reason: 'the account has no password, and this is its last passkey: it could not sign in' };
  }

  const input = await policyInput(services, { accountId, request: { acrValues: [] }, evidence: [] });
  const now = Math.floor(Date.now() / 1000);
  const ask = (enrolled: PolicyInput['enrolled']) => decide({ ...input, enrolled, evidence: [PASSWORD_EVIDENCE(now)], trustedDevice: false, now });
  const enrolledAfter = input.enrolled.filter((f) => remaining.some((c) => c.factorId === f.id));
  const before = ask(input.enrolled);
  const after = ask(enrolledAfter);
  if (canMeet(before) && !canMeet(after)) {
    const target = after.type === 'satisfied' ? after.level : after.target;
    return { ok: false, reason: `the policy requires level ${target} (${before.rule}) and the account's other factors cannot reach it` };
  }
  return { ok: true };
}
