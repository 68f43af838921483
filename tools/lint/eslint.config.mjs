// Lints the project from the repository root (basePath): `npm run lint`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { basePath: '../..' },
  {
    ignores: [
      '**/node_modules/**',
      '.build/**',
      '.build-*/**',
      'data/**',
      'coverage/**',
      'test-output/**',
      'tools/**',
      'test/interop/apps/**',
      '**/assets/simplewebauthn-browser.js',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: 'module', globals: { ...globals.node } },
    rules: {
      // Factors and the registry hold settings of many shapes; `any` is confined there and in tests.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // A handler declared before the value it calls is set (a signal arriving while starting).
      // prettier wraps code at 160 columns; what it cannot wrap (comments, long strings) stops at 200.
      'max-len': ['error', { code: 200, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true }],
      'prefer-const': ['error', { ignoreReadBeforeAssign: true, destructuring: 'all' }],
    },
  },
  {
    // The pages' own scripts run in the browser.
    files: ['interactions/assets/**/*.js', 'factors/*/assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
);
