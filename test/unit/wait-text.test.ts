import { expect, test } from '@jest/globals';
import { Catalogue } from '../../src/i18n/catalogue.ts';
import { waitParams } from '../../src/mfa/wait-text.ts';

const catalogue = new Catalogue();

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
  expect(catalogue.text('en', 'failure.locked', waitParams(seconds))).toBe(`Too many attempts. Try again in ${text}.`);
});

test('in German too', () => {
  expect(catalogue.text('de', 'failure.locked', waitParams(1))).toContain('1 Sekunde');
  expect(catalogue.text('de', 'failure.locked', waitParams(900))).toContain('15 Minuten');
});
