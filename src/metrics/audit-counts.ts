/**
 * Counts what the audit trail recorded: the trail is the one place every
 * sign-in, factor check, lockout, delivery, enrolment and removal is written,
 * so counting there (after the row was written) keeps the metrics and the
 * trail in agreement without a second call at each site.
 */
import type { Metrics } from './registry.ts';

/** Failure reasons the built-in factors and the engine give; anything else counts as `other`. */
const FACTOR_RESULTS = new Set([
  'wrong',
  'expired',
  'already_used',
  'invalid_input',
  'suspected_clone',
  'not_enrolled',
  'account_disabled',
  'unknown_credential',
]);
const CHANNELS = new Set(['email', 'sms', 'voice']);
const DELIVERY_KINDS = new Set(['timeout', 'rejected', 'unreachable']);

/**
 * A label value from a bounded set: `known` for factors (the registered ids),
 * fixed lists for the rest; never a value a request chose freely.
 */
function bounded(value: unknown, known: ReadonlySet<string>): string {
  return typeof value === 'string' && known.has(value) ? value : 'other';
}

export function auditCounter(metrics: Metrics, factorIds: ReadonlySet<string>) {
  const factor = (d: Record<string, unknown>) => bounded(d.factor, factorIds);
  return (type: string, details: Record<string, unknown>): void => {
    switch (type) {
      case 'login.password_verified':
        return metrics.signIns.inc({ method: 'password', result: 'success' });
      case 'login.failed':
        return metrics.signIns.inc({ method: 'password', result: 'failure' });
      case 'login.throttled':
        metrics.signIns.inc({ method: 'password', result: 'throttled' });
        return metrics.lockouts.inc({ kind: 'password' });
      case 'login.first_factor_verified':
        return metrics.signIns.inc({ method: factor(details), result: 'success' });
      case 'login.factor_not_allowed':
        return metrics.signIns.inc({ method: factor(details), result: 'not_allowed' });
      case 'factor.used':
        return metrics.factorVerifications.inc({ factor: factor(details), result: 'success' });
      case 'factor.failed':
        return metrics.factorVerifications.inc({ factor: factor(details), result: bounded(details.reason, FACTOR_RESULTS) });
      case 'factor.locked':
        metrics.factorVerifications.inc({ factor: factor(details), result: 'locked' });
        return metrics.lockouts.inc({ kind: 'factor' });
      case 'factor.send_throttled':
        return metrics.lockouts.inc({ kind: 'code_send' });
      case 'factor.code_sent':
        return metrics.codesSent.inc({ channel: bounded(details.channel, CHANNELS) });
      case 'factor.delivery_failed':
        return metrics.deliveryFailures.inc({ channel: bounded(details.channel, CHANNELS), kind: bounded(details.kind, DELIVERY_KINDS) });
      case 'factor.enrolled':
        return metrics.enrollments.inc({ factor: factor(details) });
      case 'factor.removed':
        return metrics.removals.inc({ factor: factor(details) });
      case 'factor.reset':
        // A reset removes every factor of an account at once; its count is all the event knows.
        if (typeof details.removed === 'number' && details.removed > 0) metrics.removals.inc({ factor: 'all' }, details.removed);
        return;
    }
  };
}
