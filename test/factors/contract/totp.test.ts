/**
 * TOTP through the contract kit, with the default settings and with an
 * operator's non-default ones (SHA256, 8 digits): the driver reads the key the
 * page shows, as a user typing it by hand would, and computes codes with
 * otpauth.
 */
import { Secret, TOTP } from 'otpauth';
import { describeFactorContract, type FactorDriver } from './kit.ts';
import totp, { matchStep } from '../../../factors/totp/index.ts';
import type { Credential, StepView } from '../../../factors/types.ts';

interface Params {
  algorithm: 'SHA1' | 'SHA256' | 'SHA512';
  digits: number;
  period: number;
}

/** The code for the time step `offset` steps from now. */
function code(secret: string, p: Params, offset = 0): string {
  return TOTP.generate({
    secret: Secret.fromBase32(secret),
    algorithm: p.algorithm,
    digits: p.digits,
    period: p.period,
    timestamp: Date.now() + offset * p.period * 1000,
  });
}

/** A well-formed code that matches no step near now, so it is wrong whatever the clock does. */
function wrongCode(secret: string, p: Params): string {
  for (let i = 0; ; i++) {
    const candidate = String(i).padStart(p.digits, '0');
    if (matchStep(secret, p, candidate, Date.now(), 3) === null) return candidate;
  }
}

function fromView(view: StepView): { secret: string; params: Params } {
  const key = String(view.data.key).replace(/\s/g, '');
  return { secret: key, params: { algorithm: view.data.algorithm as Params['algorithm'], digits: Number(view.data.digits), period: Number(view.data.period) } };
}

function fromCredential(credential: Credential): { secret: string; params: Params } {
  return { secret: credential.secret!, params: credential.data as unknown as Params };
}

function totpDriver(settings?: Record<string, unknown>): () => FactorDriver {
  return () => ({
    factor: totp,
    settings,
    enrollmentInput(view) {
      const { secret, params } = fromView(view);
      // Grouped as the page shows it, with a label: the factor must clean the spaces.
      return { code: code(secret, params).replace(/(\d{3})/, '$1 '), label: 'Contract phone' };
    },
    wrongEnrollmentInput(view) {
      const { secret, params } = fromView(view);
      return { code: wrongCode(secret, params), label: 'Contract phone' };
    },
    // Enrolment spent the current step: the next one is valid (inside the window).
    validChallengeInput(credential) {
      const { secret, params } = fromCredential(credential);
      return { code: code(secret, params, 1) };
    },
    invalidChallengeInput(credential) {
      const { secret, params } = fromCredential(credential);
      return { code: wrongCode(secret, params) };
    },
  });
}

describeFactorContract('totp', totpDriver());
describeFactorContract('totp (SHA256, 8 digits, 60 s)', totpDriver({ algorithm: 'SHA256', digits: 8, period: 60 }));
