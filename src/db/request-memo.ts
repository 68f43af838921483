/**
 * A memo of database reads that lives for one HTTP request and no longer.
 *
 * One sign-in step asks for the same rows several times: the app (the
 * provider's lookup, the page's app name, the policy input), the account's
 * credentials (the policy input, then the factor's challenge or verification),
 * the global policy (the policy input, then the throttle limits). Inside a
 * request scope the first read's promise answers the others.
 *
 * Never across requests: several processes share one database, and an admin's
 * change (a policy, a client, a group) must take effect on the very next
 * request. Outside a scope (the CLI, timers, tests calling a module directly)
 * every read goes to the database, as before. A write through the modules that
 * memoize a kind of row forgets that kind in the current scope, so a request
 * that writes and then reads sees its own write.
 *
 * Each caller gets its own copy (structuredClone), so one caller mutating the
 * result cannot change what another sees.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

type Memo = Map<string, Promise<unknown>>;

const scope = new AsyncLocalStorage<Memo>();

/** Runs `fn` (the rest of a request) with a fresh memo; it ends with `fn`. */
export function withRequestMemo<T>(fn: () => Promise<T>): Promise<T> {
  return scope.run(new Map(), fn);
}

/** Whether a request scope is active (reads are memoized). */
export function inRequestScope(): boolean {
  return scope.getStore() !== undefined;
}

/**
 * `load()` once per key per request scope; outside a scope, `load()` every
 * time. A failed load is not remembered.
 */
export async function memoized<T>(key: string, load: () => Promise<T>): Promise<T> {
  const memo = scope.getStore();
  if (!memo) return load();
  let pending = memo.get(key) as Promise<T> | undefined;
  if (!pending) {
    pending = load();
    memo.set(key, pending);
    pending.catch(() => {
      if (memo.get(key) === pending) memo.delete(key);
    });
  }
  return structuredClone(await pending);
}

/** Whether the current scope holds (or is loading) `key`; false outside a scope. */
export function remembered(key: string): boolean {
  return scope.getStore()?.has(key) ?? false;
}

/** Records a value read by a wider query under the key a narrower read would use (when none is recorded yet). */
export function remember<T>(key: string, value: T): void {
  const memo = scope.getStore();
  if (memo && !memo.has(key)) memo.set(key, Promise.resolve(structuredClone(value)));
}

/** Forgets, in the current scope, every key starting with `prefix` (after a write of those rows). */
export function forget(prefix: string): void {
  const memo = scope.getStore();
  if (!memo) return;
  for (const key of [...memo.keys()]) if (key.startsWith(prefix)) memo.delete(key);
}
