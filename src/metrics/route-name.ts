/**
 * A request's route as a metric label: a name from a fixed set, never the raw
 * path (interaction paths carry uids, asset paths any name a client asks for).
 */
import type { Context } from 'koa';

const NAME = /^[a-z_]{1,40}$/;

export function routeName(ctx: Context): string {
  const state = ctx as Context & { _matchedRouteName?: unknown; _matchedRoute?: unknown };
  // node-oidc-provider's router names its routes (authorization, token, introspection, userinfo, jwks, discovery, …).
  if (typeof state._matchedRouteName === 'string' && NAME.test(state._matchedRouteName)) return state._matchedRouteName;
  // Twofold's own routers leave the template that matched: `/interaction/:uid/factor/:factor` is `interaction_factor`.
  const template = state._matchedRoute;
  if (typeof template === 'string') {
    if (template.startsWith('/assets/')) return 'assets';
    const name = template
      .split('/')
      .filter((part) => part && !part.startsWith(':'))
      .join('_')
      .replace(/-/g, '_');
    if (NAME.test(name)) return name;
  }
  // The token-guarded scrape itself (no router involved); a 404 there is any unknown path.
  if (ctx.path === '/metrics' && ctx.status !== 404) return 'metrics';
  return 'other';
}
