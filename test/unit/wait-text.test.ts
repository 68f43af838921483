import { expect, test } from '@jest/globals';
import { waitText } from '../../src/mfa/wait-text.ts';

test.each([
  [0, '1 second'],
  [1, '1 second'],
  [1.2, '2 seconds'],
  [30, '30 seconds'],
  [59, '59 seconds'],
  [60, '60 seconds'],
  [90, '90 seconds'],
  [91, '2 minutes'],
  [120, '2 minutes'],
  [900, '15 minutes'],
])('%s s → %s', (seconds, text) => {
  expect(waitText(seconds)).toBe(text);
});
