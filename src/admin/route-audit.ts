/**
 * Every operator action on a route through the API goes into the route's timeline with the name
 * of the token that took it (issue 11): one `onSend` hook on the whole API, so an action is
 * recorded however it arrives (the dashboard, the CLI, curl) and whichever module serves it.
 *
 * An action is a request that changes something (any method but GET, HEAD, OPTIONS, and not the
 * read-only POST of a dead-letter export) on a path
 * under `/v1/routes/:route/`, answered 2xx; the action's name is the rest of the route pattern
 * (`store`, `purge`, `dead-letters/resubmit`, …; a DELETE of `dead-letters` is
 * `delete-dead-letters`), the count is what the answer says was purged, resubmitted or deleted.
 * Refused requests (401, 403, 404 out of reach) are not the route's events and are not recorded.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessCheck } from '../ingest/http/auth.js';
import type { RouteTimeline } from './route-timeline.js';

const ROUTE_PREFIX = '/v1/routes/:route/';
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** POSTs that only read (a selection too long for a URL); they change nothing, so they are no action. */
const READ_POSTS = new Set(['dead-letters/export']);
/** The answer's field that counts what an action touched (other actions answer the route's snapshot). */
const COUNT_FIELDS: Readonly<Record<string, string>> = {
  purge: 'purged',
  'resubmit-dead-letters': 'resubmitted',
  'delete-dead-letters': 'deleted',
};

/** The action a request pattern names, or undefined when it is not a route action. */
export function routeAction(method: string, pattern: string | undefined): string | undefined {
  if (READS.has(method) || !pattern?.startsWith(ROUTE_PREFIX)) return undefined;
  const rest = pattern.slice(ROUTE_PREFIX.length);
  if (READ_POSTS.has(rest)) return undefined;
  if (method === 'DELETE') return `delete-${rest}`;
  return rest.replace(/^dead-letters\/resubmit$/, 'resubmit-dead-letters');
}

function answeredCount(action: string, payload: unknown): number | undefined {
  const field = COUNT_FIELDS[action];
  if (field === undefined || typeof payload !== 'string' || payload.length > 4096) return undefined;
  try {
    const count = (JSON.parse(payload) as Record<string, unknown>)[field];
    return typeof count === 'number' ? count : undefined;
  } catch {
    // Not JSON: an action that answers no count.
  }
  return undefined;
}

/** Adds the hook to `app` (call before the API's routes are registered, so they inherit it). */
export function auditRouteActions(app: FastifyInstance, timeline: RouteTimeline, access: AccessCheck): void {
  app.addHook('onSend', async (req: FastifyRequest, reply, payload) => {
    const action = routeAction(req.method, req.routeOptions.url);
    if (action === undefined || reply.statusCode >= 300) return payload;
    const route = (req.params as { route?: string }).route;
    if (route === undefined) return payload;
    // The handler already authenticated this request; the check answers the same principal.
    let by: string;
    try {
      by = access(req, 'read').name;
    } catch {
      return payload;
    }
    const top = (req.query as { top?: unknown }).top;
    timeline.record(route, {
      kind: 'action',
      action,
      by,
      count: answeredCount(action, payload),
      top: typeof top === 'number' ? top : undefined,
    });
    return payload;
  });
}
