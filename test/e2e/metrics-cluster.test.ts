/**
 * Metrics with WORKERS > 1: the cluster primary's own listener answers with
 * every worker's counts summed (prom-client's AggregatorRegistry), so a scrape
 * sees all requests whichever worker took them. PostgreSQL only (a cluster
 * needs it).
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startProviderProcess, type ProviderProcess } from '../helpers/provider-process.ts';
import { freePort } from '../helpers/ports.ts';

/** A GET on a connection of its own (no keep-alive), so the cluster may hand each to another worker. */
function getFresh(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

const describePg = process.env.TEST_DATABASE_URL ? describe : describe.skip;

describePg('metrics in a cluster', () => {
  let database: TestDatabase;
  let provider: ProviderProcess;
  let metricsPort: number;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    metricsPort = await freePort();
    provider = await startProviderProcess(database.url, { WORKERS: '2', METRICS: 'listener', METRICS_PORT: String(metricsPort), HASH_CONCURRENCY: '1' });
  }, 90_000);

  afterAll(async () => {
    await provider?.close();
    await database?.close();
  });

  test('the primary serves the sum of both workers', async () => {
    const requests = 12;
    for (let i = 0; i < requests; i++) expect(await getFresh(`http://127.0.0.1:${provider.port}/.well-known/openid-configuration`)).toBe(200);
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const count = text.split('\n').find((l) => l.startsWith('twofold_http_request_duration_seconds_count{route="discovery",method="GET",status="2xx"} '));
    expect(Number(count?.split(' ')[1])).toBe(requests);
    // Linux's cluster hands connections out in turn, so one worker alone would have counted about half of them.
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
    // The main port does not serve metrics.
    expect(await getFresh(`http://127.0.0.1:${provider.port}/metrics`)).toBe(404);
  });
});
