/**
 * What every interaction step needs: the provider's view of the interaction
 * (bound to the browser by its cookie), the form, and a way to answer with a
 * page. Steps never touch the provider's internals.
 */
import type { Context } from 'koa';
import coBody from 'co-body';
import type Provider from 'oidc-provider';
import type { Services } from '../src/services.ts';
import { UI_LOCALES_STATE } from '../src/i18n/language.ts';
import { speakerFor, views } from './render.ts';
import { wayBack } from './way-back.ts';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionDeps {
  services: Services;
  provider: () => Provider;
}

export class InteractionGone extends Error {}

/** Loads the interaction for this browser; a missing or expired one is a friendly page, not a 500. */
export async function loadInteraction(ctx: Context, deps: InteractionDeps): Promise<InteractionDetails | undefined> {
  try {
    const details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (ctx.params.uid && details.uid !== ctx.params.uid) throw new InteractionGone();
    // Every step of this sign-in speaks the language the app asked for.
    if (typeof details.params.ui_locales === 'string') ctx.state[UI_LOCALES_STATE] = details.params.ui_locales;
    return details;
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (err instanceof InteractionGone || name === 'SessionNotFound' || name === 'InvalidRequest') {
      const back = await wayBack(deps.services, ctx.params.uid);
      const { t } = speakerFor(ctx);
      page(
        ctx,
        'error',
        {
          title: t('error.expiredTitle'),
          message: t('error.expired', { app: back?.clientName }),
          ...(back ? { back: back.href, backLabel: t('error.startAgainAt', { app: back.clientName }) } : {}),
        },
        400,
      );
      return undefined;
    }
    throw err;
  }
}

/** Reads an urlencoded form (at most 32 KiB). */
export async function readForm(ctx: Context): Promise<Record<string, unknown>> {
  const body = await coBody.form(ctx.req, { limit: '32kb' });
  return body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
}

/**
 * Cross-site form posts are refused: the interaction cookie is SameSite=Lax
 * already, and the Origin check makes it explicit.
 */
export function sameOrigin(ctx: Context, issuer: string): boolean {
  const origin = ctx.get('origin');
  if (!origin || origin === 'null') return ctx.get('sec-fetch-site') !== 'cross-site';
  return origin === new URL(issuer).origin;
}

/** Answers with a page in the person's language. */
export function page(ctx: Context, view: string, data: Record<string, unknown>, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = views().render(view, { lang: speakerFor(ctx).lang, ...data });
}
