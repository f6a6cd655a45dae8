/**
 * The dashboard's files (issue 11): `GET /ui` (and `/ui/`) answers `dist/ui/index.html`,
 * `GET /ui/assets/<name>` the bundle's files, all from the package — nothing from anywhere else
 * (edge sites are often offline). `npm run build` writes them (scripts/build-ui.mjs); their names
 * carry a content hash, so they are cached for good and index.html not at all.
 */
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, WaystationError } from '../errors.js';

/** The dashboard's Content-Security-Policy, on every response under /ui. */
export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** dist/ui of this package, from src/admin (tests, tsx) and dist/admin (the build) alike. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json; charset=utf-8',
};

const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

export interface UiAssetsOptions {
  /** Where index.html and assets/ are; default dist/ui of this package. */
  dir?: string;
}

function notBuilt(dir: string): WaystationError {
  return new WaystationError(
    ErrorCodes.HttpNotFound,
    `The dashboard is not built (no ${join(dir, 'index.html')}); run "npm run build".`,
    { httpStatus: 404 },
  );
}

export async function uiAssetRoutes(app: FastifyInstance, opts: UiAssetsOptions): Promise<void> {
  const dir = opts.dir ?? DEFAULT_UI_DIR;
  const index = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const html = await readFile(join(dir, 'index.html')).catch(() => {
      throw notBuilt(dir);
    });
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(html);
  };
  app.get('/ui', { schema: { hide: true } }, index);
  app.get('/ui/', { schema: { hide: true } }, index);
  app.get<{ Params: { file: string } }>(
    '/ui/assets/:file',
    { schema: { hide: true } },
    async (req, reply) => {
      const { file } = req.params;
      const type = TYPES[extname(file)];
      const missing = new WaystationError(ErrorCodes.HttpNotFound, `No dashboard file ${file}.`, {
        httpStatus: 404,
      });
      if (!ASSET_NAME.test(file) || !type) throw missing;
      const body = await readFile(join(dir, 'assets', file)).catch(() => {
        throw missing;
      });
      return reply
        .header('content-type', type)
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(body);
    },
  );
}
