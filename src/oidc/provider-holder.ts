/**
 * Holds the provider instance built from the current keys. Every process polls
 * the key fingerprint; when `twofold keys rotate` (in any process) changes the
 * keys, or the time comes for published next keys to sign (whichever process
 * looks first makes that switch in the database), each process rebuilds its
 * provider and swaps it in. All provider state is in the database, so
 * in-flight sign-ins continue on the new instance.
 */
import type Provider from 'oidc-provider';
import compose from 'koa-compose';
import type { Middleware } from 'koa';
import type { Services } from '../services.ts';
import { buildProvider } from './provider.ts';
import { activateDueKeys, keyFingerprint, loadKeyMaterial } from './keys.ts';
import { recordAudit } from '../security/audit.ts';
import { logger } from '../logger.ts';

export class ProviderHolder {
  #provider: Provider;
  #middleware: Middleware;
  #fingerprint: string;
  #timer: NodeJS.Timeout | undefined;
  readonly #services: Services;
  /** Called after a reload, so the host app can take the new cookie keys. */
  onReload?: (holder: ProviderHolder) => void;

  private constructor(services: Services, provider: Provider, fingerprint: string) {
    this.#services = services;
    this.#provider = provider;
    this.#middleware = compose(provider.middleware) as Middleware;
    this.#fingerprint = fingerprint;
  }

  static async create(services: Services): Promise<ProviderHolder> {
    await activateDue(services);
    const keys = await loadKeyMaterial(services.db, services.sealer, services.clock.now());
    return new ProviderHolder(services, buildProvider(services, keys), keys.fingerprint);
  }

  get current(): Provider {
    return this.#provider;
  }

  /** The provider's middleware stack, to run inside Twofold's Koa app (like koa-mount at /). */
  get middleware(): Middleware {
    return this.#middleware;
  }

  /** Cookie keys; the host app must sign with the same ones the provider verifies with. */
  get cookieKeys(): string[] {
    return this.#provider.keys as string[];
  }

  /** Rebuilds the provider if the stored keys changed. Returns whether it did. */
  async refresh(): Promise<boolean> {
    await activateDue(this.#services);
    const now = this.#services.clock.now();
    const fingerprint = await keyFingerprint(this.#services.db, now);
    if (fingerprint === this.#fingerprint) return false;
    const keys = await loadKeyMaterial(this.#services.db, this.#services.sealer, now);
    this.#provider = buildProvider(this.#services, keys);
    this.#middleware = compose(this.#provider.middleware) as Middleware;
    this.onReload?.(this);
    this.#fingerprint = keys.fingerprint;
    logger.info({ keys: keys.jwks.map((k) => (k as { kid?: string }).kid) }, 'signing keys changed; provider reloaded');
    return true;
  }

  startPolling(intervalMs: number): void {
    this.#timer = setInterval(() => {
      this.refresh().catch((err) => logger.warn({ err }, 'could not check signing keys'));
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}

/** Makes a due key switch (published next keys start to sign), audited once by the process that made it. */
async function activateDue(services: Services): Promise<void> {
  const activated = await activateDueKeys(services.db, services.config.KEY_RETIREMENT_TTL, services.clock.now());
  if (!activated.length) return;
  logger.info({ activated }, 'published next signing keys now sign');
  await recordAudit(services.db, 'keys.activated', { actor: 'system' }, { activated });
}
