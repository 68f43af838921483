/** Jest runs the TypeScript sources as ES modules (oidc-provider 9 is ESM-only) through @swc/jest. */
export default {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } }],
  },
  extensionsToTreatAsEsm: ['.ts'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // npm start's compiled copy (.build) is not a second set of modules.
  modulePathIgnorePatterns: ['<rootDir>/.build/'],
  testTimeout: 60_000,
  // PGlite and argon2 are memory-hungry; two workers on a 2-core machine.
  maxWorkers: process.env.CI ? 2 : '50%',
  setupFiles: ['<rootDir>/test/helpers/setup-env.ts'],
};
