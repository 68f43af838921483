/**
 * `twofold_enroll=any`, once an existing factor was proved: the list of the
 * methods the person may add (src/mfa/add-factor-choice.ts decides what is
 * shown). The list is a GET form whose choice is `?factor=<id>`, the parameter
 * the enrolment page already reads: it needs no script, keeps no state, and
 * "back" is a link to the interaction.
 */
import type { Context } from 'koa';
import { chooseFactorToAdd } from '../src/mfa/add-factor-choice.ts';
import { page, type InteractionDeps, type InteractionDetails } from './context.ts';
import { speakerFor } from './render.ts';
import type { SignIn } from './sign-in.ts';

/**
 * The method to enrol, and whether the person may go back to the list; or
 * undefined when this request answered with the list, or with a refusal of a
 * method that is not on it.
 */
export async function factorToAdd(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  signIn: SignIn,
  clientName: string | undefined,
  offered: string[],
): Promise<{ factor: string; choosable: boolean } | undefined> {
  const engine = deps.services.factors;
  const asked = ctx.query.factor === undefined ? undefined : String(ctx.query.factor);
  const enrolled = (await engine.enrolled(signIn.account.id)).map((r) => r.factor.id);
  const step = chooseFactorToAdd({ offered: offered.map((id) => ({ id, multiple: engine.registry.get(id)!.factor.multiple })), enrolled, asked });
  const { t } = speakerFor(ctx);
  switch (step.type) {
    case 'enroll':
      return { factor: step.factor, choosable: step.choosable };
    case 'choose':
      page(ctx, 'choose-factor', {
        title: t('chooser.title'),
        uid: details.uid,
        clientName,
        choices: step.choices.map((c) => ({ ...c, label: t(`${c.id}.label`), description: t(`${c.id}.description`) })),
      });
      return undefined;
    case 'refused':
      // A hand-made link or a stale page: say so, and lead back to the list (error.hbs links to the interaction).
      page(ctx, 'error', { title: t('chooser.refused.title'), message: t('chooser.refused.message'), uid: details.uid, clientName }, 400);
      return undefined;
  }
}
