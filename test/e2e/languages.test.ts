/**
 * The pages in the person's language, over HTTP with openid-client as the app:
 * - `ui_locales=de` gives German from the login page through the second step
 *   (`<html lang="de">`), and wins over the browser's Accept-Language;
 * - Accept-Language alone gives German too, the expired-sign-in page included;
 * - a language Twofold lacks falls back to the next one asked for, then to the default;
 * - discovery lists `ui_locales_supported`;
 * - in the pseudo-language (PSEUDO_LANGUAGE), the pages (login with the passkey
 *   button, a failed login, an enrolment, the second step, consent, sign-out,
 *   signed out, expired, an error, and the device flow's code entry, refused
 *   code, check, done and refused device) carry no plain English word: every
 *   text on them came from the catalogue, the factors' views' included.
 *
 * PGlite only: the database plays no part in the language.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { Catalogue, PSEUDO_LANGUAGE } from '../../src/i18n/catalogue.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';

const REDIRECT = 'http://app.example.test/callback';
const THIRD_PARTY_REDIRECT = 'http://other.example.test/callback';
const PASSWORD = 'a long password';
const APP = 'Sprach-App';
const THIRD_PARTY_APP = 'Partner-App';
const DEVICE = 'Sprach-TV';

const htmlLang = (page: Hop) => /<html lang="([^"]+)">/.exec(page.body)?.[1];
const heading = (page: Hop) => /<h1>([^<]*)<\/h1>/.exec(page.body)?.[1];
const pseudoText = (key: string) => new Catalogue({ pseudo: true }).text(PSEUDO_LANGUAGE, key);

/** Names a page shows as they are: the brand, the apps', the account's, the authenticator apps the TOTP enrolment suggests. */
const NAMES = [
  'Twofold',
  APP,
  THIRD_PARTY_APP,
  DEVICE,
  'anna',
  'Google Authenticator',
  'Microsoft Authenticator',
  'Authy',
  '1Password',
  'Bitwarden',
  'FreeOTP',
  'Aegis',
];

/**
 * The words of a page a person reads that contain an unmarked letter: its text (title, headings,
 * labels, buttons, links), without scripts, NAMES and `skip` (blocks that are not the page's own
 * words: a factor's view, the library's error detail).
 */
function plainWords(html: string, skip: RegExp[] = []): string[] {
  let text = html.replace(/<script[\s\S]*?<\/script>/g, '');
  for (const pattern of skip) text = text.replace(pattern, ' ');
  text = text
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&[a-z]+;/g, ' ');
  for (const name of NAMES) text = text.replaceAll(name, ' ');
  return text.split(/\s+/).filter((w) => /[A-Za-z]/.test(w));
}

