/**
 * A shutdown always ends (finding 7: a stopped provider once ignored SIGTERM,
 * and a second SIGTERM too, its main thread stuck retrying a write to a full
 * stdout).
 *
 * The provider runs as a real process whose stdout (its log) nobody reads, so
 * the pipe fills up, and a client holds a request open (its body never comes).
 * SIGTERM must end the process within SHUTDOWN_TIMEOUT (shortened here, so the
 * test is quick: the default is checked on its own); a second SIGTERM while it
 * drains must end it at once.
 */
import net from 'node:net';
import { afterEach, describe, expect, test } from '@jest/globals';
import { loadConfig } from '../../src/config.ts';
import { startProviderProcess, type ProviderProcess } from '../helpers/provider-process.ts';

/** Fills the log pipe: each request is logged with its (long) path, and nobody reads the log. */
async function floodLog(issuer: string, megabytes: number): Promise<void> {
  const path = `/no-such-page/${'x'.repeat(7000)}`;
  const requests = Math.ceil((megabytes * 1024 * 1024) / path.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < requests) {
        next += 1;
        const res = await fetch(new URL(path, issuer));
        await res.arrayBuffer();
        expect(res.status).toBe(404);
      }
    }),
  );
}

/** A request that reaches the app and then waits for a body that never comes. */
const held: net.Socket[] = [];
async function holdRequest(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  held.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  const started = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(
    `POST /token HTTP/1.1\r\nHost: localhost:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`,
  );
  // `100 Continue`: the request is in the app, reading its body.
  await started;
  socket.write('grant_type=');
  return { socket, closed };
}

/** How the process ended, and after how long; undefined if it was still running after `ms`. */
async function exitWithin(provider: ProviderProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number } | undefined> {
  const started = Date.now();
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms));
  const how = await Promise.race([provider.exited, timeout]);
  return how && { ...how, ms: Date.now() - started };
}

describe('shutdown', () => {
  let provider: ProviderProcess | undefined;

  afterEach(async () => {
    // Whatever the test found, nothing is left running.
    provider?.child.kill('SIGKILL');
    await provider?.close();
    provider = undefined;
    for (const socket of held.splice(0)) socket.destroy();
  });

  test('SHUTDOWN_TIMEOUT is 10 seconds unless set, and is checked like the other knobs', () => {
    expect(loadConfig({}).SHUTDOWN_TIMEOUT).toBe(10);
    expect(loadConfig({ SHUTDOWN_TIMEOUT: '3' }).SHUTDOWN_TIMEOUT).toBe(3);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: '0' })).toThrow('SHUTDOWN_TIMEOUT: expected whole seconds from 1 to 600');
  });

  test('SIGTERM with a full log pipe and a request held open: the process exits within SHUTDOWN_TIMEOUT', async () => {
    const timeoutSeconds = 3;
    provider = await startProviderProcess(undefined, { LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT: String(timeoutSeconds) }, { stdoutUnread: true });
    await floodLog(provider.issuer, 2);
    const held = await holdRequest(provider.port);
    provider.child.kill('SIGTERM');
    const ended = await exitWithin(provider, timeoutSeconds * 1000 + 2000);
    expect(ended).toBeDefined();
    // Ended by itself (status 0 or 1), not by a signal's default action.
    expect(ended!.signal).toBeNull();
    expect([0, 1]).toContain(ended!.code);
    // The held request's connection was cut, not left open.
    await held.closed;
    console.log(
      `shutdown: SIGTERM with a full log pipe and a held request ended the process in ${ended!.ms} ms (SHUTDOWN_TIMEOUT=${timeoutSeconds}), status ${ended!.code}`,
    );
  }, 60_000);

  test('a second SIGTERM while draining ends the process at once', async () => {
    provider = await startProviderProcess(undefined, { LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT: '120' }, { stdoutUnread: true });
    await floodLog(provider.issuer, 2);
    await holdRequest(provider.port);
    provider.child.kill('SIGTERM');
    // Draining: the held request keeps it up (it may take up to 96 s of the 120).
    expect(await exitWithin(provider, 1000)).toBeUndefined();
    provider.child.kill('SIGTERM');
    const ended = await exitWithin(provider, 3000);
    expect(ended).toBeDefined();
    expect(ended!.signal).toBeNull();
    expect(ended!.code).toBe(1);
    console.log(`shutdown: a second SIGTERM ended the draining process in ${ended!.ms} ms`);
  }, 60_000);
});
