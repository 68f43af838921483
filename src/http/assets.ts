/** Serves the interaction pages' static files (CSS, browser scripts) from a fixed list; no directory walking. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** A file's version for its link (`/assets/name?version`): a changed file is fetched again despite the cache. */
export function assetVersion(body: Buffer): string {
  return crypto.createHash('sha256').update(body).digest('hex').slice(0, 12);
}

/**
 * @param dirs folders whose files are all served by name
 * @param named single files served under the given names, never their folder: a path (a theme's theme.css and logo) or the content itself (the brand's logo and stylesheet)
 */
export function assetRoutes(dirs: string[], named: Record<string, string | Buffer> = {}): Router {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) {
      const type = TYPES[path.extname(name)];
      if (type) files.set(name, { body: fs.readFileSync(path.join(dir, name)), type });
    }
  }
  for (const [name, file] of Object.entries(named)) {
    const type = TYPES[path.extname(name)];
    if (!type) throw new Error(`asset ${name}: no content type for its extension`);
    if (files.has(name)) throw new Error(`asset ${name} is served twice`);
    files.set(name, { body: typeof file === 'string' ? fs.readFileSync(file) : file, type });
  }
  const router = new Router();
  router.get('/assets/:name', (ctx) => {
    const file = files.get(ctx.params.name!);
    if (!file) {
      ctx.status = 404;
      ctx.body = { error: 'not_found', error_description: 'no such asset' };
      return;
    }
    ctx.type = file.type;
    ctx.set('Cache-Control', 'public, max-age=3600');
    // An SVG opened on its own is a document of this origin: no script of its may run here.
    if (file.type === TYPES['.svg']) ctx.set('Content-Security-Policy', 'sandbox');
    ctx.body = file.body;
  });
  return router;
}

/** Registers a file served under /assets/ from outside the asset folders (e.g. a package's browser bundle). */
export function extraAsset(files: Record<string, string>): Router {
  const router = new Router();
  for (const [name, file] of Object.entries(files)) {
    const body = fs.readFileSync(file);
    router.get(`/assets/${name}`, (ctx) => {
      ctx.type = TYPES[path.extname(name)] ?? 'application/octet-stream';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = body;
    });
  }
  return router;
}
