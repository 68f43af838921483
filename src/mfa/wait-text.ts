/**
 * How long a throttled person must wait, in words: seconds up to a minute and a half (a resend cooldown reads
 * "60 seconds"), whole minutes (rounded up) beyond; "30 seconds" is never shown as "1 minute", and a plural is never
 * written "minute(s)".
 */
export function waitText(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s <= 90) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}
