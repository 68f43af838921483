/**
 * The account center as a client of its own provider: the client migration
 * 0014 registers (a public client with PKCE, first-party, trusted devices
 * denied), and the paths its redirect URIs name. The provider resolves those
 * paths against ISSUER when it loads the client (src/oidc/clients.ts
 * resolveAgainstIssuer), so the account center follows the issuer wherever it
 * is served.
 */
export const ACCOUNT_CLIENT_ID = 'twofold-account';

/** Where the account center lives, under the issuer. */
export const ACCOUNT_BASE = '/account';
export const CALLBACK_PATH = `${ACCOUNT_BASE}/callback`;
export const SIGNED_OUT_PATH = `${ACCOUNT_BASE}/signed-out`;

/** The absolute URL of an account center path, on this issuer. */
export function accountUrl(issuer: string, path: string): string {
  return new URL(path, `${issuer}/`).href;
}

/**
 * Whether `path` is a page of the account center a sign-in may return to: a path under /account, nothing that a
 * browser would read as another origin (`//host`, `/\host`) or that carries a scheme.
 */
export function isAccountPath(path: unknown): path is string {
  return (
    typeof path === 'string' &&
    path.length <= 512 &&
    (path === ACCOUNT_BASE || path.startsWith(`${ACCOUNT_BASE}/`) || path.startsWith(`${ACCOUNT_BASE}?`)) &&
    !/[\\\s]/.test(path) &&
    !path.includes('//')
  );
}
