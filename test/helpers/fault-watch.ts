/**
 * Watchers for the fault tests: a prober that asks /readyz (or the database)
 * every few milliseconds in the background and keeps every answer with its
 * time, so a test can say when an outage was seen and when readiness came
 * back, and what a provider's acknowledged writes look like afterwards.
 */
export interface Probe<T> {
  /** Request start and end (ms epoch), and what it found. */
  samples: Array<{ start: number; end: number; value: T }>;
  stop(): Promise<void>;
}

/** Runs `probe` back to back (at most one at a time, `everyMs` apart) until stopped. */
export function startProbe<T>(probe: () => Promise<T>, everyMs = 25): Probe<T> {
  const samples: Probe<T>['samples'] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const start = Date.now();
      const value = await probe();
      samples.push({ start, end: Date.now(), value });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export interface Readiness {
  status: number;
  body: Record<string, unknown>;
}

/** /readyz of one provider: its status and JSON body (status 0 when nothing answered). */
export function readinessOf(issuer: string): () => Promise<Readiness> {
  return async () => {
    try {
      const res = await fetch(new URL('/readyz', issuer), { signal: AbortSignal.timeout(5000) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    } catch (err) {
      return { status: 0, body: { error: (err as Error).message } };
    }
  };
}

/** The first sample answered at or after `since` that satisfies `ok`. */
export function firstAfter<T>(probe: Probe<T>, since: number, ok: (value: T) => boolean): { start: number; end: number; value: T } | undefined {
  return probe.samples.find((s) => s.end >= since && ok(s.value));
}

/** Waits until the probe has a sample after `since` satisfying `ok`, or `ms` passed. */
export async function waitForSample<T>(
  probe: Probe<T>,
  since: number,
  ok: (value: T) => boolean,
  ms: number,
): Promise<{ start: number; end: number; value: T } | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = firstAfter(probe, since, ok);
    if (found || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
}
