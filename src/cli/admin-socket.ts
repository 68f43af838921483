/**
 * PGlite allows one process per data folder, so while the provider runs it
 * serves CLI runs over a unix socket in the data folder (mode 0600: only the
 * folder's owner can use it). A CLI run sends {argv, stdin} and receives
 * {stdout, stderr, code}; the command runs inside the provider process on its
 * database connection.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Services } from '../services.ts';
import { logger } from '../logger.ts';

export interface AdminSocket {
  path: string;
  close(): Promise<void>;
}

export interface AdminRequest {
  argv: string[];
  stdin?: string;
}

export interface AdminResponse {
  stdout: string;
  stderr: string;
  code: number;
}

const MAX_REQUEST = 1024 * 1024;

export async function startAdminSocket(services: Services, dataDir: string): Promise<AdminSocket | undefined> {
  const socketPath = path.join(dataDir, 'twofold.sock');
  if (Buffer.byteLength(socketPath) > 100) {
    logger.warn({ socketPath }, 'data folder path too long for a unix socket; the CLI cannot reach this process');
    return undefined;
  }
  fs.rmSync(socketPath, { force: true });
  const { runCli } = await import('./run.ts');
  const server = net.createServer((socket) => {
    let buffer = '';
    let handled = false;
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    // A connection that never sends its request must not hold the shutdown open.
    socket.setTimeout(30_000, () => {
      if (!handled) socket.destroy();
    });
    socket.on('data', (chunk: string) => {
      // One request per connection: anything after the first line is ignored.
      if (handled) return;
      buffer += chunk;
      if (buffer.length > MAX_REQUEST) {
        handled = true;
        socket.end(JSON.stringify({ stdout: '', stderr: 'twofold: the command is too large\n', code: 2 }) + '\n');
        return;
      }
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      handled = true;
      let request: AdminRequest;
      try {
        request = JSON.parse(buffer.slice(0, newline)) as AdminRequest;
        if (!Array.isArray(request.argv) || !request.argv.every((a) => typeof a === 'string')) throw new Error('bad request');
        if (request.stdin !== undefined && typeof request.stdin !== 'string') throw new Error('bad request');
      } catch {
        socket.end(JSON.stringify({ stdout: '', stderr: 'twofold: malformed admin request\n', code: 2 }) + '\n');
        return;
      }
      let stdout = '';
      let stderr = '';
      runCli(request.argv, { out: (t) => (stdout += t), err: (t) => (stderr += t), stdin: request.stdin }, services, 'admin:cli')
        .then((code) => socket.end(JSON.stringify({ stdout, stderr, code } satisfies AdminResponse) + '\n'))
        .catch((err) => {
          logger.error({ err }, 'admin command failed');
          socket.end(JSON.stringify({ stdout, stderr: stderr + 'twofold: internal error (see the provider log)\n', code: 1 }) + '\n');
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  fs.chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        fs.rmSync(socketPath, { force: true });
      }),
  };
}

/** Sends one CLI run to the provider that holds the data folder. */
export function sendToProvider(socketPath: string, request: AdminRequest, timeoutMs = 120_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('the provider did not answer in time')));
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => (buffer += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        resolve(JSON.parse(buffer.trim()) as AdminResponse);
      } catch {
        reject(new Error('the provider closed the connection without an answer'));
      }
    });
  });
}
