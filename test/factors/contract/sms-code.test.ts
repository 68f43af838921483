/**
 * Text-message and voice codes through the contract kit, delivered to a local
 * HTTP gateway that checks each request's signature: the driver reads the
 * code from what the gateway received, as the phone would.
 */
import crypto from 'node:crypto';
import { afterAll, expect } from '@jest/globals';
import { describeFactorContract, type FactorDriver } from './kit.ts';
import smsCode from '../../../factors/sms-code/index.ts';
import { startSmsGateway } from '../../helpers/sms-gateway.ts';

const gateway = await startSmsGateway();
afterAll(async () => {
  // Every request the kit caused was signed as documented.
  expect(gateway.requests.length).toBeGreaterThan(0);
  expect(gateway.requests.every((r) => r.signatureValid)).toBe(true);
  await gateway.close();
});

const other = (code: string) => code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);

function smsDriver(options: { settings?: Record<string, unknown>; action: 'send' | 'call' }): () => FactorDriver {
  return () => {
    // A fresh number per test, typed the way people type them.
    const phone = `+1555${crypto.randomInt(1_000_000, 9_999_999)}`;
    let sent = false;
    return {
      factor: smsCode,
      settings: options.settings,
      env: { SMS_WEBHOOK_URL: gateway.url, SMS_WEBHOOK_SECRET: gateway.secret, SMS_WEBHOOK_TIMEOUT: '2' },
      async enrollmentInput(_view, step) {
        if (!sent) {
          await step.act(options.action, { phone: `${phone.slice(0, 2)} (${phone.slice(2, 5)}) ${phone.slice(5, 8)}-${phone.slice(8)}` });
          sent = true;
        }
        return { code: gateway.latestCode(phone) };
      },
      async wrongEnrollmentInput(view, step) {
        const { code } = await this.enrollmentInput(view, step);
        return { code: other(code!) };
      },
      async validChallengeInput(credential, challenge, step) {
        if (!challenge.data.sent) await step.act(options.action);
        return { code: gateway.latestCode(credential.secret!) };
      },
      async invalidChallengeInput(credential, challenge, step) {
        const { code } = await this.validChallengeInput(credential, challenge, step);
        return { code: other(code!) };
      },
    };
  };
}

describeFactorContract('sms-code', smsDriver({ action: 'send' }));
describeFactorContract('sms-code (voice calls)', smsDriver({ settings: { voice: true }, action: 'call' }));
