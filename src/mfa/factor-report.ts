/**
 * What a provider says about its factors as it starts: which are on (with
 * their settings, secret fields redacted), which are off and why (their own
 * `enabled`), and every policy that allows a factor that is not on. Such a
 * factor simply does not count: a policy whose allowed factors are all off
 * asks for what nobody can prove, and its sign-ins that need a second factor
 * end with `unmet_authentication_requirements`, so the operator hears of it here
 * first.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { FactorRegistry } from '../../factors/registry.ts';
import { policyFactorLists } from '../policy/store.ts';

export interface ReportLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export async function reportFactors(db: Kysely<Database>, registry: FactorRegistry, log: ReportLog): Promise<void> {
  const on = registry.all().map((r) => r.factor.id);
  log.info({ factors: Object.fromEntries(on.map((id) => [id, registry.shownSettings(id)])) }, `factors on: ${on.join(', ') || 'none'}`);
  for (const off of registry.off()) log.info({ factor: off.factor.id, reason: off.reason }, `factor ${off.factor.id} is off: ${off.reason}`);
  for (const policy of await policyFactorLists(db)) {
    const missing = policy.factors.filter((id) => !registry.get(id));
    if (!missing.length) continue;
    const left = policy.factors.filter((id) => registry.get(id));
    const consequence = left.length
      ? `only ${left.join(', ')} count there`
      : 'no factor it allows is on, so its sign-ins that need a second factor cannot be met';
    log.warn(
      { policy: policy.source, notOn: missing },
      `the ${policy.source} policy allows ${missing.join(', ')}, not on here (FACTORS, or the factor is off); ${consequence}`,
    );
  }
}
