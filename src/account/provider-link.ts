/**
 * The account center's side of OpenID Connect: a relying party of its own
 * provider, as any app is (oauth4webapi): discovery, an authorization request
 * with PKCE, state and nonce, the code redeemed at the token endpoint, the ID
 * token's claims checked, RP-initiated logout. Nothing reaches into the
 * provider's internals.
 *
 * The browser goes to the public endpoints (ISSUER). The server's own calls
 * (discovery, the token endpoint) go to the socket the request arrived on, with
 * the same paths: the provider answers them as it answers any app (it pins
 * every URL to ISSUER, src/http/canonical-url.ts), and a server behind a proxy
 * need not reach its own public address (hairpin NAT, split DNS).
 */
import type { Context } from 'koa';
import * as oauth from 'oauth4webapi';
import { ACCOUNT_CLIENT_ID, accountUrl, CALLBACK_PATH, SIGNED_OUT_PATH } from './client.ts';

/** What the browser's round trip through the sign-in pages must come back with; kept sealed in a cookie meanwhile. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  /** Where to go once signed in (an account center path). */
  returnTo: string;
  /** `sign-in`: a new account center session; `proof`: a fresh proof for a change; `add`: a method was added. */
  purpose: 'sign-in' | 'proof' | 'add';
  /** The account a proof or an addition is for: another account coming back starts afresh. */
  sub?: string;
  /** Epoch seconds (the services' clock) when the round trip began: a proof must be at least this recent. */
  startedAt: number;
}

/** Extra authorization request parameters (max_age, claims, twofold_enroll, prompt…). */
export type AuthorizationParams = Record<string, string>;

export type Redeemed =
  | { ok: true; claims: oauth.IDToken }
  /** The provider answered with an error (the person cancelled, a requirement could not be met), or the answer did not check out. */
  | { ok: false; error: string; description?: string };

const client: oauth.Client = { client_id: ACCOUNT_CLIENT_ID, token_endpoint_auth_method: 'none' };

/** The address of the listening socket the request came in on, as an http origin. */
function localOrigin(ctx: Context): string {
  const socket = ctx.req.socket;
  let host = (socket.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${socket.localPort}`;
}

export class ProviderLink {
  readonly #issuer: URL;
  readonly #trustProxy: boolean;
  #metadata: Promise<oauth.AuthorizationServer> | undefined;

  constructor(issuer: string, trustProxy: boolean) {
    this.#issuer = new URL(issuer);
    this.#trustProxy = trustProxy;
  }

  get redirectUri(): string {
    return accountUrl(this.#issuer.href.replace(/\/$/, ''), CALLBACK_PATH);
  }

  get postLogoutRedirectUri(): string {
    return accountUrl(this.#issuer.href.replace(/\/$/, ''), SIGNED_OUT_PATH);
  }

  /** oauth4webapi's request options: the issuer's URLs, fetched on this server's own socket. */
  #options(ctx: Context) {
    const local = localOrigin(ctx);
    const origin = this.#issuer.origin;
    const overTls = this.#issuer.protocol === 'https:';
    return {
      [oauth.allowInsecureRequests]: !overTls,
      [oauth.customFetch]: (url: string, init: oauth.CustomFetchOptions<string, unknown>) => {
        const target = new URL(url);
        if (target.origin !== origin) throw new Error(`the account center only talks to its own provider (${origin}), not ${target.origin}`);
        const headers = new Headers(init.headers);
        // Behind a TLS proxy this hop is ours; say it was TLS, as the proxy would, so nothing warns about it.
        if (overTls && this.#trustProxy) headers.set('x-forwarded-proto', 'https');
        return fetch(`${local}${target.pathname}${target.search}`, { ...(init as RequestInit), headers, redirect: 'manual' });
      },
    };
  }

  /** The provider's discovery document, read once per process (a failed read is tried again next time). */
  async metadata(ctx: Context): Promise<oauth.AuthorizationServer> {
    this.#metadata ??= (async () => {
      const response = await oauth.discoveryRequest(this.#issuer, { ...this.#options(ctx), algorithm: 'oidc' });
      return oauth.processDiscoveryResponse(this.#issuer, response);
    })();
    try {
      return await this.#metadata;
    } catch (err) {
      this.#metadata = undefined;
      throw err;
    }
  }

  /** Where to send the browser, and what to keep until it comes back. */
  async authorizationRequest(
    ctx: Context,
    pending: Omit<PendingSignIn, 'state' | 'nonce' | 'verifier'>,
    params: AuthorizationParams,
  ): Promise<{ url: string; pending: PendingSignIn }> {
    const as = await this.metadata(ctx);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(as.authorization_endpoint!);
    const query: Record<string, string> = {
      client_id: ACCOUNT_CLIENT_ID,
      redirect_uri: this.redirectUri,
      response_type: 'code',
      scope: 'openid profile email',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...params,
    };
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    return { url: url.href, pending: { ...pending, state, nonce, verifier } };
  }

  /** Checks the authorization response on the callback URL and redeems its code: the ID token's claims, or why not. */
  async redeem(ctx: Context, pending: PendingSignIn): Promise<Redeemed> {
    const as = await this.metadata(ctx);
    const callback = new URL(ctx.originalUrl, `${this.#issuer.origin}/`);
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, client, callback, pending.state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) return { ok: false, error: err.error, description: err.error_description };
      return { ok: false, error: 'invalid_response', description: (err as Error).message };
    }
    try {
      const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, this.redirectUri, pending.verifier, this.#options(ctx));
      // auth_time is judged by the caller against the services' clock (fresh-proof.ts), the clock the provider stamped it with.
      const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
        expectedNonce: pending.nonce,
        requireIdToken: true,
        maxAge: oauth.skipAuthTimeCheck,
      });
      const claims = oauth.getValidatedIdTokenClaims(result);
      if (!claims) return { ok: false, error: 'invalid_response', description: 'no ID token' };
      return { ok: true, claims };
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError) return { ok: false, error: err.error, description: err.error_description };
      if (err instanceof oauth.OperationProcessingError) return { ok: false, error: 'invalid_response', description: err.message };
      throw err;
    }
  }

  /** RP-initiated logout: the provider's end-session endpoint, back to the account center's signed-out page. */
  async endSessionUrl(ctx: Context, state: string): Promise<string> {
    const as = await this.metadata(ctx);
    const url = new URL(as.end_session_endpoint!);
    url.searchParams.set('client_id', ACCOUNT_CLIENT_ID);
    url.searchParams.set('post_logout_redirect_uri', this.postLogoutRedirectUri);
    url.searchParams.set('state', state);
    return url.href;
  }
}
