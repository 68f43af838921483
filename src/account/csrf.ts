/**
 * Every form the account center posts carries the session's own random value
 * (`_csrf`, kept sealed in the HttpOnly session cookie, so no other site can
 * read or set it), and comes from this origin (Origin, or Fetch Metadata when
 * a browser sends no Origin). A forged or stale form changes nothing.
 */
import type { Context } from 'koa';
import { constantTimeEqual } from '../security/keyed-hash.ts';
import { sameOrigin } from '../../interactions/context.ts';
import type { AccountSession } from './session.ts';

export const CSRF_FIELD = '_csrf';

/** Whether a posted form may act for this session. */
export function formIsGenuine(ctx: Context, issuer: string, session: AccountSession, form: Record<string, unknown>): boolean {
  const token = form[CSRF_FIELD];
  return sameOrigin(ctx, issuer) && typeof token === 'string' && constantTimeEqual(token, session.csrf);
}
