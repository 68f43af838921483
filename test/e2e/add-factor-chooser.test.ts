/**
 * `twofold_enroll=any` over HTTP on both databases, with openid-client as the
 * app, a scripted user agent and a real SMTP server for the email code:
 *
 * - a TOTP user proves TOTP, sees the list of the methods the app allows with
 *   TOTP marked as in use, looks at one, goes back, picks email code, proves
 *   the address and lands back at the app with a code;
 * - a method held once is marked as replaced (the list in German);
 * - an app whose policy leaves one method to add skips the list;
 * - a forged pick (a method the policy leaves out, an unknown id) is a clear
 *   400 page that changes nothing; cancelling from the list is access_denied.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { DIALECTS, createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { UserAgent, formAction, type Hop } from '../helpers/user-agent.ts';
import { relyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { startMailSink, type MailSink } from '../helpers/mail-sink.ts';
import { enrolTotp, totpCode } from '../helpers/factors.ts';
import { createAccount } from '../../src/accounts/accounts.ts';
import { createClient } from '../../src/oidc/clients.ts';
import { listAudit } from '../../src/security/audit.ts';
import { GLOBAL, savePolicy } from '../../src/policy/store.ts';
import type { Account } from '../../src/db/schema.ts';
import type { Services } from '../../src/services.ts';

const REDIRECT = 'http://app.example.test/callback';
const PASSWORD = 'a long password';

const title = (html: string) => /<title>([^<]*)<\/title>/.exec(html)?.[1];
const uidOf = (hop: Hop) => /\/interaction\/([^/"?]+)/.exec(hop.body)![1]!;

/** The list's entries: each radio's value with the text shown for it. */
function choicesOf(html: string): Array<{ id: string; text: string }> {
  return [...html.matchAll(/<div class="choice">([\s\S]*?)<\/div>/g)].map((m) => ({
    id: /<input type="radio" name="factor" value="([^"]+)"/.exec(m[1]!)![1]!,
    text: m[1]!
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  }));
}

let sink: MailSink;
beforeAll(async () => {
  sink = await startMailSink();
});
afterAll(async () => {
  await sink?.close();
});

