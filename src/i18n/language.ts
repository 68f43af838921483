/**
 * The person's language for this request: the OIDC `ui_locales` of the
 * sign-in (kept on the interaction, so every step of it speaks the same
 * language), of this request, then Accept-Language, then the default.
 */
import type { Context } from 'koa';
import type { Catalogue } from './catalogue.ts';

/** The interaction's ui_locales, set when a step loads it (interactions/context.ts). */
export const UI_LOCALES_STATE = 'uiLocales';

function askedLocales(ctx: Context): string | undefined {
  const fromInteraction = ctx.state?.[UI_LOCALES_STATE];
  if (typeof fromInteraction === 'string') return fromInteraction;
  const oidcParams = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
  if (typeof oidcParams?.ui_locales === 'string') return oidcParams.ui_locales;
  const query = ctx.query?.ui_locales;
  return typeof query === 'string' ? query : undefined;
}

export function languageOf(ctx: Context, catalogue: Catalogue): string {
  return catalogue.negotiate(askedLocales(ctx), (languages) => ctx.acceptsLanguages(...languages));
}
