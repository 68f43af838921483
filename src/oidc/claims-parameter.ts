/**
 * The shape of the OIDC `claims` request parameter (OIDC Core 5.5), checked
 * once at the edge, before anything reads it.
 *
 * node-oidc-provider checks only that the parameter is a JSON object whose
 * `id_token` and `userinfo` members are objects of objects. Twofold reads an
 * essential `acr` from it to decide the sign-in (src/mfa/requirement.ts), so a
 * `values` that is a string, or an empty list, must never get that far: the
 * library calls `assertClaimsParameter` at every endpoint that takes the
 * parameter (authorization, PAR, a request object's claims too), and a
 * malformed one is its `invalid_request`, answered the library's normal way
 * (back to the app when the redirect_uri is known, else an error page or JSON).
 */
import { z } from 'zod';

/** One claim's request: null (asked for, nothing more) or an object; unknown members are ignored, as 5.5.1 says. */
const claimRequest = z
  .looseObject({
    essential: z.boolean().optional(),
    value: z.unknown().optional(),
    values: z.array(z.unknown()).optional(),
  })
  .nullable();

/**
 * `acr` decides how a person signs in, so its values are checked as strings. An empty `values` asks for a level out of
 * an empty set: nothing could ever meet it, and reading it as "no requirement" would turn an app's bug into a weaker
 * sign-in, so it is refused.
 */
const acrRequest = z
  .looseObject({
    essential: z.boolean().optional(),
    value: z.string().optional(),
    values: z.array(z.string()).min(1, 'must list at least one value').optional(),
  })
  .nullable();

const member = z.object({ acr: acrRequest.optional() }).catchall(claimRequest);

export const claimsParameterSchema = z.looseObject({ id_token: member.optional(), userinfo: member.optional() });

export type ClaimsParameter = z.infer<typeof claimsParameterSchema>;

/** What is wrong with a parsed claims parameter, said for the app's developer, or undefined when its shape is right. */
export function claimsParameterProblem(claims: unknown): string | undefined {
  const parsed = claimsParameterSchema.safeParse(claims);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  const where = ['claims', ...issue.path.map(String)].join('.');
  return `${where}: ${issue.message}`;
}

/** The essential acr requests in a claims parameter (JSON text): the ID token's first, then userinfo's. */
export function essentialAcrRequests(raw: string): { ok: true; requests: string[][] } | { ok: false } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false };
  }
  const parsed = claimsParameterSchema.safeParse(json);
  if (!parsed.success) return { ok: false };
  const requests: string[][] = [];
  for (const acr of [parsed.data.id_token?.acr, parsed.data.userinfo?.acr]) {
    if (!acr?.essential) continue;
    // Essential without a value or values asks only that acr be returned (it always is): no level.
    const values = acr.values ?? (acr.value !== undefined ? [acr.value] : undefined);
    if (values) requests.push(values);
  }
  return { ok: true, requests };
}
