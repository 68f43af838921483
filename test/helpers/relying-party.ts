/**
 * openid-client as the relying app: discovery, PKCE, code redemption, refresh, userinfo, introspection, revocation.
 *
 * ID tokens are verified in full, signature included: openid-client 6 checks an
 * ID token from the token endpoint's signature only with
 * enableNonRepudiationChecks (TLS is meant to vouch for it), so without that a
 * provider signing with the wrong key, or not at all, would pass every test.
 */
import * as oidc from 'openid-client';

export interface RelyingParty {
  config: oidc.Configuration;
  redirectUri: string;
  authorizationUrl(extra?: Record<string, string>): Promise<{ url: string; verifier: string; state: string; nonce: string }>;
  redeem(
    callbackUrl: string,
    checks: { verifier?: string; state: string; nonce: string },
  ): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers>;
}

export interface RelyingPartyOptions {
  /** How the app authenticates at the token endpoint (default: client_secret_basic with the secret, or none). */
  auth?: oidc.ClientAuth;
  /** Client metadata the app expects, e.g. id_token_signed_response_alg (default RS256). */
  metadata?: Partial<oidc.ClientMetadata>;
  /** Leave PKCE out of the authorization request (for PKCE_REQUIRED tests). */
  withoutPkce?: boolean;
  /** The default scope of authorization requests. */
  scope?: string;
}

export async function relyingParty(
  issuer: string,
  clientId: string,
  clientSecret: string | null,
  redirectUri: string,
  options: RelyingPartyOptions = {},
): Promise<RelyingParty> {
  const metadata = { ...(clientSecret ? { client_secret: clientSecret } : {}), ...options.metadata };
  const auth = options.auth ?? (clientSecret ? oidc.ClientSecretBasic(clientSecret) : oidc.None());
  const execute = [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks];
  const config = await oidc.discovery(new URL(issuer), clientId, metadata, auth, { execute });
  return {
    config,
    redirectUri,
    async authorizationUrl(extra = {}) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const pkce: Record<string, string> = options.withoutPkce
        ? {}
        : { code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' };
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: options.scope ?? 'openid profile email',
        ...pkce,
        state,
        nonce,
        ...extra,
      });
      return { url: url.toString(), verifier, state, nonce };
    },
    async redeem(callbackUrl, checks) {
      // Against the JWKS as published now: openid-client keeps a configuration's JWKS for 5 minutes (an unknown kid
      // refetches only after 60 s), so a key-rotation test would otherwise wait. Same metadata, auth and fetch.
      const fresh = new oidc.Configuration(config.serverMetadata(), clientId, metadata, auth);
      for (const apply of execute) apply(fresh);
      if (config[oidc.customFetch]) fresh[oidc.customFetch] = config[oidc.customFetch];
      return oidc.authorizationCodeGrant(fresh, new URL(callbackUrl), {
        pkceCodeVerifier: options.withoutPkce ? undefined : checks.verifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
    },
  };
}
