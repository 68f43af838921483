/**
 * Backup codes through the contract kit: the driver confirms the codes were
 * saved and remembers them, as the user who printed them would.
 */
import { describeFactorContract, type FactorDriver } from './kit.ts';
import backupCodes from '../../../factors/backup-codes/index.ts';

function backupCodesDriver(settings?: Record<string, unknown>): () => FactorDriver {
  return () => {
    let printed: string[] = [];
    let next = 0;
    return {
      factor: backupCodes,
      settings,
      enrollmentInput(view) {
        printed = view.data.codes as string[];
        return { saved: 'yes' };
      },
      // Nothing is proved at enrolment, but the confirmation is required.
      wrongEnrollmentInput(view) {
        printed = view.data.codes as string[];
        return { saved: 'no' };
      },
      validChallengeInput() {
        const code = printed[next++];
        if (!code) throw new Error('no printed code left');
        // Typed by hand: lower case, without the dashes.
        return { code: next % 2 ? code : code.replace(/-/g, '').toLowerCase() };
      },
      invalidChallengeInput() {
        let candidate = 'ZZZZ-ZZZZ-ZZZZ-ZZZZ';
        for (let i = 0; printed.includes(candidate); i++) candidate = `ZZZZ-ZZZZ-ZZZZ-${String(i).padStart(4, '0')}`;
        return { code: candidate };
      },
    };
  };
}

describeFactorContract('backup-codes', backupCodesDriver());
describeFactorContract('backup-codes (count 5)', backupCodesDriver({ count: 5, warnAt: 1 }));
