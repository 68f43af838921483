/**
 * Who makes a self-service change, and from where: every operation takes it,
 * validated, and records it on the audit event (the account itself as actor,
 * `user`, with the request's address; an admin API calling the same operation
 * passes its own actor).
 */
import { z } from 'zod';
import type { AuditContext } from '../security/audit.ts';

export const idSchema = z.string().min(1).max(200);

export const actingSchema = z
  .object({
    /** Recorded as the audit event's actor: `user` for the person, `admin:…` for an administrator. */
    actor: z.string().min(1).max(200),
    ip: z.string().max(100).optional(),
    userAgent: z.string().max(2048).optional(),
    /** The app the change was made through (the account center's client id). */
    clientId: z.string().max(200).optional(),
  })
  .strict();
export type Acting = z.input<typeof actingSchema>;

export function auditOf(accountId: string, acting: z.output<typeof actingSchema>): AuditContext {
  return { accountId, actor: acting.actor, ip: acting.ip ?? null, userAgent: acting.userAgent ?? null, clientId: acting.clientId ?? null };
}
