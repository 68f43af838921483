/**
 * How long a throttled person must wait: seconds up to a minute and a half (a resend cooldown reads
 * "60 seconds"), whole minutes (rounded up) beyond; "30 seconds" is never shown as "1 minute", and a
 * plural is never written "minute(s)".
 */

/** The wait as message parameters, for `{unit, select, seconds {…} other {…}}` with `{wait, plural, …}` in any language. */
export function waitParams(seconds: number): { wait: number; unit: 'seconds' | 'minutes' } {
  const s = Math.max(1, Math.ceil(seconds));
  return s <= 90 ? { wait: s, unit: 'seconds' } : { wait: Math.ceil(s / 60), unit: 'minutes' };
}
