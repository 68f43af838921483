/**
 * A hook for tools that watch a process's SQL from outside the product: a
 * module loaded with `node --import` before Twofold starts (the benchmarks'
 * statement counter, test/bench/count-statements.ts) calls
 * `observeDatabase(fn)`, and every database Twofold then opens passes each
 * statement it executes to `fn` (kysely's `log` option: it sees, never
 * changes). Nothing sets it in production.
 *
 * A global symbol, not a module variable: the watching module is loaded on its
 * own, so it and the provider's bundle each hold their own copy of this file.
 */
import type { LogEvent } from 'kysely';

export type DatabaseObserver = (event: LogEvent) => void;

const OBSERVER = Symbol.for('twofold.database.observer');

export function observeDatabase(fn: DatabaseObserver): void {
  (globalThis as Record<symbol, unknown>)[OBSERVER] = fn;
}

export function databaseObserver(): DatabaseObserver | undefined {
  return (globalThis as Record<symbol, DatabaseObserver | undefined>)[OBSERVER];
}
