/**
 * The input guard: one place at the edge, before the interaction routes and
 * node-oidc-provider, that refuses text the database cannot take (a NUL, a lone
 * surrogate, malformed UTF-8; see clean-input.ts) in the path, every query
 * parameter, every form field or JSON member of the body, the headers, and the
 * client credentials of HTTP Basic. Refused with 400 before any row is read or
 * written: `invalid_request` as JSON for the protocol endpoints and APIs, a page
 * in the person's language for the sign-in pages (and for a browser arriving at
 * /auth, /session/end or a device's verification page, /device).
 *
 * The body is read here once (at most the provider's own limit) and handed on
 * as a fresh stream (replay-body.ts): node-oidc-provider and co-body read the
 * request stream themselves.
 */
import { isUtf8 } from 'node:buffer';
import type { Context, Middleware } from 'koa';
import { isCleanText, decodeComponent, scanBasicCredentials, scanJson, scanUrlEncoded, type Refusal } from './clean-input.ts';
import { readBody } from './replay-body.ts';
import { speakerFor, views } from '../../interactions/render.ts';

/** Endpoints a browser is sent to (sign-in, sign-out, a device's verification page): a page when it asks for HTML. */
const BROWSER_ENDPOINTS = new Set(['/auth', '/session/end', '/session/end/confirm']);
const isBrowserEndpoint = (path: string) => BROWSER_ENDPOINTS.has(path) || (path.startsWith('/device') && path !== '/device/auth');

const CHARSETS_AS_UTF8 = new Set(['utf-8', 'utf8', 'us-ascii']);

function wantsPage(ctx: Context): boolean {
  if (ctx.path.startsWith('/interaction/')) return ctx.accepts(['html', 'json']) === 'html';
  return isBrowserEndpoint(ctx.path) && ctx.accepts(['json', 'html']) === 'html';
}

function refuse(ctx: Context, status: 400 | 413, description: string, key: 'input.refused.message' | 'input.tooLarge.message'): void {
  ctx.state.log?.info({ path: ctx.path, reason: description }, 'input refused at the edge');
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (wantsPage(ctx)) {
    const { lang, t } = speakerFor(ctx);
    ctx.type = 'html';
    ctx.body = views().render('error', { lang, title: t('input.refused.title'), message: t(key) });
  } else {
    ctx.body = { error: 'invalid_request', error_description: description };
  }
}

const described = (r: Refusal) =>
  `${r.name !== undefined ? `parameter ${JSON.stringify(r.name)} in the ${r.where}` : `the ${r.where}`} contains a NUL character, a lone surrogate or malformed UTF-8`;

function scanHeaders(ctx: Context): Refusal | undefined {
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    for (const v of Array.isArray(value) ? value : [value ?? '']) if (!isCleanText(v)) return { where: `${name} header` };
  }
  const authorization = ctx.get('authorization');
  return authorization ? scanBasicCredentials(authorization) : undefined;
}

const hasBody = (ctx: Context) => ctx.req.headers['transfer-encoding'] !== undefined || Number(ctx.req.headers['content-length'] ?? 0) > 0;

/** Reads the body (the request's charset, as the provider decodes it) and scans it; undefined when it may pass. */
async function scanBody(ctx: Context): Promise<{ refusal?: Refusal; tooLarge?: true; unreadable?: string } | undefined> {
  let raw: Buffer;
  try {
    raw = await readBody(ctx);
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') return { tooLarge: true };
    return { unreadable: 'the request body could not be read' };
  }
  const charset = ctx.request.charset.toLowerCase();
  let text: string;
  if (!charset || CHARSETS_AS_UTF8.has(charset)) {
    if (!isUtf8(raw)) return { refusal: { where: 'request body' } };
    text = raw.toString('utf8');
  } else {
    try {
      text = new TextDecoder(charset, { fatal: true }).decode(raw);
    } catch {
      return { unreadable: `the request body is not valid ${charset}` };
    }
  }
  if (ctx.is('json')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON: whoever reads it says so (node-oidc-provider: invalid_request).
      return isCleanText(text) ? undefined : { refusal: { where: 'request body' } };
    }
    const refusal = scanJson(json, 'JSON body');
    return refusal && { refusal };
  }
  // Anything else is read as a form where it is read at all (co-body parses any body as one at the sign-in pages).
  const refusal = scanUrlEncoded(text, 'form body');
  return refusal && { refusal };
}

export function inputGuard(): Middleware {
  return async (ctx, next) => {
    if (decodeComponent(ctx.path.replaceAll('+', '%2B')) === undefined) return refuse(ctx, 400, described({ where: 'request path' }), 'input.refused.message');
    const early = scanUrlEncoded(ctx.querystring, 'query') ?? scanHeaders(ctx);
    if (early) return refuse(ctx, 400, described(early), 'input.refused.message');
    if (hasBody(ctx)) {
      const body = await scanBody(ctx);
      if (body?.tooLarge) return refuse(ctx, 413, 'the request body is too large', 'input.tooLarge.message');
      if (body?.unreadable) return refuse(ctx, 400, body.unreadable, 'input.refused.message');
      if (body?.refusal) return refuse(ctx, 400, described(body.refusal), 'input.refused.message');
    }
    await next();
  };
}
