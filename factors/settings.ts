/**
 * A factor's settings as the registry reads them: parsed through the factor's
 * own schema, with the fields it marks secret (`.meta({ secret: true })`)
 * never shown, neither in a refusal nor in a listing or a log.
 *
 * Secret fields are found by walking the schema (objects, their wrappers,
 * unions, arrays and records), reading each node's metadata through its own
 * `.meta()`, so a factor built with another copy of zod is read alike.
 */
import { z } from 'zod';

/** A path into the settings; `*` stands for any key of a record or any item of an array. */
export type SettingsPath = readonly string[];

/** What a secret value is shown as. */
export const REDACTED = '[redacted]';

interface Node {
  _zod?: { def?: { type?: string; innerType?: Node; in?: Node; shape?: Record<string, Node>; options?: Node[]; element?: Node; valueType?: Node } };
  meta?: () => unknown;
}

function isSecret(node: Node): boolean {
  const meta = typeof node.meta === 'function' ? node.meta() : undefined;
  return !!meta && typeof meta === 'object' && (meta as { secret?: unknown }).secret === true;
}

/** Every path the schema marks secret (a secret object hides all of it). */
export function secretPaths(schema: unknown): SettingsPath[] {
  const found: SettingsPath[] = [];
  const walk = (node: Node | undefined, at: string[], depth: number) => {
    if (!node || depth > 32) return;
    if (isSecret(node)) {
      found.push(at);
      return;
    }
    const def = node._zod?.def;
    if (!def) return;
    switch (def.type) {
      case 'object':
        for (const [key, child] of Object.entries(def.shape ?? {})) walk(child, [...at, key], depth + 1);
        break;
      case 'union':
        for (const option of def.options ?? []) walk(option, at, depth + 1);
        break;
      case 'array':
        walk(def.element, [...at, '*'], depth + 1);
        break;
      case 'record':
        walk(def.valueType, [...at, '*'], depth + 1);
        break;
      case 'pipe':
        walk(def.in, at, depth + 1);
        break;
      default:
        // default, prefault, optional, nullable, readonly, catch, nonoptional: the schema they wrap
        walk(def.innerType, at, depth + 1);
    }
  };
  walk(schema as Node, [], 0);
  return found;
}

function matches(path: readonly PropertyKey[], secret: SettingsPath): boolean {
  return secret.length <= path.length && secret.every((key, i) => key === '*' || key === String(path[i]));
}

/** Whether a value at `path` is, or lies inside, a secret field. */
export function isSecretPath(paths: SettingsPath[], path: readonly PropertyKey[]): boolean {
  return paths.some((secret) => matches(path, secret));
}

/** A copy of `value` with every secret field that is set replaced by REDACTED. */
export function redactSettings(value: unknown, paths: SettingsPath[], at: string[] = []): unknown {
  if (at.length && isSecretPath(paths, at)) return value === undefined ? undefined : REDACTED;
  if (Array.isArray(value)) return value.map((item, i) => redactSettings(item, paths, [...at, String(i)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([key, item]) => [key, redactSettings(item, paths, [...at, key])]));
  }
  return value;
}

/**
 * Parses an operator's settings. A refusal names the field and what is wrong; for a secret field it
 * says it in zod's own words, never the factor's (a custom message may quote the value).
 */
export function parseSettings<S>(schema: z.ZodType<S>, value: unknown): { ok: true; settings: S } | { ok: false; problem: string } {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, settings: parsed.data };
  const issue = parsed.error.issues[0]!;
  const where = issue.path.map(String).join('.') || '(root)';
  if (!isSecretPath(secretPaths(schema), issue.path)) return { ok: false, problem: `${where}: ${issue.message}` };
  const generic = z.locales.en().localeError(issue as never) as string | { message: string } | undefined;
  const words = typeof generic === 'string' ? generic : (generic?.message ?? 'invalid');
  return { ok: false, problem: `${where}: ${words} (a secret: its value is not shown)` };
}
