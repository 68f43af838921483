/**
 * OIDC Back-Channel Logout 1.0, delivered so that an app that is down for a
 * moment still hears of it, and a slow app never holds up anyone's sign-out.
 *
 * node-oidc-provider's backchannelLogout feature makes and signs the logout
 * token (`client.backchannelLogout(sub, sid)`: iss, aud, iat, jti, the
 * back-channel-logout event, sid when the app registered
 * backchannel_logout_session_required, never a nonce) and POSTs it with a
 * 2.5 s timeout. At /session/end it awaits that POST before answering the
 * browser, and it tries once. So the method is replaced on each provider
 * instance by one that only queues a notice in PostgreSQL (table
 * backchannel_logouts), and the library's own method is what delivers it:
 * whichever provider process looks next (at once after queueing, and every
 * few seconds) claims due notices with FOR UPDATE SKIP LOCKED, signs a fresh
 * token and posts it; a failure is retried with backoff
 * (BACKCHANNEL_LOGOUT_BACKOFF, then four times longer each time) up to
 * BACKCHANNEL_LOGOUT_ATTEMPTS, then given up, logged and audited
 * (backchannel_logout.failed). Sessions ended elsewhere (a password change,
 * an admin disabling or removing an account, expiry) arrive through
 * services.sessionsEnded and are queued the same way.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type Kysely } from 'kysely';
import type Provider from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import type { Services } from '../services.ts';
import type { SessionsEndedHook } from '../accounts/end-sessions.ts';
import { recordAudit } from '../security/audit.ts';
import { logger } from '../logger.ts';

export interface LogoutNotice {
  clientId: string;
  accountId: string;
  sid?: string | null;
  /** What ended the session (end_session, password, disabled, removed, expired). */
  reason: string;
}

/** The library's delivery, as each provider instance's Client class has it. */
type Send = (this: { clientId: string; backchannelLogoutUri?: string }, sub: string, sid?: string) => Promise<void>;
const librarySend = new WeakMap<Provider, Send>();

/**
 * The URI a delivery in progress posts to. The library refuses loopback and private addresses (its SSRF guard,
 * meant for URIs that strangers register); here only an admin registers a back-channel logout URI, and apps on the
 * same host or network are the usual case, so for that one URI, during its delivery, the guard is lifted.
 */
const delivering = new AsyncLocalStorage<string>();

/** The provider's `fetch` (configuration): as the library's, but an admin-registered logout URI may be private. */
export function providerFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const target = delivering.getStore();
  const url = input instanceof Request ? input.url : String(input);
  if (target !== undefined && init && url === target) delete (init as { dispatcher?: unknown }).dispatcher;
  return fetch(input, init);
}

/** Queues notices (one per app and session); they leave at once or on the next look of any process. */
export async function enqueueLogouts(db: Kysely<Database>, now: Date, notices: LogoutNotice[]): Promise<number> {
  if (!notices.length) return 0;
  await db
    .insertInto('backchannel_logouts')
    .values(notices.map((n) => ({ client_id: n.clientId, account_id: n.accountId, sid: n.sid ?? null, reason: n.reason, next_attempt_at: now })))
    .execute();
  return notices.length;
}

/**
 * Makes `client.backchannelLogout` (called by the library at /session/end) queue instead of post, keeping the
 * library's method to deliver with. Done once per provider instance (each has its own Client class).
 */
export function queueProviderLogouts(provider: Provider, services: Services): void {
  const proto = provider.Client.prototype as unknown as { backchannelLogout: Send };
  librarySend.set(provider, proto.backchannelLogout);
  proto.backchannelLogout = async function queue(sub: string, sid?: string) {
    await enqueueLogouts(services.db, services.clock.now(), [{ clientId: this.clientId, accountId: sub, sid, reason: 'end_session' }]);
    services.backchannel?.kick();
  };
}

/** Queues a notice for every app with a back-channel logout URI that an ended session had signed in to. */
export function backchannelSessionsEnded(services: Pick<Services, 'db' | 'clock' | 'backchannel'>): SessionsEndedHook {
  return async (ended, accountId, reason = 'revoked') => {
    const clientIds = [...new Set(ended.flatMap((s) => s.clients.map((c) => c.clientId)))];
    if (!clientIds.length) return;
    const rows = await services.db.selectFrom('clients').select(['client_id', 'metadata']).where('client_id', 'in', clientIds).execute();
    const told = new Set(rows.filter((r) => typeof r.metadata.backchannel_logout_uri === 'string').map((r) => r.client_id));
    const notices = ended.flatMap((s) => s.clients.filter((c) => told.has(c.clientId)).map((c) => ({ clientId: c.clientId, accountId, sid: c.sid, reason })));
    if (await enqueueLogouts(services.db, services.clock.now(), notices)) services.backchannel?.kick();
  };
}

