/** The OpenID scopes Twofold serves (discovery's scopes_supported). An API's own scopes never take these names. */
export const SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** Scopes about the user (OIDC Core 5.4), served or not: an API's scope never takes one of these names either. */
export const USER_SCOPES: readonly string[] = [...SCOPES, 'phone', 'address'];
