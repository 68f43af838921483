/**
 * The sign-in flows that every app driven through a browser runs alike: password
 * + TOTP, per-app MFA with enrolment during sign-in, and essential and voluntary
 * step-up. Each RP's file says only how its app starts a sign-in of each kind and
 * where its answer carries the `acr`; the expectations are the same for all.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import { ACR1, ACR2, REFEDS_MFA, addUser, type Browser, type Provider, type User } from './harness.ts';

/** What the app asks for: nothing, an essential `acr` (claims parameter), or `acr_values` (voluntary). */
export type Ask = 'plain' | 'essential' | 'voluntary';

export interface SignInApp {
  provider(): Provider;
  /** The app's registered name, for `twofold client update`. */
  client: string;
  browser(): Browser;
  /** Signs `user` in through the app, asking for `ask`; the pages walked and the `acr` the app got. */
  signIn(b: Browser, user: User, ask: Ask, options?: { skip?: boolean }): Promise<{ pages: string[]; acr: unknown }>;
}

/** Registers the shared tests in the calling describe. */
export function signInFlows(app: SignInApp): void {
  test('password + TOTP: acr level 2', async () => {
    const { acr, pages } = await app.signIn(app.browser(), await addUser(app.provider(), { totp: true }), 'plain');
    expect(pages).toEqual(['login', 'code']);
    expect(acr).toBe(ACR2);
  });

  test('per-app MFA: enrolment during sign-in', async () => {
    const p = app.provider();
    expect((await p.run('client', 'update', app.client, '--mfa', 'required')).code).toBe(0);
    try {
      const { acr, pages } = await app.signIn(app.browser(), await addUser(p), 'plain');
      expect(pages).toEqual(['login', 'enrol', 'backup-codes']);
      expect(acr).toBe(ACR2);
    } finally {
      expect((await p.run('client', 'update', app.client, '--clear-policy')).code).toBe(0);
    }
  });

  describe('with the global policy at mfa off', () => {
    beforeAll(() => savePolicy(app.provider().services.db, GLOBAL, { mfa: 'off' }, 'test'));
    afterAll(() => savePolicy(app.provider().services.db, GLOBAL, { mfa: 'optional' }, 'test'));

    test('essential step-up (claims): the TOTP step, not skippable', async () => {
      const user = await addUser(app.provider(), { totp: true });
      const b = app.browser();
      expect((await app.signIn(b, user, 'plain')).acr).toBe(ACR1);
      const stepped = await app.signIn(b, user, 'essential', { skip: true });
      expect(stepped.pages).toEqual(['code']);
      expect(stepped.acr).toBe(REFEDS_MFA);
    });

    test('voluntary step-up (acr_values): skipped, level 1; taken, the requested acr', async () => {
      const user = await addUser(app.provider(), { totp: true });
      const b = app.browser();
      await app.signIn(b, user, 'plain');
      const skipped = await app.signIn(b, user, 'voluntary', { skip: true });
      expect(skipped.pages).toEqual(['code']);
      expect(skipped.acr).toBe(ACR1);
      expect((await app.signIn(b, user, 'voluntary')).acr).toBe(REFEDS_MFA);
    });
  });
}
