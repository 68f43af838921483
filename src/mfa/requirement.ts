/**
 * Gathers what the policy engine needs (the account's factors, the request's
 * acr_values and essential acr, the configured mode) and asks it. The only
 * place that turns a sign-in into a PolicyInput, used by the provider's `mfa`
 * prompt and by the interaction pages alike.
 */
import type { Services } from '../services.ts';
import type { Evidence } from '../../factors/types.ts';
import { decide, type Decision, type FactorFacts } from '../policy/decide.ts';
import { AcrTable } from '../policy/acr-table.ts';

export interface RequestFacts {
  acrValues: string[];
  essentialAcr?: string[];
}

export const acrTable = new AcrTable();

/** Reads acr_values and an essential `acr` in the claims parameter (id_token or userinfo). */
export function requestFacts(params: Record<string, unknown>): RequestFacts {
  const acrValues = typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
  let essentialAcr: string[] | undefined;
  const raw = params.claims;
  if (typeof raw === 'string' && raw) {
    try {
      const claims = JSON.parse(raw) as Record<string, Record<string, { essential?: boolean; value?: string; values?: string[] } | null>>;
      const acr = claims.id_token?.acr ?? claims.userinfo?.acr;
      if (acr?.essential) essentialAcr = acr.values ?? (acr.value ? [acr.value] : undefined);
    } catch {
      // The provider rejects malformed claims before any interaction.
    }
  }
  return { acrValues, essentialAcr };
}

export async function evaluate(services: Services, accountId: string, request: RequestFacts, evidence: Evidence[]): Promise<Decision> {
  const engine = services.factors;
  const enrolled = (await engine.enrolled(accountId)).map((r) => engine.facts(r.factor.id)!).filter(Boolean);
  const available: FactorFacts[] = engine.registry.all().map((r) => engine.facts(r.factor.id)!);
  return decide({ mfa: services.config.MFA, enrolled, available, request, evidence, acrTable });
}
