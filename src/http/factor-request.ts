/**
 * A request to a factor's own route (its browser return, its server-to-server
 * callback) as plain data: the method, the query, the form or JSON fields, the
 * body's exact text (for a signature over it) and only the headers the factor
 * declared. Never the Koa context, the cookies or the session: a factor reads
 * what it asked for and nothing else.
 */
import type { Context } from 'koa';
import type { FactorRequest } from '../../factors/types.ts';
import { readBody } from './replay-body.ts';

/** The most a factor's route reads of a body; a vendor's callback is small. */
export const FACTOR_BODY_LIMIT = 16 * 1024;
const MAX_FIELDS = 64;
const MAX_VALUE = 4096;

function fields(entries: Iterable<[string, unknown]>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [key, value] of entries) {
    if (Object.hasOwn(out, key)) continue;
    if (++n > MAX_FIELDS) return undefined;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      const text = String(value);
      if (text.length > MAX_VALUE) return undefined;
      out[key] = text;
    }
  }
  return out;
}

/** The request as a factor sees it; `ok: false` when it is not one a factor should read (too large, malformed, another method). */
export async function factorRequest(ctx: Context, declared: readonly string[]): Promise<{ ok: true; request: FactorRequest } | { ok: false }> {
  const method = ctx.method;
  if (method !== 'GET' && method !== 'POST') return { ok: false };
  const query = fields(new URLSearchParams(ctx.querystring).entries());
  if (!query) return { ok: false };
  let body = '';
  let form: Record<string, string> = {};
  if (method === 'POST') {
    if (Number(ctx.request.length ?? 0) > FACTOR_BODY_LIMIT) return { ok: false };
    let raw: Buffer;
    try {
      raw = await readBody(ctx);
    } catch {
      return { ok: false };
    }
    if (raw.length > FACTOR_BODY_LIMIT) return { ok: false };
    body = raw.toString('utf8');
    const parsed = ctx.is('application/x-www-form-urlencoded') ? fields(new URLSearchParams(body).entries()) : ctx.is('json', '+json') ? jsonFields(body) : {};
    if (!parsed) return { ok: false };
    form = parsed;
  }
  const headers: Record<string, string> = {};
  for (const name of declared) {
    const value = ctx.get(name);
    if (value) headers[name] = value;
  }
  return { ok: true, request: { method, query, form, body, headers } };
}

function jsonFields(body: string): Record<string, string> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  return fields(Object.entries(value));
}
