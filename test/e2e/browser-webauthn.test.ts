/**
 * WebAuthn in a real Chromium (playwright-core), with the DevTools protocol's
 * virtual authenticators (WebAuthn.addVirtualAuthenticator) standing in for a
 * security key or a phone, and openid-client as the app redeeming the code:
 *
 * - a security key registered as a second factor inside the sign-in, then
 *   password + key after signing out, with `acr` and `amr` as README documents;
 * - a passkey registered inside the sign-in, then used alone (the button, and
 *   the username field's autofill), no password;
 * - a user with TOTP and a key picks the key;
 * - a TOTP user adds a security key later, at the app's request
 *   (twofold_enroll), and signs in with it after signing out;
 * - answers made for another origin or another RP ID, a replayed answer and a
 *   counter that went backwards (a cloned key) are refused.
 *
 * The provider runs with MFA=required, so every account without a factor
 * enrols one at its first sign-in. Skipped, with one warning, when
 * /usr/bin/chromium is not installed.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { freePort, startTestServer, type TestServer } from '../helpers/server.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { hasChromium, launchBrowser, warnChromiumMissing } from '../helpers/browser.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { cdpCredential, newSeedKey, seedWebAuthnCredential, type SeedKey } from '../helpers/webauthn.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';
import { WEBAUTHN_ASSETS } from '../../factors/webauthn/assets.ts';

const PASSWORD = 'correct horse battery staple';
const PHISHING_RESISTANT = 'http://schemas.openid.net/pape/policies/2007/06/phishing-resistant';

if (!hasChromium) warnChromiumMissing();
const describeBrowser = hasChromium ? describe : describe.skip;

interface Authenticator {
  /** Where a browser keeps the credential: a USB key (device-bound) or the platform (a synced passkey). */
  kind: 'security-key' | 'synced-passkey';
}

interface Tab {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
  errors: string[];
  /** The next URL the browser is sent to at the app's redirect URI. */
  callback(): Promise<string>;
}

