/**
 * The bearer values node-oidc-provider writes inside its payloads, and how they
 * are kept out of a database dump: taken out of the stored JSON, sealed
 * (AES-256-GCM, bound to the row) into one `$sealed` member, and put back on
 * read, so the library gets back exactly what it stored.
 *
 * Everything else stays readable JSON: `accountId`, `clientId`, `grantId`,
 * `sessionUid`, `sid`, scopes, `exp`… are looked up or audited in SQL and let
 * no one act as anyone (see docs/security.md, "What a database dump contains").
 * The list follows the models in oidc-provider/lib/models/ (9.x); an upgrade
 * that adds a field carrying a bearer value must add it here, and the dump
 * test (test/e2e/database-dump.test.ts) is there to notice.
 */
import type { Sealer } from '../security/sealer.ts';

type Path = readonly string[];

/** In every model, `jti` is the model's own id: the token, code, session cookie value or interaction id itself. */
const EVERY_MODEL: readonly Path[] = [['jti']];

const BY_MODEL: Readonly<Record<string, readonly Path[]>> = {
  Interaction: [
    // The session cookie's value (lib/models/interaction.js copies session.jti here).
    ['session', 'cookie'],
    // The resume URL, which ends in the interaction id.
    ['returnTo'],
    // The device_code of a device flow, and the request_uri id of a pushed authorization request.
    ['deviceCode'],
    ['parJti'],
  ],
  Session: [
    // The logout and device-confirmation forms' CSRF secret. Useless without the session cookie; nothing queries it.
    ['state'],
  ],
  // The code a person types on the device verification page.
  DeviceCode: [['userCode']],
};

export const SEALED_MEMBER = '$sealed';

function pathsOf(model: string): readonly Path[] {
  return [...EVERY_MODEL, ...(BY_MODEL[model] ?? [])];
}

/** Removes the value at `path` from `target` and returns it (undefined when absent). */
function take(target: Record<string, unknown>, path: Path): unknown {
  let node: unknown = target;
  for (const key of path.slice(0, -1)) {
    if (!node || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  const last = path[path.length - 1]!;
  if (!node || typeof node !== 'object' || !Object.hasOwn(node, last)) return undefined;
  const value = (node as Record<string, unknown>)[last];
  delete (node as Record<string, unknown>)[last];
  return value;
}

function put(target: Record<string, unknown>, path: Path, value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (!next || typeof next !== 'object') return; // the parent was not stored: nothing to restore into
    node = next as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/**
 * The JSON to store for `payload`: a copy without its bearer values, which
 * travel sealed in `$sealed`. `context` binds the sealed part to its row.
 */
export function sealBearerFields(sealer: Sealer, model: string, payload: Record<string, unknown>, context: string): Record<string, unknown> {
  const stored = JSON.parse(JSON.stringify(payload)) as Record<string, unknown>;
  const taken: Array<[Path, unknown]> = [];
  for (const path of pathsOf(model)) {
    const value = take(stored, path);
    if (value !== undefined) taken.push([path, value]);
  }
  if (taken.length) stored[SEALED_MEMBER] = sealer.seal(JSON.stringify(taken), context);
  return stored;
}

/** The payload as the library stored it. Throws SealError when the sealed part does not open under `context`. */
export function openBearerFields(sealer: Sealer, stored: Record<string, unknown>, context: string): Record<string, unknown> {
  const sealed = stored[SEALED_MEMBER];
  if (typeof sealed !== 'string') return stored;
  const payload = { ...stored };
  delete payload[SEALED_MEMBER];
  for (const [path, value] of JSON.parse(sealer.openString(sealed, context)) as Array<[Path, unknown]>) put(payload, path, value);
  return payload;
}
