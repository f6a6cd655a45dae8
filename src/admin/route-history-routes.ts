/**
 * The route detail's API (issue 11, docs/http-api.md): a route's history over a window, its
 * event timeline, and the routes table's per-route activity (oldest pending message, last
 * delivery, inQueue sparkline). Read scope; a route out of the token's reach answers 404 like
 * one that does not exist, and the activity list holds only routes within reach (SPEC §8).
 */
import type { FastifyInstance } from 'fastify';
import { type AccessCheck, reachesAll } from '../ingest/http/auth.js';
import type { Waystation } from '../waystation.js';
import { nameParam } from './params.js';
import {
  estimate,
  HISTORY_WINDOW_NAMES,
  HISTORY_WINDOWS,
  type HistoryWindow,
  type RouteHistories,
  type RouteReading,
  SPARKLINE_STEP_MS,
} from './route-history.js';
import { type RouteTimeline, TIMELINE_PER_ROUTE } from './route-timeline.js';
import { reachableRoute } from './routes.js';

export interface RouteHistoryRoutesOptions {
  ws: Waystation;
  access: AccessCheck;
  histories: RouteHistories;
  timeline: RouteTimeline;
  /** When a route's oldest pending message was accepted (routeReader's, as of its last reading). */
  oldestPendingAt: (route: string) => number | undefined;
  now?: () => number;
}

/**
 * Reads every route for the history recorder, and remembers when each route's oldest pending
 * message was accepted: one record read per stream when the oldest pending seq moved, none when
 * it did not.
 */
export function routeReader(ws: Waystation): {
  read: () => Promise<RouteReading[]>;
  oldestPendingAt: (route: string) => number | undefined;
} {
  const oldest = new Map<string, Map<string, { seq: number; at: number | undefined }>>();
  const oldestAt = new Map<string, number | undefined>();
  const timestampOf = async (stream: string, seq: number): Promise<number | undefined> => {
    const [m] = await ws.readMessages(stream, { fromSeq: seq, maxMessages: 1, maxBytes: 1 });
    return m?.timestamp;
  };
  const readOldest = async (route: string): Promise<number | undefined> => {
    const known = oldest.get(route) ?? new Map<string, { seq: number; at: number | undefined }>();
    const now = new Map<string, { seq: number; at: number | undefined }>();
    for (const { stream, seq } of ws.oldestPending(route)) {
      const k = known.get(stream);
      now.set(
        stream,
        k?.seq === seq ? k : { seq, at: await timestampOf(stream, seq).catch(() => undefined) },
      );
    }
    oldest.set(route, now);
    let at: number | undefined;
    for (const o of now.values()) if (o.at !== undefined && (at === undefined || o.at < at)) at = o.at;
    return at;
  };
  return {
    read: async () => {
      const routes = await ws.routes();
      for (const name of oldest.keys()) if (!routes.some((r) => r.name === name)) oldest.delete(name);
      const readings: RouteReading[] = [];
      for (const r of routes) {
        oldestAt.set(r.name, await readOldest(r.name));
        let stored = 0;
        for (const s of r.streams) stored += ws.streamBounds(s).lastSeq;
        readings.push({
          name: r.name,
          inQueue: r.inQueue,
          usedBytes: r.usedBytes,
          totals: {
            stored,
            forwarded: r.forwarded,
            expired: r.expired,
            pruned: r.pruned,
            deadLettered: r.deadLettered,
          },
        });
      }
      return readings;
    },
    oldestPendingAt: (route) => oldestAt.get(route),
  };
}

const routeParams = nameParam('route');

export async function routeHistoryRoutes(
  app: FastifyInstance,
  opts: RouteHistoryRoutesOptions,
): Promise<void> {
  const { ws, access, histories, timeline } = opts;
  const now = opts.now ?? Date.now;

  app.get<{ Params: { route: string }; Querystring: { window: HistoryWindow } }>(
    '/v1/routes/:route/history',
    {
      schema: {
        summary:
          "A route's inQueue, usedBytes and rates over 5 min, 1 h or 24 h; time to drain and until full",
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { window: { type: 'string', enum: HISTORY_WINDOW_NAMES, default: '5m' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const route = reachableRoute(ws, access(req, 'read'), req.params.route);
      const at = now();
      const snapshot = await route.snapshot();
      const window = req.query.window;
      const series = histories.read(route.name, window, at);
      return {
        route: route.name,
        window,
        stepMs: HISTORY_WINDOWS[window].stepMs,
        at,
        ...series,
        current: {
          inQueue: snapshot.inQueue,
          usedBytes: snapshot.usedBytes,
          limitBytes: snapshot.limitBytes ?? null,
          limitMessages: snapshot.limitMessages ?? null,
          oldestPendingAt: opts.oldestPendingAt(route.name) ?? null,
          lastDeliveredAt: histories.lastDeliveredAt(route.name) ?? null,
        },
        estimates: estimate(histories.read(route.name, '5m', at), snapshot),
      };
    },
  );

  app.get<{ Params: { route: string }; Querystring: { limit: number } }>(
    '/v1/routes/:route/timeline',
    {
      schema: {
        summary: "A route's events, newest first: state changes, operator actions, gateway starts and stops",
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: TIMELINE_PER_ROUTE, default: 100 } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const route = reachableRoute(ws, access(req, 'read'), req.params.route);
      return { route: route.name, events: timeline.list(route.name, req.query.limit) };
    },
  );

  app.get(
    // `::` is a literal colon in a Fastify path (a custom method, like messages:batch).
    '/v1/routes::activity',
    {
      schema: {
        summary: 'Per route: oldest pending message, last delivery, inQueue over the last 5 minutes',
      },
    },
    async (req) => {
      const principal = access(req, 'read');
      const at = now();
      const routes = (await ws.routes())
        .filter((r) => reachesAll(principal, r.streams))
        .map((r) => ({
          name: r.name,
          oldestPendingAt: opts.oldestPendingAt(r.name) ?? null,
          lastDeliveredAt: histories.lastDeliveredAt(r.name) ?? null,
          inQueue: histories.sparkline(r.name, at),
        }));
      return { at, stepMs: SPARKLINE_STEP_MS, routes };
    },
  );
}