describeBrowser('WebAuthn with Chromium', () => {
  let database: TestDatabase;
  let server: TestServer;
  let services: Services;
  let browser: Browser;
  let rp: RelyingParty;
  let appOrigin: string;
  let redirectUri: string;
  /** An origin the provider accepts WebAuthn answers from (WEBAUTHN_ORIGINS) that is not the issuer's. */
  let sideOrigin: string;
  let users = 0;
  /** The app: a real server at the redirect URI (not page.route: Chromium restarts the navigation there after the provider's COOP header). */
  let appServer: http.Server;
  let onCallback: ((url: string) => void) | undefined;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    const port = await freePort();
    sideOrigin = `http://app.localhost:${await freePort()}`;
    server = await startTestServer(database, { PORT: String(port), MFA: 'required', WEBAUTHN_ORIGINS: `http://localhost:${port},${sideOrigin}` });
    expect(server.issuer).toBe(`http://localhost:${port}`);
    services = server.opened.services;
    appServer = http.createServer((req, res) => {
      onCallback?.(`${appOrigin}${req.url}`);
      onCallback = undefined;
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><title>App</title><link rel="icon" href="data:,"><p>Signed in.</p>');
    });
    await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    appOrigin = `http://localhost:${(appServer.address() as AddressInfo).port}`;
    redirectUri = `${appOrigin}/callback`;
    const app = await createClient(services.db, services.sealer, { name: 'WebAuthn Test App', redirectUris: [redirectUri], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, redirectUri);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.close();
    await new Promise<void>((resolve) => (appServer ? appServer.close(() => resolve()) : resolve()));
  });

  async function newUser(): Promise<Account> {
    const n = ++users;
    return createAccount(services.db, services.hasher, { username: `user${n}`, email: `user${n}@example.test`, password: PASSWORD });
  }

  /** A fresh browser profile with one virtual authenticator (automatic presence, user verification). */
  async function openTab(authenticator: Authenticator = { kind: 'security-key' }): Promise<Tab> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const synced = authenticator.kind === 'synced-passkey';
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: synced ? 'internal' : 'usb',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
        defaultBackupEligibility: synced,
        defaultBackupState: synced,
      },
    });
    return {
      context,
      page,
      cdp,
      authenticatorId,
      errors,
      callback: async () => {
        const url = await new Promise<string>((resolve) => (onCallback = resolve));
        await page.waitForURL((u) => u.origin === appOrigin);
        return url;
      },
    };
  }

  /** Opens the app's authorization URL and signs in with the password; returns what the app needs to redeem. */
  async function password(tab: Tab, account: Account, extra: Record<string, string> = {}) {
    const auth = await rp.authorizationUrl(extra);
    await tab.page.goto(auth.url);
    await tab.page.getByLabel('Username or email').fill(account.username);
    await tab.page.getByLabel('Password').fill(PASSWORD);
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.waitForLoadState();
    return auth;
  }

  async function redeem(callbackUrl: string, auth: Awaited<ReturnType<RelyingParty['authorizationUrl']>>) {
    const tokens = await rp.redeem(callbackUrl, auth);
    return { tokens, claims: tokens.claims()! };
  }

  /** RP-initiated logout, as the app would send the user: the provider asks, the user confirms. */
  async function signOut(tab: Tab, idToken: string): Promise<void> {
    const url = new URL(rp.config.serverMetadata().end_session_endpoint!);
    url.searchParams.set('id_token_hint', idToken);
    await tab.page.goto(url.toString());
    await tab.page.getByRole('button', { name: 'Sign out' }).click();
    await tab.page.waitForLoadState();
    const cookies = await tab.context.cookies(server.issuer);
    expect(cookies.filter((c) => c.name === '_session')).toEqual([]);
  }

  /** On an enrolment page: names the credential, registers it, then confirms the backup codes offered after it. */
  async function registerAndSaveCodes(tab: Tab, kind: 'key' | 'passkey', name: string): Promise<void> {
    await tab.page.getByLabel(kind === 'key' ? 'Name this key' : 'Name this passkey').fill(name);
    await tab.page.getByRole('button', { name: kind === 'key' ? 'Register this key' : 'Create passkey' }).click();
    // The click starts the ceremony in page script, which submits the form only when the authenticator answers, so
    // the navigation may not have begun yet: wait for the next page's content, then check which page it is.
    await tab.page
      .getByLabel('I have saved these codes')
      .waitFor({ timeout: 20_000 })
      .catch(() => undefined);
    await expect(tab.page.title()).resolves.toBe('Save your backup codes · Twofold');
    await tab.page.getByLabel('I have saved these codes').check();
    await tab.page.getByRole('button', { name: 'Continue' }).click();
  }

  /** Seeds a key in the database and in the tab's virtual authenticator. */
  async function seedKey(tab: Tab, account: Account, factorId: 'webauthn' | 'passkey' = 'webauthn'): Promise<SeedKey> {
    const key = newSeedKey();
    await seedWebAuthnCredential(services, account.id, key, { factorId });
    await tab.cdp.send('WebAuthn.addCredential', { authenticatorId: tab.authenticatorId, credential: cdpCredential(key, 'localhost') as never });
    return key;
  }

  async function auditTypes(account: Account): Promise<string[]> {
    return (await listAudit(services.db, { accountId: account.id })).map((e) => e.type);
  }

  /** Failed form posts the test provoked on purpose show up as console errors (the 401 itself); nothing else may. */
  function unexpected(errors: string[]): string[] {
    return errors.filter((e) => !/status of 40[13]/.test(e));
  }

  const sorted = (values: unknown) => [...(values as string[])].sort();

  /** Password + second factor up to the security key's page (the interaction uid, for posting by hand). */
  async function atKeyStep(tab: Tab, account: Account, extra: Record<string, string> = {}) {
    const auth = await password(tab, account, extra);
    await expect(tab.page.title()).resolves.toBe('Two-step verification · Twofold');
    const uid = /\/interaction\/([^/?]+)/.exec(tab.page.url())![1]!;
    const options = JSON.parse((await tab.page.locator('input[data-webauthn]').getAttribute('data-options'))!) as Record<string, unknown>;
    return { auth, uid, options };
  }

  /** Runs navigator.credentials.get() on a page of another origin (served through page.route), with @simplewebauthn/browser. */
  async function answerElsewhere(tab: Tab, origin: string, options: Record<string, unknown>): Promise<string> {
    await tab.page.route(
      (url) => url.origin === origin,
      (route) =>
        route.fulfill({
          status: 200,
          contentType: 'text/html',
          body: '<!doctype html><title>Elsewhere</title><link rel="icon" href="data:,"><p>Another site.</p>',
        }),
    );
    await tab.page.goto(`${origin}/`);
    await tab.page.addScriptTag({ content: fs.readFileSync(WEBAUTHN_ASSETS['simplewebauthn-browser.js']!, 'utf8') });
    return tab.page.evaluate(async (optionsJSON) => {
      const lib = (window as unknown as { SimpleWebAuthnBrowser: { startAuthentication(o: unknown): Promise<unknown> } }).SimpleWebAuthnBrowser;
      return JSON.stringify(await lib.startAuthentication({ optionsJSON }));
    }, options);
  }

  /** Posts a WebAuthn answer to the interaction as the page's form would (same cookies, same origin). */
  async function postAnswer(tab: Tab, uid: string, response: string) {
    const res = await tab.page.request.post(`${server.issuer}/interaction/${uid}/factor/webauthn`, {
      form: { response },
      headers: { origin: server.issuer },
      maxRedirects: 0,
    });
    return { status: res.status(), body: await res.text() };
  }

  test('a security key registered as a second factor; after signing out, password + key: level 3, amr pwd hwk user mfa', async () => {
    const alice = await newUser();
    const tab = await openTab();
    try {
      // First sign-in: MFA is required and Alice has no factor, so she enrols one, choosing a security key.
      let callback = tab.callback();
      let auth = await password(tab, alice);
      await expect(tab.page.title()).resolves.toBe('Set up two-step verification · Twofold');
      await tab.page.getByRole('link', { name: 'Use Security key instead' }).click();
      await registerAndSaveCodes(tab, 'key', 'Blue key');
      let { claims, tokens } = await redeem(await callback, auth);
      // Registering the key proved it (a signature over this interaction's challenge): password + key now.
      expect(claims.sub).toBe(alice.id);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);

      const stored = await services.factors.store.list(alice.id, 'webauthn');
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ label: 'Blue key', data: { backupEligible: false, backedUp: false, userVerified: true } });
      const { credentials } = await tab.cdp.send('WebAuthn.getCredentials', { authenticatorId: tab.authenticatorId });
      expect(credentials).toHaveLength(1);
      expect(Buffer.from(credentials[0]!.credentialId, 'base64').toString('base64url')).toBe(stored[0]!.lookupKey);

      await signOut(tab, tokens.id_token!);

      // Second sign-in, the app asking for phishing resistance: password, then the key.
      callback = tab.callback();
      auth = await password(tab, alice, { acr_values: PHISHING_RESISTANT });
      await expect(tab.page.title()).resolves.toBe('Two-step verification · Twofold');
      await tab.page.getByText('Use your security key (Blue key)').waitFor();
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      ({ claims } = await redeem(await callback, auth));
      expect(claims.acr).toBe(PHISHING_RESISTANT);
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
      expect(await auditTypes(alice)).toEqual(expect.arrayContaining(['factor.enrolled', 'factor.used']));
      expect(unexpected(tab.errors)).toEqual([]);
    } finally {
      await tab.context.close();
    }
  });

  test('a passkey registered at sign-in, then used alone with "Sign in with a passkey": no username, no password', async () => {
    const bob = await newUser();
    const tab = await openTab();
    try {
      let callback = tab.callback();
      let auth = await password(tab, bob);
      await tab.page.getByRole('link', { name: 'Use Passkey instead' }).click();
      await registerAndSaveCodes(tab, 'passkey', 'Blue key');
      let { claims, tokens } = await redeem(await callback, auth);
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
      const [passkey] = await services.factors.store.list(bob.id, 'passkey');
      expect(passkey).toMatchObject({ label: 'Blue key', data: { backupEligible: false, discoverable: true, userVerified: true } });

      await signOut(tab, tokens.id_token!);

      callback = tab.callback();
      auth = await rp.authorizationUrl();
      await tab.page.goto(auth.url);
      await tab.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      ({ claims } = await redeem(await callback, auth));
      expect(claims.sub).toBe(bob.id);
      // A passkey with user verification is two kinds and phishing-resistant: level 3 alone.
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'user']);
      const types = await auditTypes(bob);
      expect(types.filter((t) => t === 'login.password_verified')).toHaveLength(1); // the first sign-in only
      expect(types).toContain('login.first_factor_verified');
      expect(unexpected(tab.errors)).toEqual([]);
    } finally {
      await tab.context.close();
    }
  });

  test('passkey autofill: a synced passkey is offered in the username field (conditional mediation) and signs in; amr swk', async () => {
    const carol = await newUser();
    // A platform authenticator whose passkeys sync (BE): Chromium offers its passkeys in autofill,
    // and the virtual one picks the passkey by itself, as a user choosing it from the list would.
    const tab = await openTab({ kind: 'synced-passkey' });
    try {
      // What the pages ask navigator.credentials.get() for, reported to the test.
      const requests: Array<{ page: string; mediation: string; userVerification?: string; allowCredentials: number }> = [];
      await tab.context.exposeFunction('reportWebAuthnRequest', (r: (typeof requests)[number]) => requests.push(r));
      await tab.page.addInitScript(() => {
        if (!window.isSecureContext || !navigator.credentials) return;
        const original = navigator.credentials.get.bind(navigator.credentials);
        const report = (window as unknown as { reportWebAuthnRequest(r: unknown): void }).reportWebAuthnRequest;
        navigator.credentials.get = (options?: CredentialRequestOptions) => {
          report({
            page: document.title,
            mediation: options?.mediation ?? 'optional',
            userVerification: options?.publicKey?.userVerification,
            allowCredentials: options?.publicKey?.allowCredentials?.length ?? 0,
          });
          return original(options);
        };
      });
      // First sign-in: password, then she creates a passkey (no passkey yet, so autofill offers nothing).
      let callback = tab.callback();
      let auth = await password(tab, carol);
      await tab.page.getByRole('link', { name: 'Use Passkey instead' }).click();
      await registerAndSaveCodes(tab, 'passkey', 'Phone');
      const first = await redeem(await callback, auth);
      expect(sorted(first.claims.amr)).toEqual(['mfa', 'pwd', 'swk', 'user']);
      const [passkey] = await services.factors.store.list(carol.id, 'passkey');
      expect(passkey).toMatchObject({ label: 'Phone', data: { backupEligible: true, backedUp: true, discoverable: true, attachment: 'platform' } });
      await signOut(tab, first.tokens.id_token!);

      // The login page asks for passkeys in autofill as it loads; nothing is clicked.
      callback = tab.callback();
      auth = await rp.authorizationUrl();
      await tab.page.goto(auth.url);
      const url = await callback;
      expect(requests.at(-1)).toEqual({ page: 'Sign in · Twofold', mediation: 'conditional', userVerification: 'required', allowCredentials: 0 });
      const { claims } = await redeem(url, auth);
      expect(claims.sub).toBe(carol.id);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['mfa', 'swk', 'user']);
      expect(unexpected(tab.errors)).toEqual([]);
    } finally {
      await tab.context.close();
    }
  });

  test('a user with TOTP and a key chooses the key at the second step', async () => {
    const dave = await newUser();
    await enrolTotp(services, dave.id);
    const tab = await openTab();
    try {
      await seedKey(tab, dave);
      const callback = tab.callback();
      const auth = await password(tab, dave);
      // TOTP was enrolled first, so it is offered first; the key is one click away.
      await tab.page.getByLabel(/Enter the 6-digit code/).waitFor();
      await expect(tab.page.locator('input[name="code"]').count()).resolves.toBe(1);
      await tab.page.getByRole('link', { name: 'Use Security key instead' }).click();
      await expect(tab.page.locator('input[name="code"]').count()).resolves.toBe(0);
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      const { claims } = await redeem(await callback, auth);
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
      expect(claims.acr).toBe('urn:twofold:acr:3');
      // The key is remembered as the factor used last, so it is offered first next time.
      await expect(services.db.selectFrom('accounts').select('last_factor_id').where('id', '=', dave.id).executeTakeFirst()).resolves.toEqual({
        last_factor_id: 'webauthn',
      });
      expect(unexpected(tab.errors)).toEqual([]);
    } finally {
      await tab.context.close();
    }
  });

  test('a TOTP user adds a security key later, at the app’s request, then signs in with password + key', async () => {
    const frank = await newUser();
    const secret = await enrolTotp(services, frank.id);
    const tab = await openTab();
    try {
      // The app's "Add a security key" button: an authorization request with twofold_enroll=webauthn.
      let callback = tab.callback();
      let auth = await password(tab, frank, { twofold_enroll: 'webauthn' });
      await expect(tab.page.title()).resolves.toBe('Two-step verification · Twofold');
      await tab.page.getByLabel(/Enter the 6-digit code/).fill(totpCode(secret));
      await tab.page.getByRole('button', { name: 'Verify' }).click();
      await tab.page.waitForLoadState();
      await expect(tab.page.title()).resolves.toBe('Add Security key · Twofold');
      await tab.page.getByText('WebAuthn Test App asked you to add a sign-in method').waitFor();
      await registerAndSaveCodes(tab, 'key', 'Laptop key');
      let { claims, tokens } = await redeem(await callback, auth);
      expect(claims.sub).toBe(frank.id);
      expect(claims.amr).toEqual(expect.arrayContaining(['otp', 'pwd']));
      expect((await services.factors.store.list(frank.id, 'webauthn')).map((k) => k.label)).toEqual(['Laptop key']);
      expect(await services.factors.store.list(frank.id, 'totp')).toHaveLength(1);

      await signOut(tab, tokens.id_token!);

      // Next sign-in: password, then the new key.
      callback = tab.callback();
      auth = await password(tab, frank);
      await tab.page.getByText('Use your security key (Laptop key)').waitFor();
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      ({ claims } = await redeem(await callback, auth));
      expect(claims.acr).toBe('urn:twofold:acr:3');
      expect(sorted(claims.amr)).toEqual(['hwk', 'mfa', 'pwd', 'user']);
      expect(unexpected(tab.errors)).toEqual([]);
    } finally {
      await tab.context.close();
    }
  });

  test('an answer made on another origin is refused, though it signs this interaction’s challenge', async () => {
    const erin = await newUser();
    const tab = await openTab();
    try {
      await seedKey(tab, erin);
      const { uid, options } = await atKeyStep(tab, erin);
      // A look-alike site on another port: same RP ID (localhost), so the key answers there, for the same challenge.
      const elsewhere = `http://localhost:${await freePort()}`;
      const answer = await answerElsewhere(tab, elsewhere, options);
      expect(JSON.parse(Buffer.from(JSON.parse(answer).response.clientDataJSON, 'base64url').toString()).origin).toBe(elsewhere);
      const refused = await postAnswer(tab, uid, answer);
      expect(refused.status).toBe(401);
      expect(refused.body).toContain('role="alert"');
      const failures = (await listAudit(services.db, { accountId: erin.id, type: 'factor.failed' })).map((e) => e.details);
      expect(failures).toEqual([expect.objectContaining({ factor: 'webauthn', reason: 'wrong' })]);
    } finally {
      await tab.context.close();
    }
  });

  test('an answer for another RP ID is refused, even from an origin the provider allows', async () => {
    const frank = await newUser();
    const tab = await openTab();
    try {
      const key = await seedKey(tab, frank);
      const { uid, options } = await atKeyStep(tab, frank);
      // The same key material registered under another RP ID (app.localhost), used from an allowed origin.
      await tab.cdp.send('WebAuthn.removeCredential', { authenticatorId: tab.authenticatorId, credentialId: key.credentialId.toString('base64') });
      await tab.cdp.send('WebAuthn.addCredential', { authenticatorId: tab.authenticatorId, credential: cdpCredential(key, 'app.localhost') as never });
      const answer = await answerElsewhere(tab, sideOrigin, { ...options, rpId: 'app.localhost' });
      const clientData = JSON.parse(Buffer.from(JSON.parse(answer).response.clientDataJSON, 'base64url').toString());
      expect(clientData.origin).toBe(sideOrigin);
      const refused = await postAnswer(tab, uid, answer);
      expect(refused.status).toBe(401);
      expect(await auditTypes(frank)).toContain('factor.failed');
      expect(await auditTypes(frank)).not.toContain('factor.used');
    } finally {
      await tab.context.close();
    }
  });

  test('a replayed answer is refused in a later sign-in', async () => {
    const grace = await newUser();
    const tab = await openTab();
    try {
      await seedKey(tab, grace);
      let callback = tab.callback();
      const first = await atKeyStep(tab, grace);
      const posted = tab.page.waitForRequest((req) => req.method() === 'POST' && req.url().endsWith('/factor/webauthn'));
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      const captured = new URLSearchParams((await posted).postData()!).get('response')!;
      await redeem(await callback, first.auth);

      // A new sign-in (prompt=login: the session is not enough): someone who recorded the answer sends it again.
      const second = await atKeyStep(tab, grace, { prompt: 'login' });
      const refused = await postAnswer(tab, second.uid, captured);
      expect(refused.status).toBe(401);
      expect(await listAudit(services.db, { accountId: grace.id, type: 'factor.failed' })).toHaveLength(1);
      // The key itself still works (a fresh answer to the fresh challenge).
      callback = tab.callback();
      await tab.page.goto(`${server.issuer}/interaction/${second.uid}`);
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      const { claims } = await redeem(await callback, second.auth);
      expect(claims.sub).toBe(grace.id);
    } finally {
      await tab.context.close();
    }
  });

  test('a signature counter that went backwards (a cloned key) is refused and audited', async () => {
    const heidi = await newUser();
    const tab = await openTab();
    try {
      const key = await seedKey(tab, heidi);
      const callback = tab.callback();
      const { auth } = await atKeyStep(tab, heidi);
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      await redeem(await callback, auth);
      const [stored] = await services.factors.store.list(heidi.id, 'webauthn');
      expect(stored!.counter).toBeGreaterThan(0);

      // A copy of the key that was made before that sign-in: its counter is behind the server's.
      await tab.cdp.send('WebAuthn.removeCredential', { authenticatorId: tab.authenticatorId, credentialId: key.credentialId.toString('base64') });
      await tab.cdp.send('WebAuthn.addCredential', { authenticatorId: tab.authenticatorId, credential: cdpCredential(key, 'localhost', 0) as never });
      await atKeyStep(tab, heidi, { prompt: 'login' });
      await tab.page.getByRole('button', { name: 'Use security key' }).click();
      await tab.page.waitForLoadState();
      await expect(tab.page.getByRole('alert').first().textContent()).resolves.toContain('may have been copied');
      const clones = await listAudit(services.db, { accountId: heidi.id, type: 'factor.suspected_clone' });
      expect(clones).toEqual([expect.objectContaining({ details: expect.objectContaining({ factor: 'webauthn', credential: stored!.id }) })]);
      // The server's counter did not move back.
      expect((await services.factors.store.list(heidi.id, 'webauthn'))[0]!.counter).toBe(stored!.counter);
    } finally {
      await tab.context.close();
    }
  });
});
