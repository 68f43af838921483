/** What the harness (run.ts) and the load driver (driver.ts) say to each other over IPC. */

export interface BenchAccount {
  username: string;
  /** Base32 TOTP secret; absent against the bare provider. */
  secret?: string;
  /** The address a TLS proxy would report for this user (X-Forwarded-For), from 198.18.0.0/15 (RFC 2544, benchmarking). */
  ip: string;
}

export interface Target {
  kind: 'twofold' | 'bare';
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** The sign-in must prove a TOTP code (and the ID token say amr otp). */
  mfa: boolean;
  password: string;
  accounts: BenchAccount[];
}

export type Operation = 'signin' | 'refresh';

export interface PhaseSpec {
  name: string;
  operation: Operation;
  concurrency: number;
  /** Wall-clock bound for issuing new operations. */
  durationMs: number;
  /** Leading part of the duration not measured (connection set-up, JIT). */
  warmupMs: number;
  /** Count bound: no more than this many operations are started. */
  maxOps: number;
  /** Hold the loops after the 'start' mark until the harness answers 'go' (it resets counters there). */
  waitForGo?: boolean;
  /** On 503: wait Retry-After (capped) and go on with a new sign-in instead of counting an error. */
  allowOverload?: boolean;
}

export interface Percentiles {
  count: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
}

export interface PhaseResult {
  name: string;
  operation: Operation;
  concurrency: number;
  /** Seconds in the measured window. */
  window_s: number;
  started: number;
  completed: number;
  /** Completions inside the measured window. */
  measured: number;
  per_s: number;
  latency: Percentiles;
  steps: Record<string, Percentiles>;
  errors: number;
  error_samples: string[];
  /** 503 answers (sign-ins refused at admission), and how many carried Retry-After. */
  shed: number;
  shed_with_retry_after: number;
  /** Sign-ins that got past admission and then completed. */
  accepted_completed: number;
  /** Waits for an account whose TOTP time step was free (should stay 0). */
  starved: number;
  driver_cpu_s: number;
  /** Latencies in the window (ms), for merging rounds; the harness drops them from its report. */
  raw?: { ops: number[]; steps: Record<string, number[]> };
}

export type ToDriver = { type: 'target'; target: Target } | { type: 'run'; id: number; phase: PhaseSpec } | { type: 'go'; id: number } | { type: 'exit' };

export type FromDriver =
  | { type: 'ready' }
  | { type: 'target-ready' }
  | { type: 'mark'; id: number; mark: 'start' | 'end' }
  | { type: 'result'; id: number; result: PhaseResult }
  | { type: 'error'; message: string };
