/**
 * A real Chromium for end-to-end tests, driven by playwright-core. Debian's
 * /usr/bin/chromium is used (playwright's own browser downloads are neither
 * wanted nor reachable); when it is absent, `hasChromium` is false and the
 * browser tests skip themselves with one warning.
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const hasChromium: boolean = (() => {
  try {
    fs.accessSync(CHROMIUM_PATH, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
})();

export const CHROMIUM_MISSING_MESSAGE =
  `Browser tests skipped: Chromium is not installed (${CHROMIUM_PATH} is missing). ` + 'Install it with `apt-get install -y chromium` to run them.';

let warned = false;

/** Prints, once per test file, why the browser tests did not run. */
export function warnChromiumMissing(): void {
  if (warned) return;
  warned = true;
  console.warn(CHROMIUM_MISSING_MESSAGE);
}

/**
 * Headless Chromium with a fresh temporary profile. The flags keep it off the
 * network (this machine has none beyond localhost) and quiet: no background
 * requests, component updates, sync or first-run pages.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!hasChromium) throw new Error(CHROMIUM_MISSING_MESSAGE);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
