/**
 * The push example (examples/factor-push), a factor from outside the tree,
 * through the contract kit. The test plays the phone: it pairs from what the
 * enrolment page shows, receives requests through the push relay (the factor's
 * http transport) and answers them with signed calls to the factor's callback.
 * Registered here directly, as a third party's test would.
 */
import { describeFactorContract, type FactorDriver } from './kit.ts';
import push from '../../../examples/factor-push/index.ts';
import { PushPhone, RELAY_TOKEN, RELAY_URL } from '../../helpers/push-phone.ts';

const phone = new PushPhone();

function pushDriver(): FactorDriver {
  return {
    factor: push,
    settings: { notifyUrl: RELAY_URL, notifyToken: RELAY_TOKEN },
    transport: phone.transport,
    enrollmentInput: (view) => ({ code: phone.pair(view.data), label: 'Test phone' }),
    wrongEnrollmentInput: (view) => {
      const code = phone.pair(view.data);
      return { code: code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10) };
    },
    async validChallengeInput(credential, challenge, step) {
      await step.callback(await this.callbackFor!(credential, challenge, 'approve', step));
      return {};
    },
    async invalidChallengeInput(credential, challenge, step) {
      await step.callback(await this.callbackFor!(credential, challenge, 'deny', step));
      return {};
    },
    callbackFor(credential, challenge, answer, step) {
      const device = String(credential.data.device);
      const request = typeof challenge.data.request === 'string' ? challenge.data.request : undefined;
      // The phone answers what the relay brought it: a request the factor never sent cannot be answered.
      if (request && !phone.delivered(device, request)) throw new Error(`request ${request} never reached the phone`);
      return phone.callback(credential.secret!, device, request ?? 'never-asked', answer, step.now());
    },
  };
}

describeFactorContract('push (examples/factor-push)', pushDriver);