export interface DeliveryReport {
  delivered: number;
  retrying: number;
  failed: number;
  /** Notices for apps that are gone or no longer take back-channel logout. */
  dropped: number;
}

interface ClaimedRow {
  id: string;
  client_id: string;
  account_id: string;
  sid: string | null;
  reason: string;
  attempts: number;
}

/** How long a claimed notice is left to the process that claimed it before another may try (it crashed). */
const LEASE_SECONDS = 60;
const BATCH = 20;

function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'no answer within 2.5 s';
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`.slice(0, 500);
}

/** Delivers due notices through the current provider instance; one per process, shared by every path that queues. */
export class BackchannelDelivery {
  readonly #services: Services;
  readonly #provider: () => Provider;
  #running: Promise<DeliveryReport> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(services: Services, provider: () => Provider) {
    this.#services = services;
    this.#provider = provider;
  }

  /** Look now (in the background): something was just queued. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.deliverDue()
      .catch((err: unknown) => {
        logger.warn({ err }, 'back-channel logout delivery failed to run');
        return { delivered: 0, retrying: 0, failed: 0, dropped: 0 };
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Claims the notices due now and delivers them (in parallel; each POST has the library's 2.5 s timeout). */
  async deliverDue(): Promise<DeliveryReport> {
    const { db, clock } = this.#services;
    const now = clock.now();
    const lease = new Date(now.getTime() + LEASE_SECONDS * 1000);
    const claimed = await sql<ClaimedRow>`
      update backchannel_logouts set attempts = attempts + 1, next_attempt_at = ${lease}
      where id in (
        select id from backchannel_logouts where next_attempt_at <= ${now}
        order by next_attempt_at limit ${BATCH} for update skip locked
      )
      returning id, client_id, account_id, sid, reason, attempts`.execute(db);
    const report: DeliveryReport = { delivered: 0, retrying: 0, failed: 0, dropped: 0 };
    const outcomes = await Promise.all(claimed.rows.map((row) => this.#deliver(row)));
    for (const outcome of outcomes) report[outcome] += 1;
    return report;
  }

  async #deliver(row: ClaimedRow): Promise<keyof DeliveryReport> {
    const { db, config, clock } = this.#services;
    const provider = this.#provider();
    const send = librarySend.get(provider);
    const client = await provider.Client.find(row.client_id).catch(() => undefined);
    const uri = client?.backchannelLogoutUri as string | undefined;
    const log = logger.child({ clientId: row.client_id, accountId: row.account_id, reason: row.reason, attempt: row.attempts });
    if (!send || !client || !uri) {
      await db.deleteFrom('backchannel_logouts').where('id', '=', row.id).execute();
      log.info('back-channel logout dropped: the app is gone or no longer takes it');
      return 'dropped';
    }
    try {
      await delivering.run(new URL(uri).href, () => send.call(client as never, row.account_id, row.sid ?? undefined));
    } catch (err) {
      const error = describeError(err);
      if (row.attempts >= config.BACKCHANNEL_LOGOUT_ATTEMPTS) {
        await db.deleteFrom('backchannel_logouts').where('id', '=', row.id).execute();
        log.error({ uri, error }, 'back-channel logout given up');
        await recordAudit(
          db,
          'backchannel_logout.failed',
          { clientId: row.client_id, accountId: row.account_id, actor: 'system' },
          { uri, attempts: row.attempts, error, reason: row.reason },
        );
        return 'failed';
      }
      const wait = config.BACKCHANNEL_LOGOUT_BACKOFF * 4 ** (row.attempts - 1);
      await db
        .updateTable('backchannel_logouts')
        .set({ next_attempt_at: new Date(clock.now().getTime() + wait * 1000), last_error: error })
        .where('id', '=', row.id)
        .execute();
      log.warn({ uri, error, retryInSeconds: wait }, 'back-channel logout failed; will retry');
      return 'retrying';
    }
    await db.deleteFrom('backchannel_logouts').where('id', '=', row.id).execute();
    log.info({ uri }, 'back-channel logout delivered');
    return 'delivered';
  }

  /** Looks for due notices (retries, and those queued by processes without a provider, such as the CLI) every intervalMs. */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => this.kick(), intervalMs);
    this.#timer.unref();
  }

  /**
   * Stops looking and gives a delivery in flight a moment to finish (its POSTs time out after 2.5 s); never longer,
   * so a database that stopped answering cannot hold up a shutdown. What is left is retried by another process.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (!this.#running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#running, new Promise<void>((resolve) => (timer = setTimeout(resolve, 3000).unref()))]);
    clearTimeout(timer);
  }
}
