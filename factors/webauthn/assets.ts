/**
 * The browser side of WebAuthn, served by the provider itself from
 * node_modules (no CDN): @simplewebauthn/browser's UMD bundle, and the small
 * script that runs the ceremonies on Twofold's pages.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
// The package exports only its entry points; its root is one folder above the CommonJS one.
const browserPackage = path.resolve(path.dirname(require.resolve('@simplewebauthn/browser')), '..');

export const WEBAUTHN_ASSETS: Record<string, string> = {
  'simplewebauthn-browser.js': path.join(browserPackage, 'dist', 'bundle', 'index.umd.min.js'),
  'webauthn.js': path.join(path.dirname(fileURLToPath(import.meta.url)), 'assets', 'webauthn.js'),
};
