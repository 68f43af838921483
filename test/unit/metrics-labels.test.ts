/**
 * The metrics' labels stay bounded: audit events map to fixed label values
 * (a factor not registered, a channel or reason not known, counts as `other`),
 * and route names come from templates, never from paths.
 */
import { describe, expect, test } from '@jest/globals';
import type { Context } from 'koa';
import { createMetrics } from '../../src/metrics/registry.ts';
import { auditCounter } from '../../src/metrics/audit-counts.ts';
import { routeName } from '../../src/metrics/route-name.ts';

async function value(metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  const match = metric.values.find(
    (v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l) && Object.keys(v.labels).length === Object.keys(labels).length,
  );
  return match?.value;
}

describe('audit events as counts', () => {
  const metrics = createMetrics({ hashQueue: () => ({ active: 1, waiting: 3 }) });
  const count = auditCounter(metrics, new Set(['totp', 'sms-code']));

  test('codes, deliveries, lockouts and throttles by their bounded labels', async () => {
    count('factor.code_sent', { factor: 'sms-code', channel: 'sms', purpose: 'sign-in' });
    count('factor.code_sent', { factor: 'sms-code', channel: 'voice' });
    count('factor.delivery_failed', { factor: 'sms-code', channel: 'sms', kind: 'timeout' });
    count('factor.delivery_failed', { factor: 'sms-code', channel: 'carrier-pigeon', kind: 'lost <b>' });
    count('factor.locked', { factor: 'totp' });
    count('factor.send_throttled', { factor: 'sms-code', channel: 'sms' });
    count('login.throttled', { login: 'alice', browser: 'known' });
    count('factor.reset', { removed: 3 });
    count('factor.removed', { credential: 'c9', factor: 'sms-code' });
    count('factor.reset', { removed: 0 });
    count('account.created', { username: 'alice' });
    expect(await value(metrics, 'twofold_codes_sent_total', { channel: 'sms' })).toBe(1);
    expect(await value(metrics, 'twofold_codes_sent_total', { channel: 'voice' })).toBe(1);
    expect(await value(metrics, 'twofold_code_delivery_failures_total', { channel: 'sms', kind: 'timeout' })).toBe(1);
    expect(await value(metrics, 'twofold_code_delivery_failures_total', { channel: 'other', kind: 'other' })).toBe(1);
    expect(await value(metrics, 'twofold_lockouts_total', { kind: 'factor' })).toBe(1);
    expect(await value(metrics, 'twofold_lockouts_total', { kind: 'code_send' })).toBe(1);
    expect(await value(metrics, 'twofold_lockouts_total', { kind: 'password' })).toBe(1);
    expect(await value(metrics, 'twofold_factor_verifications_total', { factor: 'totp', result: 'locked' })).toBe(1);
    expect(await value(metrics, 'twofold_sign_ins_total', { method: 'password', result: 'throttled' })).toBe(1);
    expect(await value(metrics, 'twofold_factor_removals_total', { factor: 'all' })).toBe(3);
    expect(await value(metrics, 'twofold_factor_removals_total', { factor: 'sms-code' })).toBe(1);
    expect(await value(metrics, 'twofold_password_hash_queue_depth')).toBe(3);
    expect(await value(metrics, 'twofold_password_hash_active')).toBe(1);
    // No pool on PGlite: no pool gauge at all, rather than a zero that looks like an empty pool.
    expect(metrics.registry.getSingleMetric('twofold_db_pool_waiting')).toBeUndefined();
  });

  test('a factor id or reason outside the known sets is `other`, never the value given', async () => {
    count('factor.failed', { factor: 'user:alice@example.com', reason: 'wrong' });
    count('factor.failed', { factor: 'totp', reason: 'a reason nobody listed' });
    count('login.first_factor_verified', { factor: 'not-registered', credential: 'c1' });
    expect(await value(metrics, 'twofold_factor_verifications_total', { factor: 'other', result: 'wrong' })).toBe(1);
    expect(await value(metrics, 'twofold_factor_verifications_total', { factor: 'totp', result: 'other' })).toBe(1);
    expect(await value(metrics, 'twofold_sign_ins_total', { method: 'other', result: 'success' })).toBe(1);
    expect(await metrics.registry.metrics()).not.toContain('alice');
  });
});

describe('route names', () => {
  const ctx = (fields: Record<string, unknown>) => fields as unknown as Context;

  test('from the provider, from router templates, else other', () => {
    expect(routeName(ctx({ _matchedRouteName: 'token', _matchedRoute: '/token' }))).toBe('token');
    expect(routeName(ctx({ _matchedRoute: '/interaction/:uid/factor/:factor' }))).toBe('interaction_factor');
    expect(routeName(ctx({ _matchedRoute: '/interaction/:uid' }))).toBe('interaction');
    expect(routeName(ctx({ _matchedRoute: '/interaction/:uid/first-factor/:factor' }))).toBe('interaction_first_factor');
    expect(routeName(ctx({ _matchedRoute: '/assets/:name' }))).toBe('assets');
    expect(routeName(ctx({ _matchedRoute: '/healthz' }))).toBe('healthz');
    expect(routeName(ctx({ path: '/interaction/abc123/login' }))).toBe('other');
    expect(routeName(ctx({ path: '/metrics', status: 401 }))).toBe('metrics');
    expect(routeName(ctx({ path: '/metrics', status: 404 }))).toBe('other');
    expect(routeName(ctx({ _matchedRouteName: 'Not A Name/../x' }))).toBe('other');
  });
});
