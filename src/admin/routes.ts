/**
 * The admin HTTP API (SPEC §5): streams and routes with their state and counters, the
 * operator's store/forward/purge/reset-counters, and dead letters.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, UnknownStreamError } from '../errors.js';
import type { Scope } from '../ingest/http/auth.js';
import type { Waystation } from '../waystation.js';

export interface AdminRoutesOptions {
  ws: Waystation;
  authorize: (req: FastifyRequest, scope: Scope, stream?: string) => void;
}

const routeParams = {
  type: 'object',
  properties: { route: { type: 'string', minLength: 1, maxLength: 128 } },
  required: ['route'],
} as const;

const idsBody = {
  type: 'object',
  properties: { ids: { type: 'array', items: { type: 'string' } }, all: { type: 'boolean' } },
  additionalProperties: false,
} as const;

interface IdsBody {
  ids?: string[];
  all?: boolean;
}

/** Which dead letters an operation targets: the ids given, or all with `all: true`. */
function selection(body: IdsBody | undefined): string[] | undefined {
  if (body?.all === true) return undefined;
  if (body?.ids && body.ids.length > 0) return body.ids;
  throw new BadRequestError('Name the dead letters: {"ids": ["..."]}, or {"all": true} for all of them.');
}

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions): Promise<void> {
  const { ws } = opts;

  app.get('/v1/streams', { schema: { summary: 'Streams with their size and routes' } }, async (req) => {
    opts.authorize(req, 'read');
    return { streams: ws.streams() };
  });

  app.get<{ Params: { stream: string } }>('/v1/streams/:stream', async (req) => {
    opts.authorize(req, 'read', req.params.stream);
    const stream = ws.streams().find((s) => s.name === req.params.stream);
    if (!stream) throw new UnknownStreamError(req.params.stream);
    return stream;
  });

  app.get('/v1/routes', { schema: { summary: 'Routes with state and counters' } }, async (req) => {
    opts.authorize(req, 'read');
    return { routes: await ws.routes() };
  });

  app.get<{ Params: { route: string } }>(
    '/v1/routes/:route',
    { schema: { params: routeParams } },
    async (req) => {
      opts.authorize(req, 'read');
      return ws.route(req.params.route).snapshot();
    },
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/store',
    { schema: { params: routeParams } },
    async (req) => {
      opts.authorize(req, 'admin');
      const route = ws.route(req.params.route);
      route.store();
      return route.snapshot();
    },
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/forward',
    { schema: { params: routeParams } },
    async (req) => {
      opts.authorize(req, 'admin');
      const route = ws.route(req.params.route);
      route.forward();
      return route.snapshot();
    },
  );

  app.post<{ Params: { route: string }; Querystring: { top?: number } }>(
    '/v1/routes/:route/purge',
    {
      schema: {
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { top: { type: 'integer', minimum: 1 } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      opts.authorize(req, 'admin');
      return { purged: ws.route(req.params.route).purge({ top: req.query.top }) };
    },
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/reset-counters',
    { schema: { params: routeParams } },
    async (req) => {
      opts.authorize(req, 'admin');
      const route = ws.route(req.params.route);
      route.resetCounters();
      return route.snapshot();
    },
  );

  app.get<{ Params: { route: string } }>(
    '/v1/routes/:route/dead-letters',
    { schema: { params: routeParams } },
    async (req) => {
      opts.authorize(req, 'read');
      return { deadLetters: ws.route(req.params.route).deadLetters.list() };
    },
  );

  app.post<{ Params: { route: string }; Body: IdsBody }>(
    '/v1/routes/:route/dead-letters/resubmit',
    { schema: { params: routeParams, body: idsBody } },
    async (req) => {
      opts.authorize(req, 'admin');
      return { resubmitted: await ws.route(req.params.route).deadLetters.resubmit(selection(req.body)) };
    },
  );

  app.delete<{ Params: { route: string }; Body: IdsBody }>(
    '/v1/routes/:route/dead-letters',
    { schema: { params: routeParams, body: idsBody } },
    async (req) => {
      opts.authorize(req, 'admin');
      return { deleted: await ws.route(req.params.route).deadLetters.delete(selection(req.body)) };
    },
  );
}
