/**
 * The admin HTTP API (SPEC §5): streams and routes with their state and counters, the
 * operator's store/forward/purge/reset-counters; dead letters (dead-letter-routes.ts) and exports
 * (export-routes.ts) are registered from here.
 *
 * Reach (SPEC §8): a stream is within a token's reach when its globs match it, a route when
 * every stream it reads is; listings show only what is within reach, and an object out of reach
 * answers 404 exactly as one that does not exist, so a token cannot probe for names.
 */
import type { FastifyInstance } from 'fastify';
import { NotClusteredError, UnknownRouteError, UnknownStreamError } from '../errors.js';
import { type AccessCheck, type Principal, reachesAll } from '../ingest/http/auth.js';
import type { RouteHandle, Waystation } from '../waystation.js';
import { deadLetterRoutes } from './dead-letter-routes.js';
import { exportRoutes } from './export-routes.js';
import { nameParam } from './params.js';

export interface AdminRoutesOptions {
  ws: Waystation;
  access: AccessCheck;
}

const routeParams = nameParam('route');
const streamParams = nameParam('stream');

/** The route, if it exists and is within the principal's reach; otherwise 404 alike. */
export function reachableRoute(ws: Waystation, principal: Principal, name: string): RouteHandle {
  const route = ws.route(name);
  if (!reachesAll(principal, route.streams)) throw new UnknownRouteError(name);
  return route;
}

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions): Promise<void> {
  const { ws, access } = opts;

  app.get('/v1/streams', { schema: { summary: 'Streams with their size and routes' } }, async (req) => {
    const principal = access(req, 'read');
    return { streams: visibleStreams(ws, principal) };
  });

  app.get<{ Params: { stream: string } }>(
    '/v1/streams/:stream',
    { schema: { params: streamParams } },
    async (req) => {
      const principal = access(req, 'read');
      const stream = visibleStreams(ws, principal).find((s) => s.name === req.params.stream);
      if (!stream) throw new UnknownStreamError(req.params.stream);
      return stream;
    },
  );

  app.get(
    '/v1/cluster',
    { schema: { summary: 'Cluster mode: nodes, heartbeats, route owners' } },
    async (req) => {
      const principal = access(req, 'read');
      const view = await ws.clusterView();
      if (!view) throw new NotClusteredError();
      // Routes out of the token's reach stay unnamed, as everywhere else.
      const owners = Object.fromEntries(
        Object.entries(view.owners).filter(([route]) => reachesAll(principal, ws.route(route).streams)),
      );
      const nodes = view.nodes.map((n) => ({ ...n, routes: n.routes.filter((r) => r in owners) }));
      return { ...view, nodes, owners };
    },
  );

  app.get('/v1/routes', { schema: { summary: 'Routes with state and counters' } }, async (req) => {
    const principal = access(req, 'read');
    const routes = await ws.routes();
    return { routes: routes.filter((r) => reachesAll(principal, r.streams)) };
  });

  app.get<{ Params: { route: string } }>(
    '/v1/routes/:route',
    { schema: { params: routeParams } },
    async (req) => reachableRoute(ws, access(req, 'read'), req.params.route).snapshot(),
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/store',
    { schema: { params: routeParams } },
    async (req) => {
      const route = reachableRoute(ws, access(req, 'admin'), req.params.route);
      await route.store();
      return route.snapshot();
    },
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/forward',
    { schema: { params: routeParams } },
    async (req) => {
      const route = reachableRoute(ws, access(req, 'admin'), req.params.route);
      await route.forward();
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
      const route = reachableRoute(ws, access(req, 'admin'), req.params.route);
      return { purged: await route.purge({ top: req.query.top }) };
    },
  );

  app.post<{ Params: { route: string } }>(
    '/v1/routes/:route/reset-counters',
    { schema: { params: routeParams } },
    async (req) => {
      const route = reachableRoute(ws, access(req, 'admin'), req.params.route);
      await route.resetCounters();
      return route.snapshot();
    },
  );

  // Dead letters: list, one's payload, resubmit and delete (dead-letter-routes.ts).
  await deadLetterRoutes(app, {
    ws,
    access,
    reachableRoute: (principal, name) => reachableRoute(ws, principal, name),
  });

  // Streaming NDJSON exports of streams, pending messages and dead letters (export-routes.ts).
  await exportRoutes(app, {
    ws,
    access,
    reachableRoute: (principal, name) => reachableRoute(ws, principal, name),
  });
}

/** Streams within reach, each listing only the routes within reach. */
function visibleStreams(ws: Waystation, principal: Principal): ReturnType<Waystation['streams']> {
  if (principal.unlimited) return ws.streams();
  return ws
    .streams()
    .filter((s) => principal.reaches(s.name))
    .map((s) => ({ ...s, routes: s.routes.filter((r) => reachesAll(principal, ws.route(r).streams)) }));
}
