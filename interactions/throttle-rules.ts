/**
 * Password throttles. Keyed by the login as typed (not the account), so an
 * unknown name is throttled exactly like a real one and lockout reveals nothing.
 * The numbers come from the global policy (`throttle.passwordPerLogin`,
 * `throttle.passwordPerAddress`); these are the defaults and the counter names.
 */
import { withNumbers, type LimitRule } from '../src/security/rate-limit.ts';

/** Per login name, from every address: slows a distributed guess at one account. */
export const PASSWORD_PER_LOGIN: LimitRule = { name: 'pwd:login', points: 20, windowSeconds: 15 * 60 };
/** Per client address, across every login: slows spraying one password over many accounts. */
export const PASSWORD_PER_ADDRESS: LimitRule = { name: 'pwd:ip', points: 100, windowSeconds: 15 * 60 };

interface Numbers {
  points: number;
  windowSeconds: number;
}

/** The two password rules with the policy's numbers (the names stay fixed). */
export function passwordRules(limits?: { passwordPerLogin?: Numbers; passwordPerAddress?: Numbers }): { perLogin: LimitRule; perAddress: LimitRule } {
  return {
    perLogin: withNumbers(PASSWORD_PER_LOGIN, limits?.passwordPerLogin),
    perAddress: withNumbers(PASSWORD_PER_ADDRESS, limits?.passwordPerAddress),
  };
}
