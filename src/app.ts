/**
 * The HTTP application: Twofold's own routes first (health, assets,
 * interactions), then everything else goes to node-oidc-provider.
 */
import Koa from 'koa';
import type { Services } from './services.ts';
import type { ProviderHolder } from './oidc/provider-holder.ts';
import { logger } from './logger.ts';
import { requestContext } from './http/request-context.ts';
import { withRequestMemo } from './db/request-memo.ts';
import { securityHeaders } from './http/security-headers.ts';
import { canonicalUrl } from './http/canonical-url.ts';
import { errorBoundary } from './http/errors.ts';
import { inputGuard } from './http/input-guard.ts';
import { healthRoutes } from './http/health.ts';
import { jwksCacheControl } from './http/jwks-cache.ts';
import { assetRoutes, extraAsset } from './http/assets.ts';
import { interactionRoutes } from '../interactions/router.ts';
import { forgotPasswordRoutes } from '../interactions/password-pages.ts';
import { signUpRoutes } from '../interactions/signup-pages.ts';
import { accountRoutes } from './account/routes.ts';
import { factorCallbackRoutes } from './http/factor-callbacks.ts';
import { ASSETS_DIR, providerViews, type Views, withViews } from '../interactions/render.ts';
import { CatalogueError } from './i18n/catalogue.ts';
import { ThemeError } from '../interactions/theme.ts';
import { BRAND_LOGO_ASSET, brandPages } from '../interactions/brand.ts';
import { knownFactors } from '../factors/registry.ts';
import { StartupError } from './db/storage.ts';
import { httpDuration, metricsRoute, fromRegistry } from './metrics/index.ts';

export interface AppHandle {
  app: Koa;
  setShuttingDown(): void;
}

export function buildApp(services: Services, holder: ProviderHolder): AppHandle {
  const app = new Koa();
  // With proxy trust Koa reads X-Forwarded-For (ctx.ip); host and scheme never come from the request (canonicalUrl).
  app.proxy = services.config.TRUST_PROXY;
  // Only the right-most X-Forwarded-For entry (written by our own proxy) counts.
  app.maxIpsCount = 1;
  let shuttingDown = false;
  const pages = loadPages(services);

  app.use(requestContext(logger));
  // Outermost but the log context: every request is timed, whatever answers it (an error page included).
  const metrics = services.metrics;
  if (metrics) app.use(httpDuration(metrics));
  // Before anything builds a URL or sets a cookie: host and scheme are the issuer's, whatever Host or X-Forwarded-* say.
  app.use(canonicalUrl({ issuer: services.config.ISSUER, trustProxy: services.config.TRUST_PROXY, log: logger }));
  // Rows read twice within one request (the app, the policy, credentials) are read once; never across requests.
  app.use((_ctx, next) => withRequestMemo(next));
  app.use(securityHeaders({ hsts: services.config.secureCookies }));
  // This app's pages, error pages included, render with its brand, theme (THEME_DIR) and catalogue.
  app.use((_ctx, next) => withViews(pages.views, next));
  app.use(errorBoundary());
  // Before anything reads a parameter, a form or a body: text the database cannot take (NUL, lone surrogates) is a 400.
  app.use(inputGuard());

  const health = healthRoutes(services.db, () => shuttingDown);
  app.use(health.routes());
  if (metrics && services.config.METRICS === 'token' && services.config.metricsToken)
    app.use(metricsRoute(fromRegistry(metrics.registry), services.config.metricsToken));
  // Factors' browser files (WebAuthn's client library from node_modules) first: the asset folder answers 404 for names it lacks.
  app.use(extraAsset(services.factors.registry.assets()).routes());
  const assets = assetRoutes([ASSETS_DIR], pages.assets);
  app.use(assets.routes());
  // Servers calling a factor (a phone's approval), outside any interaction; the factor authenticates them.
  const callbacks = factorCallbackRoutes(services);
  app.use(callbacks.routes());
  app.use(callbacks.allowedMethods());
  // Built with the theme's views, so a factor view the theme replaces is the one registered.
  const interactions = withViews(pages.views, () => interactionRoutes({ services, provider: () => holder.current }));
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  // "Forgot your password?": the request form and the emailed link's page, outside any sign-in.
  app.use(forgotPasswordRoutes(services).routes());
  // Sign-up (SIGN_UP, off by default): the form, and the emailed link that confirms the address.
  app.use(signUpRoutes(services, () => holder.current).routes());
  // The account center (/account): a first-party app of this provider, signing in through it like any other.
  const account = accountRoutes(services);
  app.use(account.routes());
  app.use(account.allowedMethods());

  // node-oidc-provider answers everything else (discovery, /auth, /token, …),
  // mounted at / as koa-mount would, through the current instance.
  app.keys = holder.cookieKeys;
  holder.onReload = (h) => (app.keys = h.cookieKeys);
  app.use(jwksCacheControl('/jwks', services.config.KEY_PUBLISH_DELAY));
  app.use((ctx, next) => holder.middleware(ctx, next));

  // Koa's default error listener prints stacks; route them through pino instead.
  app.silent = true;
  app.on('error', (err) => logger.error({ err }, 'koa error'));

  return { app, setShuttingDown: () => (shuttingDown = true) };
}

/**
 * The pages: the message catalogue (built-in and every known factor's, from the services, to which
 * THEME_DIR's messages are added here) and the views with the brand (checked with the configuration)
 * and THEME_DIR, checked in full: a theme or a message that would break a page stops the start,
 * naming the file. The files both serve under /assets/, by name; the theme's logo wins, so
 * BRAND_LOGO is then not served.
 */
function loadPages(services: Services): { views: Views; assets: Record<string, string | Buffer> } {
  const { config } = services;
  const brand = brandPages(config.brand);
  // Every known factor, not only those on, so turning one off (or leaving a built-in one out) does not break the theme.
  const factorViews = Object.fromEntries(knownFactors(services.factors.registry).map((f) => [f.id, f.viewsDir]));
  let pages: ReturnType<typeof providerViews>;
  try {
    const { catalogue } = services;
    pages = providerViews(catalogue, config.THEME_DIR, factorViews, brand.page);
    if (!catalogue.offers(config.DEFAULT_LANGUAGE)) {
      throw new CatalogueError(
        `DEFAULT_LANGUAGE ${config.DEFAULT_LANGUAGE} is not a language Twofold has (${catalogue
          .languages()
          .filter((l) => catalogue.offers(l) && l !== config.DEFAULT_LANGUAGE)
          .join(', ')}); add messages/${config.DEFAULT_LANGUAGE}.json to THEME_DIR`,
      );
    }
  } catch (err) {
    if (err instanceof ThemeError) throw new StartupError(`THEME_DIR: ${err.message}`);
    if (err instanceof CatalogueError) throw new StartupError(err.message);
    throw err;
  }
  const themeLogo = pages.theme?.links.logo;
  const brandAssets = Object.entries(brand.assets).filter(([name]) => !(themeLogo && name.startsWith(`${BRAND_LOGO_ASSET}.`)));
  return { views: pages.views, assets: { ...Object.fromEntries(brandAssets), ...pages.theme?.assets } };
}
