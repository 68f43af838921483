/** Completing the interaction: one interactionFinished once the requirement is met. */
import type { Context } from 'koa';
import type { InteractionDeps, InteractionDetails } from './context.ts';

export async function finishLogin(ctx: Context, deps: InteractionDeps, _details: InteractionDetails, accountId: string, amr: string[]): Promise<void> {
  await deps.provider().interactionFinished(
    ctx.req,
    ctx.res,
    { login: { accountId, amr, remember: true } },
    { mergeWithLastSubmission: false },
  );
  ctx.respond = false;
}
