/**
 * A clock a test moves forward: real time plus an offset, so a provider keeps
 * running (its own timers and the database use real time) while Twofold's rules
 * (src/clock.ts: evidence ages, session idle, TOTP steps) see hours pass.
 */
import { TOTP, Secret } from 'otpauth';
import type { Clock } from '../../src/clock.ts';

export class ManualClock implements Clock {
  #offsetMs = 0;

  now(): Date {
    return new Date(Date.now() + this.#offsetMs);
  }

  advance(seconds: number): void {
    this.#offsetMs += seconds * 1000;
  }
}

/** The TOTP code for the clock's current time. */
export function totpCodeAt(secret: string, clock: Clock): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: clock.now().getTime() });
}