for (const kind of DIALECTS) {
  describe(`choosing the method to add (twofold_enroll=any) on ${kind}`, () => {
    let database: TestDatabase;
    let server: TestServer;
    let services: Services;
    /** Allows every factor. */
    let notes: RelyingParty;
    /** Allows TOTP only: one method to add. */
    let ledger: RelyingParty;
    /** Allows TOTP and email codes. */
    let mail: RelyingParty;
    let users = 0;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      server = await startTestServer(database, { MFA: 'optional', SMTP_URL: sink.url, MAIL_FROM: 'Example ID <id@example.test>' });
      services = server.opened.services;
      await savePolicy(services.db, GLOBAL, { mfa: 'optional' }, 'test');
      const app = async (name: string, factors?: string[]) => {
        const client = await createClient(services.db, services.sealer, { name, redirectUris: [REDIRECT], firstParty: true });
        if (factors)
          await services.db
            .updateTable('clients')
            .set({ policy: JSON.stringify({ factors }) })
            .where('client_id', '=', client.clientId)
            .execute();
        return relyingParty(server.issuer, client.clientId, client.clientSecret, REDIRECT);
      };
      notes = await app('Notes');
      ledger = await app('Ledger', ['totp']);
      mail = await app('Mail', ['totp', 'email-code']);
    });

    afterAll(async () => {
      await server?.close();
      await database?.close();
    });

    async function newUser(): Promise<{ account: Account; secret: string; email: string }> {
      const email = `chooser-${kind}-${++users}@example.test`;
      const account = await createAccount(services.db, services.hasher, { username: `choose${kind}${users}`, email, password: PASSWORD });
      return { account, secret: await enrolTotp(services, account.id), email };
    }

    /** Password, then the TOTP code the policy asks of this account: the page after it. */
    async function signIn(agent: UserAgent, account: Account, secret: string, app: RelyingParty, extra: Record<string, string> = {}) {
      const auth = await app.authorizationUrl({ twofold_enroll: 'any', ...extra });
      const login = await agent.follow(auth.url);
      const challenge = await agent.submit(formAction(login.body), { login: account.username, password: PASSWORD });
      expect(title(challenge.body)).toBe(extra.ui_locales === 'de' ? 'Bestätigung in zwei Schritten · Twofold' : 'Two-step verification · Twofold');
      return { auth, page: await agent.submit(formAction(challenge.body), { code: totpCode(secret) }) };
    }

    async function claimsOf(hop: Hop, auth: Awaited<ReturnType<RelyingParty['authorizationUrl']>>, app: RelyingParty) {
      expect(hop.location).toMatch(/^http:\/\/app\.example\.test\/callback\?code=/);
      return (await app.redeem(hop.location!, auth)).claims()!;
    }

    const credentials = async (accountId: string) => (await services.factors.store.list(accountId)).map((c) => `${c.factorId}:${c.id}`).sort();

    test('a TOTP user picks email code from the list, proves the address and returns to the app', async () => {
      const { account, secret, email } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { auth, page } = await signIn(agent, account, secret, notes);
      const uid = uidOf(page);

      // The list: every method the app allows (no SMS gateway here, so no text message), backup codes last.
      expect(page.status).toBe(200);
      expect(title(page.body)).toBe('Add a sign-in method · Twofold');
      expect(page.body).toContain('Notes asked you to add a sign-in method.');
      expect(page.body).toContain(`<form method="get" action="/interaction/${uid}">`);
      expect(page.body).toContain('<legend>Methods you can add</legend>');
      const choices = choicesOf(page.body);
      expect(choices.map((c) => c.id)).toEqual(['totp', 'webauthn', 'passkey', 'email-code', 'backup-codes']);
      expect(choices[0]!.text).toContain('In use. You can add another.');
      for (const other of choices.slice(1)) expect(other.text).not.toContain('In use');
      // Each radio is labelled by its name and described by its description.
      for (const { id } of choices) {
        expect(page.body).toMatch(new RegExp(`<label class="check"><input type="radio" name="factor" value="${id}" aria-describedby="choice-${id}" required>`));
        expect(page.body).toContain(`<p class="muted" id="choice-${id}">`);
      }
      expect(page.body).toContain(`<a href="/interaction/${uid}/abort">Cancel and return to Notes</a>`);

      // A look at one, and back to the list: nothing was started, nothing stored.
      const before = await credentials(account.id);
      const key = await agent.follow(`/interaction/${uid}?factor=webauthn`);
      expect(title(key.body)).toBe('Add Security key · Twofold');
      expect(key.body).toContain(`<a href="/interaction/${uid}">Choose a different method</a>`);
      expect(key.body).not.toContain('instead</a>');
      const again = await agent.follow(`/interaction/${uid}`);
      expect(choicesOf(again.body).map((c) => c.id)).toEqual(choices.map((c) => c.id));
      expect(await credentials(account.id)).toEqual(before);

      // Email code: send a code to the address, type it.
      const enrol = await agent.follow(`/interaction/${uid}?factor=email-code`);
      expect(title(enrol.body)).toBe('Add Email code · Twofold');
      expect(enrol.body).toContain(`<a href="/interaction/${uid}">Choose a different method</a>`);
      const sent = await agent.submit(formAction(enrol.body), { email, action: 'send' });
      expect(sent.url).toMatch(/\?factor=email-code$/);
      expect(sent.body).toContain('name="code"');
      const codes = await agent.submit(formAction(sent.body), { code: sink.latestCode(email) });
      // The account had no backup codes: offered once, as after any enrolment.
      expect(title(codes.body)).toBe('Save your backup codes · Twofold');
      const done = await agent.submit(formAction(codes.body), { saved: 'yes' });
      const claims = await claimsOf(done, auth, notes);
      expect(claims.sub).toBe(account.id);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));

      const stored = await services.factors.store.list(account.id);
      expect(stored.map((c) => c.factorId).sort()).toEqual(['backup-codes', 'email-code', 'totp']);
      expect(stored.find((c) => c.factorId === 'email-code')!.secret).toBe(email);
      const enrolled = (await listAudit(services.db, { accountId: account.id })).filter((e) => e.type === 'factor.enrolled');
      expect(enrolled).toHaveLength(2);
    });

    test('a method the account holds once is marked as replaced; the list speaks German when asked', async () => {
      const { account, secret, email } = await newUser();
      await services.factors.store.insert(account.id, 'email-code', { label: 'Email', secret: email, data: { channel: 'email' } });
      const agent = new UserAgent(server.issuer);
      const { page } = await signIn(agent, account, secret, notes, { ui_locales: 'de' });
      expect(page.body).toContain('<html lang="de">');
      expect(title(page.body)).toBe('Anmeldemethode hinzufügen · Twofold');
      expect(page.body).toContain('Notes bittet Sie, eine Anmeldemethode hinzuzufügen.');
      const choices = choicesOf(page.body);
      expect(choices.map((c) => c.id)).toEqual(['totp', 'webauthn', 'passkey', 'email-code', 'backup-codes']);
      expect(choices[0]!.text).toContain('Bereits eingerichtet. Sie können eine weitere hinzufügen.');
      expect(choices[3]!.text).toContain('Bereits eingerichtet. Eine neue Einrichtung ersetzt die bisherige.');
      // The enrolment page of a method held once says it replaces it, as for a named request.
      const enrol = await agent.follow(`/interaction/${uidOf(page)}?factor=email-code`);
      expect(enrol.body).toContain('Dabei wird Ihre bisherige Einrichtung von „');
      expect(enrol.body).toContain('Andere Methode wählen');
    });

    test('an app whose policy leaves one method to add goes straight to it, and back to the app', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { auth, page } = await signIn(agent, account, secret, ledger);
      expect(title(page.body)).toBe('Add Authenticator app · Twofold');
      expect(page.body).not.toContain('name="factor"');
      expect(page.body).not.toContain('Choose a different method');
      const newSecret = /<code class="key">([^<]+)<\/code>/.exec(page.body)![1]!.replace(/\s+/g, '');
      const done = await agent.submit(formAction(page.body), { label: 'Second phone', code: totpCode(newSecret) });
      // Backup codes follow any enrolment of an account that has none, as without the list.
      expect(title(done.body)).toBe('Save your backup codes · Twofold');
      const claims = await claimsOf(await agent.submit(formAction(done.body), { saved: 'yes' }), auth, ledger);
      expect(claims.sub).toBe(account.id);
      expect((await services.factors.store.list(account.id, 'totp')).map((c) => c.label).sort()).toEqual(['Second phone', 'Test phone']);
    });

    test('a forged pick is refused with a page and changes nothing; cancelling from the list is access_denied', async () => {
      const { account, secret } = await newUser();
      const agent = new UserAgent(server.issuer);
      const { page } = await signIn(agent, account, secret, mail);
      const uid = uidOf(page);
      expect(choicesOf(page.body).map((c) => c.id)).toEqual(['totp', 'email-code']);
      const before = await credentials(account.id);

      for (const forged of ['webauthn', 'backup-codes', 'carrier-pigeon', 'totp&factor=email-code', '%3Cscript%3E']) {
        const refused = await agent.request(`/interaction/${uid}?factor=${forged}`);
        expect(refused.status).toBe(400);
        expect(title(refused.body)).toBe('This method cannot be added · Twofold');
        expect(refused.body).toContain('The sign-in method you chose is not one you can add here.');
        expect(refused.body).toContain(`<a href="/interaction/${uid}">`);
        expect(refused.body).not.toContain('<script>');
      }
      // Posting an enrolment of a method not on the list is sent back to the current step.
      const posted = await agent.request(`/interaction/${uid}/enroll/webauthn`, { form: { response: '{}', label: 'Forged' } });
      expect(posted.status).toBe(302);
      expect(await credentials(account.id)).toEqual(before);
      expect((await listAudit(services.db, { accountId: account.id })).map((e) => e.type)).not.toContain('factor.enrolled');

      // The list is still there, and cancelling returns to the app.
      expect(choicesOf((await agent.follow(`/interaction/${uid}`)).body).map((c) => c.id)).toEqual(['totp', 'email-code']);
      const cancelled = await agent.follow(`/interaction/${uid}/abort`);
      expect(new URL(cancelled.location!).searchParams.get('error')).toBe('access_denied');
      expect(await credentials(account.id)).toEqual(before);
    });
  });
}
