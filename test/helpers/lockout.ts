/**
 * What the lockout tests share: browsers behind the trusted proxy (each
 * request may claim its own client address through X-Forwarded-For, as an
 * attacker spread over many addresses would), an owner's browser that has
 * signed in before (it keeps only the known-browser cookie, as after signing
 * out), and a passkey whose owner and forger both answer the login page.
 */
import crypto from 'node:crypto';
import { UserAgent, formAction, type Hop } from './user-agent.ts';
import { totpCode } from './factors.ts';
import { SoftwareAuthenticator, newSeedKey, seedWebAuthnCredential, formInput, optionsInPage } from './webauthn.ts';
import { KNOWN_BROWSER_COOKIE } from '../../src/security/device-cookie.ts';
import type { Services } from '../../src/services.ts';

/** The i-th of many client addresses (198.18.0.0/15, for benchmarks). */
export const addressOf = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;

let browsers = 0;

/** A browser behind the trusted proxy at an address of its own; a request may claim another (`headers`). */
export class ProxiedAgent extends UserAgent {
  constructor(
    origin: string,
    readonly ip = `198.19.${(++browsers >> 8) & 255}.${browsers & 255}`,
  ) {
    super(origin);
  }

  override request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
    return super.request(url, { ...init, headers: { 'x-forwarded-for': this.ip, ...init.headers } });
  }

  /** As after signing out: the provider's session is gone, the known-browser cookie stays. */
  forgetSession(): void {
    for (const name of [...this.cookies.keys()]) if (name !== KNOWN_BROWSER_COOKIE) this.cookies.delete(name);
  }

  get known(): boolean {
    return this.cookies.has(KNOWN_BROWSER_COOKIE);
  }
}

/** A 6-digit code that is not valid in any step the window accepts. */
export function wrongCode(secret: string): string {
  const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, o)));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}

/** The interaction id a page's links and forms carry. */
export const uidOf = (html: string) => /\/interaction\/([^/"?]+)/.exec(html)![1]!;

/** The action of the page's WebAuthn (passkey) form. */
export function webauthnAction(html: string): string {
  const m = /<form[^>]*action="([^"]+)"[^>]*>\s*(?:(?!<\/form>)[\s\S])*data-webauthn=/.exec(html);
  if (!m) throw new Error('no WebAuthn form on page');
  return m[1]!;
}

/**
 * A passkey enrolled for an account: `owner` answers with it; `forge` answers
 * naming the same credential and user handle (both travel in every assertion
 * the owner makes) but signed with the forger's own key.
 */
export async function enrolPasskey(services: Services, accountId: string) {
  const seed = newSeedKey();
  await seedWebAuthnCredential(services, accountId, seed, { factorId: 'passkey', label: 'Phone' });
  const key = {
    credentialId: seed.credentialId,
    privateKey: seed.privateKey,
    publicKey: seed.publicKey,
    userHandle: seed.userHandle.toString('base64url'),
    rpId: services.config.webauthn.rpId,
    counter: 0,
    be: false,
  };
  const owner = new SoftwareAuthenticator({ origin: services.config.ISSUER });
  owner.keys.push(key);
  const forger = new SoftwareAuthenticator({ origin: services.config.ISSUER, counterStep: 0 });
  forger.keys.push({ ...key });
  const forgerKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    /** The owner's answer to the options on a login page. */
    answer: (page: string) => formInput(owner.assert(optionsInPage(page))),
    /** A forged answer to them. */
    forge: (page: string) => formInput(forger.assert(optionsInPage(page), { signWith: forgerKey, counter: 1000 })),
  };
}

export { formAction };
