/**
 * Email codes through the contract kit, delivered over SMTP to a real SMTP
 * server in the test process: the driver sends itself a code as the page's
 * button does, and reads it from the delivered mail, as the user would.
 */
import { afterAll } from '@jest/globals';
import { describeFactorContract, type FactorDriver } from './kit.ts';
import emailCode from '../../../factors/email-code/index.ts';
import { startMailSink } from '../../helpers/mail-sink.ts';

const sink = await startMailSink();
afterAll(() => sink.close());

/** The same length, one digit off: well-formed and wrong. */
const other = (code: string) => code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);

function emailDriver(settings?: Record<string, unknown>): () => FactorDriver {
  return () => {
    let enrolling = '';
    return {
      factor: emailCode,
      settings,
      env: { SMTP_URL: sink.url, MAIL_FROM: 'Twofold tests <auth@example.test>' },
      async enrollmentInput(view, step) {
        if (!enrolling) {
          enrolling = String(view.data.value);
          await step.act('send', { email: enrolling });
        }
        return { code: sink.latestCode(enrolling) };
      },
      async wrongEnrollmentInput(view, step) {
        const { code } = await this.enrollmentInput(view, step);
        return { code: other(code!) };
      },
      async validChallengeInput(credential, challenge, step) {
        if (!challenge.data.sent) await step.act('send');
        return { code: sink.latestCode(credential.secret!) };
      },
      async invalidChallengeInput(credential, challenge, step) {
        const { code } = await this.validChallengeInput(credential, challenge, step);
        return { code: other(code!) };
      },
    };
  };
}

describeFactorContract('email-code', emailDriver());
describeFactorContract('email-code (8 digits, 5 minutes, 3 tries, no cooldown)', emailDriver({ length: 8, ttl: 300, attempts: 3, cooldown: 0 }));
