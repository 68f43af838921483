/**
 * Where Twofold's own code reads the time. One clock, carried on the
 * services, so a test can move it forward by hours (session idle and lifetime
 * limits, TOTP steps, evidence ages) while node-oidc-provider and the database
 * keep real time. Only what decides "how long ago" reads it; storage expiry
 * (rows the provider or a purge removes) stays on real time.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** The clock's time in whole seconds since the epoch, as evidence and the policy engine count it. */
export function epochSeconds(clock: Clock): number {
  return Math.floor(clock.now().getTime() / 1000);
}
