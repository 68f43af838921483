import type { Percentiles } from './protocol.ts';

/** Nearest-rank percentiles of latencies in milliseconds. */
export function percentiles(values: number[]): Percentiles {
  if (!values.length) return { count: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0, max_ms: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  const r = (v: number) => Math.round(v * 10) / 10;
  return { count: sorted.length, p50_ms: r(at(0.5)), p95_ms: r(at(0.95)), p99_ms: r(at(0.99)), max_ms: r(sorted[sorted.length - 1]!) };
}