describe("the pages in the person's language", () => {
  let database: TestDatabase;
  let server: TestServer;
  let pseudo: TestServer;
  let rp: RelyingParty;
  let pseudoRp: RelyingParty;
  let pseudoThirdParty: RelyingParty;
  let tv: oidc.Configuration;
  let secret: string;
  let carlasSecret: string;

  beforeAll(async () => {
    database = await createTestDatabase('pglite');
    // Everyone needs a second step: the second-factor and enrolment pages are reached from the password.
    [server, pseudo] = await Promise.all([
      startTestServer(database, { MFA: 'required' }),
      startTestServer(database, { MFA: 'required', PSEUDO_LANGUAGE: 'true' }),
    ]);
    const { db, hasher, sealer } = server.opened.services;
    await savePolicy(db, GLOBAL, { mfa: 'required', trustedDevices: { enabled: true, days: 30 } }, 'test');
    const anna = await createAccount(db, hasher, { username: 'anna', password: PASSWORD });
    secret = await enrolTotp(server.opened.services, anna.id);
    await createAccount(db, hasher, { username: 'bernd', password: PASSWORD });
    const carla = await createAccount(db, hasher, { username: 'carla', password: PASSWORD });
    carlasSecret = await enrolTotp(server.opened.services, carla.id);
    const app = await createClient(db, sealer, { name: APP, redirectUris: [REDIRECT], firstParty: true });
    rp = await relyingParty(server.issuer, app.clientId, app.clientSecret, REDIRECT);
    pseudoRp = await relyingParty(pseudo.issuer, app.clientId, app.clientSecret, REDIRECT);
    const third = await createClient(db, sealer, { name: THIRD_PARTY_APP, redirectUris: [THIRD_PARTY_REDIRECT] });
    pseudoThirdParty = await relyingParty(pseudo.issuer, third.clientId, third.clientSecret, THIRD_PARTY_REDIRECT);
    const device = await createClient(db, sealer, { name: DEVICE, deviceFlow: true, firstParty: true });
    tv = await oidc.discovery(new URL(pseudo.issuer), device.clientId, { client_secret: device.clientSecret! }, oidc.ClientSecretBasic(device.clientSecret!), {
      execute: [oidc.allowInsecureRequests],
    });
  });

  afterAll(async () => {
    await Promise.all([server?.close(), pseudo?.close()]);
    await database?.close();
  });

  async function signIn(agent: UserAgent, app: RelyingParty, username: string, extra: Record<string, string> = {}) {
    const login = await agent.follow((await app.authorizationUrl(extra)).url);
    const next = await agent.submit(formAction(login.body), { login: username, password: PASSWORD });
    return { login, next };
  }

  test('ui_locales=de: the login page, a refused password and the second step in German, <html lang="de">', async () => {
    // The browser prefers English: the app's ui_locales wins.
    const agent = new UserAgent(server.issuer, { 'accept-language': 'en' });
    const login = await agent.follow((await rp.authorizationUrl({ ui_locales: 'de' })).url);
    expect(htmlLang(login)).toBe('de');
    expect(login.body).toContain('<title>Anmelden · Twofold</title>');
    expect(login.body).toContain('<label for="login">Benutzername oder E-Mail-Adresse</label>');
    expect(login.body).toContain('<label for="password">Passwort</label>');
    expect(login.body).toContain(`weiter zu <strong>${APP}</strong>`);
    expect(login.body).toContain(`Abbrechen und zurück zu ${APP}`);

    const wrong = await agent.submit(formAction(login.body), { login: 'anna', password: 'not the password' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('<p class="alert" role="alert">Benutzername oder Passwort ist falsch.</p>');

    const second = await agent.submit(formAction(wrong.body), { login: 'anna', password: PASSWORD });
    expect(second.status).toBe(200);
    expect(htmlLang(second)).toBe('de');
    expect(heading(second)).toBe('Bestätigung in zwei Schritten');
    expect(second.body).toContain('>Bestätigen</button>');
    expect(second.body).toContain('Auf diesem Gerät 30 Tage lang nicht mehr fragen');
    expect(second.body).not.toContain('Two-step verification');

    // The language belongs to the sign-in: the code's page after it speaks German too, and the sign-in completes.
    const done = await agent.submit(formAction(second.body), { code: totpCode(secret) });
    expect(done.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
  });

  test('ui_locales=de: the enrolment page of an account without a second factor', async () => {
    const { next } = await signIn(new UserAgent(server.issuer), rp, 'bernd', { ui_locales: 'de' });
    expect(htmlLang(next)).toBe('de');
    expect(heading(next)).toBe('Bestätigung in zwei Schritten einrichten');
    expect(next.body).toContain('Ihr Konto benötigt für die Anmeldung einen zweiten Schritt.');
    expect(next.body).toContain('>Aktivieren</button>');
  });

  test('Accept-Language alone gives German; the expired-sign-in page too', async () => {
    const agent = new UserAgent(server.issuer, { 'accept-language': 'fr-CH, de;q=0.8, en;q=0.5' });
    const { login, next } = await signIn(agent, rp, 'anna');
    expect(htmlLang(login)).toBe('de');
    expect(heading(login)).toBe('Anmelden');
    expect(heading(next)).toBe('Bestätigung in zwei Schritten');

    const expired = await agent.request('/interaction/no-such-sign-in');
    expect(expired.status).toBe(400);
    expect(htmlLang(expired)).toBe('de');
    expect(heading(expired)).toBe('Anmeldung abgelaufen');
  });

  test('a language Twofold lacks: the next one asked for, else the default (English)', async () => {
    const french = await new UserAgent(server.issuer).follow((await rp.authorizationUrl({ ui_locales: 'fr' })).url);
    expect(htmlLang(french)).toBe('en');
    expect(heading(french)).toBe('Sign in');
    expect(french.body).toContain('<label for="login">Username or email</label>');

    const thenGerman = await new UserAgent(server.issuer).follow((await rp.authorizationUrl({ ui_locales: 'fr-CA de-AT' })).url);
    expect(htmlLang(thenGerman)).toBe('de');

    // No ui_locales and a browser asking for what Twofold lacks: the default.
    const { login } = await signIn(new UserAgent(server.issuer, { 'accept-language': 'ja' }), rp, 'anna');
    expect(htmlLang(login)).toBe('en');
  });

  test('discovery lists the languages: English and German, and the pseudo-language where it is switched on', async () => {
    const metadata = async (issuer: string) =>
      (await (await fetch(new URL('/.well-known/openid-configuration', issuer))).json()) as { ui_locales_supported?: string[] };
    expect((await metadata(server.issuer)).ui_locales_supported).toEqual(['en', 'de']);
    expect((await metadata(pseudo.issuer)).ui_locales_supported).toEqual(['en', 'de', PSEUDO_LANGUAGE]);
  });

  test('in the pseudo-language no page Twofold writes shows a word that did not come from the catalogue', async () => {
    // Asked for by the app, and by the browser for the pages outside a sign-in (signed out, expired).
    const agent = new UserAgent(pseudo.issuer, { 'accept-language': PSEUDO_LANGUAGE });
    const asked = { ui_locales: PSEUDO_LANGUAGE };

    // The login page, with the passkey factor's button on it.
    const login = await agent.follow((await pseudoRp.authorizationUrl(asked)).url);
    expect(htmlLang(login)).toBe(PSEUDO_LANGUAGE);
    expect(login.body).toContain('class="first-factor"');
    expect(plainWords(login.body)).toEqual([]);

    const wrong = await agent.submit(formAction(login.body), { login: 'anna', password: 'not the password' });
    expect(wrong.body).toContain('role="alert">⟦');
    expect(plainWords(wrong.body)).toEqual([]);

    // An enrolment (the authenticator app's view; its key and QR code are data).
    const { next: enrol } = await signIn(new UserAgent(pseudo.issuer), pseudoRp, 'bernd', asked);
    expect(heading(enrol)).toBe(pseudoText('enroll.title'));
    expect(plainWords(enrol.body, [/<code class="key">[^<]*<\/code>/g])).toEqual([]);

    // The second step, then consent for a third-party app.
    const { next } = await signIn(agent, pseudoThirdParty, 'anna', asked);
    expect(heading(next)).toBe(pseudoText('secondFactor.title'));
    expect(plainWords(next.body)).toEqual([]);
    const consent = await agent.submit(formAction(next.body), { code: totpCode(secret, 1) });
    expect(consent.body).toContain('/consent"');
    expect(plainWords(consent.body)).toEqual([]);

    const signOut = await agent.follow('/session/end');
    expect(signOut.body).toContain('op.logoutForm');
    expect(plainWords(signOut.body)).toEqual([]);
    const form = /<form[^>]*action="([^"]+)"[\s\S]*?name="xsrf" value="([^"]+)"/.exec(signOut.body)!;
    const signedOut = await agent.submit(form[1]!, { xsrf: form[2]!, logout: 'yes' });
    expect(signedOut.body).toContain('⟦');
    expect(plainWords(signedOut.body)).toEqual([]);

    const expired = await agent.request('/interaction/no-such-sign-in');
    expect(plainWords(expired.body)).toEqual([]);

    // The library's own words (the error's code and description) are shown as they are, beneath the page's.
    const unknownApp = await agent.request(
      `/auth?${new URLSearchParams({ client_id: 'nope', response_type: 'code', scope: 'openid', redirect_uri: REDIRECT })}`,
    );
    expect(unknownApp.status).toBe(400);
    expect(plainWords(unknownApp.body, [/<p class="muted">[\s\S]*?<\/p>/g])).toEqual([]);
  });

  test("in the pseudo-language the device flow's pages show no word that did not come from the catalogue", async () => {
    const agent = new UserAgent(pseudo.issuer, { 'accept-language': PSEUDO_LANGUAGE });
    const xsrf = (page: Hop) => /name="xsrf" value="([^"]+)"/.exec(page.body)![1]!;
    // The code on the confirmation page is the device's, shown as it is.
    const userCode = /<code class="key">[^<]*<\/code>/g;

    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const entry = await agent.follow(started.verification_uri);
    expect(entry.body).toContain('name="user_code"');
    expect(plainWords(entry.body)).toEqual([]);
    const wrong = await agent.submit(formAction(entry.body), { xsrf: xsrf(entry), user_code: 'BBBB-BBBB' });
    expect(wrong.status).toBe(400);
    expect(plainWords(wrong.body)).toEqual([]);
    const confirm = await agent.submit(formAction(wrong.body), { xsrf: xsrf(wrong), user_code: started.user_code });
    expect(confirm.body).toContain(started.user_code);
    expect(plainWords(confirm.body, [userCode])).toEqual([]);

    const login = await agent.submit(formAction(confirm.body), { xsrf: xsrf(confirm), user_code: started.user_code, confirm: 'yes' });
    const second = await agent.submit(formAction(login.body), { login: 'carla', password: PASSWORD });
    const done = await agent.submit(formAction(second.body), { code: totpCode(carlasSecret) });
    expect(heading(done)).toBe(pseudoText('device.connectedTitle'));
    expect(plainWords(done.body)).toEqual([]);

    // A device the person refuses.
    const refused = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const fresh = await agent.follow(refused.verification_uri);
    const check = await agent.submit(formAction(fresh.body), { xsrf: xsrf(fresh), user_code: refused.user_code });
    const cancelled = await agent.submit(formAction(check.body), { xsrf: xsrf(check), user_code: refused.user_code, abort: 'yes' });
    expect(heading(cancelled)).toBe(pseudoText('device.notConnectedTitle'));
    expect(plainWords(cancelled.body)).toEqual([]);
  });
});
