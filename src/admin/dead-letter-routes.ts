/**
 * A route's dead letters in the admin API (SPEC §5): list them (optionally of one reason),
 * read one's payload, resubmit or delete some (ids, a reason, or all).
 *
 * Reach (SPEC §8): scope `read` lists and reads, `admin` acts; a route out of the token's reach
 * answers 404 as one that does not exist (routes.ts `reachableRoute`).
 *
 * A payload is always answered as `application/octet-stream` with `Content-Disposition:
 * attachment`: it is whatever a producer sent, and served as its own content type from the
 * gateway's origin an HTML payload would run as a page beside the dashboard. Its declared type
 * goes in `Waystation-Content-Type`.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { BadRequestError, UnknownDeadLetterError } from '../errors.js';
import type { AccessCheck, Principal } from '../ingest/http/auth.js';
import { type DeadLetter, type DeadLetterReason, DeadLetterReasons } from '../store/dead-letters.js';
import { ENCODED_HEADERS, setHttpHeader } from '../store/http-headers.js';
import type { RouteHandle, Waystation } from '../waystation.js';
import { nameParam } from './params.js';

export interface DeadLetterRoutesOptions {
  ws: Waystation;
  access: AccessCheck;
  /** The route if it exists and is within the principal's reach (routes.ts reachableRoute). */
  reachableRoute: (principal: Principal, name: string) => RouteHandle;
}

/** Message ids are `<incarnation>-<seq>`; this bounds what the API takes. */
const ID_MAX_LENGTH = 256;
/** The most of a payload `?maxBytes=` asks for (a preview; the whole one streams without it). */
const PREVIEW_MAX_BYTES = 1024 * 1024;

export const PAYLOAD_BYTES_HEADER = 'waystation-payload-bytes';
export const CONTENT_TYPE_HEADER = 'waystation-content-type';

const routeParams = nameParam('route');
const letterParams = {
  type: 'object',
  properties: {
    route: routeParams.properties.route,
    id: { type: 'string', minLength: 1, maxLength: ID_MAX_LENGTH },
  },
  required: ['route', 'id'],
} as const;

const reasonSchema = { type: 'string', enum: [...DeadLetterReasons] } as const;

export const selectionBody = {
  type: 'object',
  properties: {
    ids: { type: 'array', items: { type: 'string', maxLength: ID_MAX_LENGTH }, maxItems: 100_000 },
    reason: reasonSchema,
    all: { type: 'boolean' },
  },
  additionalProperties: false,
} as const;

export interface SelectionBody {
  ids?: string[];
  reason?: DeadLetterReason;
  all?: boolean;
}

/**
 * The ids an operation targets, undefined for all: the ids given and/or those of one reason
 * (each criterion narrows), or all with `all: true`.
 */
export function selectedIds(
  body: SelectionBody | undefined,
  letters: () => DeadLetter[],
): string[] | undefined {
  const ids = body?.ids && body.ids.length > 0 ? body.ids : undefined;
  const reason = body?.reason;
  if (reason !== undefined) {
    const wanted = ids ? new Set(ids) : undefined;
    return letters()
      .filter((l) => l.reason === reason && (wanted === undefined || wanted.has(l.id)))
      .map((l) => l.id);
  }
  if (ids) return ids;
  if (body?.all === true) return undefined;
  throw new BadRequestError(
    'Name the dead letters: {"ids": ["..."]}, {"reason": "error"}, or {"all": true} for all of them.',
  );
}

export async function deadLetterRoutes(app: FastifyInstance, opts: DeadLetterRoutesOptions): Promise<void> {
  const { ws, access } = opts;

  app.get<{ Params: { route: string }; Querystring: { reason?: DeadLetterReason } }>(
    '/v1/routes/:route/dead-letters',
    {
      schema: {
        summary: "A route's dead letters, oldest first (optionally of one reason)",
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { reason: reasonSchema },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const letters = opts.reachableRoute(access(req, 'read'), req.params.route).deadLetters.list();
      const { reason } = req.query;
      return { deadLetters: reason === undefined ? letters : letters.filter((l) => l.reason === reason) };
    },
  );

  app.get<{ Params: { route: string; id: string }; Querystring: { maxBytes?: number } }>(
    '/v1/routes/:route/dead-letters/:id/payload',
    {
      schema: {
        summary: "One dead letter's payload (the first maxBytes, or all of it streamed)",
        params: letterParams,
        querystring: {
          type: 'object',
          properties: { maxBytes: { type: 'integer', minimum: 1, maximum: PREVIEW_MAX_BYTES } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const route = opts.reachableRoute(access(req, 'read'), req.params.route);
      const { id } = req.params;
      const letter = route.deadLetters.list().find((l) => l.id === id);
      if (!letter) throw new UnknownDeadLetterError(route.name, id);
      // Bounded: one message; its payload is in memory only below the log's blob threshold.
      const [m] = await ws.readMessages(letter.stream, { fromSeq: letter.seq, maxMessages: 1, maxBytes: 1 });
      if (m?.seq !== letter.seq) throw new UnknownDeadLetterError(route.name, id);
      const limit = req.query.maxBytes;
      reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename="${route.name}-${id}.bin"`)
        .header('x-content-type-options', 'nosniff')
        .header(PAYLOAD_BYTES_HEADER, String(m.payloadBytes));
      const declared = m.headers['content-type'];
      if (declared !== undefined) {
        const fields: Record<string, string> = {};
        const encoded: string[] = [];
        setHttpHeader(fields, CONTENT_TYPE_HEADER, declared, encoded);
        if (encoded.length > 0) fields[ENCODED_HEADERS] = encoded.join(',');
        reply.headers(fields);
      }
      if (m.payload) return reply.send(limit === undefined ? m.payload : m.payload.subarray(0, limit));
      const body = ws.openPayload(m);
      if (limit === undefined) return reply.send(body);
      return reply.send(await firstBytes(body, limit));
    },
  );

  app.post<{ Params: { route: string }; Body: SelectionBody }>(
    '/v1/routes/:route/dead-letters/resubmit',
    { schema: { params: routeParams, body: selectionBody } },
    async (req) => {
      const route = opts.reachableRoute(access(req, 'admin'), req.params.route);
      const ids = selectedIds(req.body, () => route.deadLetters.list());
      return { resubmitted: await route.deadLetters.resubmit(ids) };
    },
  );

  app.delete<{ Params: { route: string }; Body: SelectionBody }>(
    '/v1/routes/:route/dead-letters',
    { schema: { params: routeParams, body: selectionBody } },
    async (req) => {
      const route = opts.reachableRoute(access(req, 'admin'), req.params.route);
      const ids = selectedIds(req.body, () => route.deadLetters.list());
      return { deleted: await route.deadLetters.delete(ids) };
    },
  );
}

/** The first `limit` bytes of a payload stream, which is closed then. */
async function firstBytes(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      have += chunk.byteLength;
      if (have >= limit) break;
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit);
}
