/**
 * Apache httpd with Debian's mod_auth_openidc as a child process of the test:
 * its own config in a temp dir, its own free port, one process (-X), never the
 * system's apache2 config or service. Ready when it answers HTTP.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { until } from './harness.ts';

export const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';

/** "mod_auth_openidc 2.4.x (Apache/2.4.y)": what the suite ran. */
export function apacheVersions(): string {
  if (!fs.existsSync(APACHE) || !fs.existsSync(`${MODULES}/mod_auth_openidc.so`))
    return 'mod_auth_openidc (MISSING: .ci/run installs apache2 and libapache2-mod-auth-openidc)';
  const openidc = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'libapache2-mod-auth-openidc']).toString();
  const httpd = /Apache\/[\d.]+/.exec(execFileSync(APACHE, ['-v']).toString())?.[0] ?? 'Apache';
  return `mod_auth_openidc ${openidc} (${httpd})`;
}

export interface Apache {
  origin: string;
  errorLog(): string;
  close(): Promise<void>;
}

/** Starts httpd on `port` with `site` (directives for the server) appended to a minimal base config. */
export async function startApache(port: number, site: string): Promise<Apache> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-apache-'));
  fs.mkdirSync(path.join(dir, 'htdocs'));
  fs.mkdirSync(path.join(dir, 'cgi'));
  // The app: prints what mod_auth_openidc gives it (claims, tokens, REMOTE_USER) as text.
  fs.writeFileSync(path.join(dir, 'cgi', 'show'), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv | grep -E '^(OIDC_|REMOTE_USER=)' | sort\n", {
    mode: 0o755,
  });
  fs.chmodSync(dir, 0o755);
  const conf = `
ServerRoot ${dir}
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/httpd.pid
DefaultRuntimeDir ${dir}
Mutex file:${dir} default
ErrorLog ${dir}/error.log
LogLevel warn auth_openidc:info
LoadModule mpm_prefork_module ${MODULES}/mod_mpm_prefork.so
LoadModule authn_core_module ${MODULES}/mod_authn_core.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule authz_user_module ${MODULES}/mod_authz_user.so
LoadModule alias_module ${MODULES}/mod_alias.so
LoadModule cgi_module ${MODULES}/mod_cgi.so
LoadModule auth_openidc_module ${MODULES}/mod_auth_openidc.so
${process.getuid?.() === 0 ? 'User daemon\nGroup daemon' : ''}
# One process (-X) serves one connection at a time: a kept-alive idle connection would hold up the next client.
KeepAlive Off
DocumentRoot ${dir}/htdocs
ScriptAliasMatch ^/(protected|mfa|stepup|api)(/.*)?$ ${dir}/cgi/show
${site}
`;
  const file = path.join(dir, 'httpd.conf');
  fs.writeFileSync(file, conf);
  const child: ChildProcess = spawn(APACHE, ['-X', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  let exited: number | null = null;
  const gone = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exited = code ?? -1;
      resolve();
    }),
  );
  const origin = `http://127.0.0.1:${port}`;
  const errorLog = () => {
    try {
      return fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  try {
    await until(
      'apache to answer',
      async () => {
        if (exited !== null) throw new Error(`apache2 exited (${exited}): ${output}\n${errorLog()}`);
        try {
          await fetch(`${origin}/`, { signal: AbortSignal.timeout(2000) });
          return true;
        } catch {
          return false;
        }
      },
      30_000,
    );
  } catch (err) {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    origin,
    errorLog,
    async close() {
      if (exited === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * mod_auth_openidc accepts only an https introspection endpoint: the API reaches
 * the provider through this TLS-terminating proxy (a self-signed certificate,
 * hence OIDCSSLValidateServer Off), as it would through the TLS proxy in front
 * of a deployment.
 */
export async function tlsProxy(target: string): Promise<{ origin: string; close(): Promise<void> }> {
  const https = await import('node:https');
  const http = await import('node:http');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-tls-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`],
    { stdio: 'ignore' },
  );
  const upstream = new URL(target);
  const server = https.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`) }, (req, res) => {
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
