/** Cancelling: the app receives access_denied, as OAuth requires. */
import type { Context } from 'koa';
import type { InteractionDeps } from './context.ts';

export async function abortInteraction(ctx: Context, deps: InteractionDeps): Promise<void> {
  await deps
    .provider()
    .interactionFinished(ctx.req, ctx.res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
  ctx.respond = false;
}
