/**
 * fast-check's seed. On a developer's machine every run draws a fresh one, so the properties keep exploring and a
 * counterexample found there is printed with the seed and path that replay it. In CI (CI=true) the seed is fixed, so
 * the same cases run every time and a landing never hangs on a case no one has seen yet; FC_SEED overrides both.
 */
import fc from 'fast-check';

export function configurePropertySeed(): void {
  const given = process.env.FC_SEED;
  if (given !== undefined) fc.configureGlobal({ seed: Number(given) });
  else if (process.env.CI) fc.configureGlobal({ seed: 20261201 });
}
