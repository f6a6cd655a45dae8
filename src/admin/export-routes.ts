/**
 * Streaming exports (issue 14, "Moving a backlog"): a stream's messages in a seq range, a
 * route's pending messages, a route's dead letters, as NDJSON, one message per line:
 *
 *   {"id","stream","seq","timestamp","key","headers","expiresAt",["deadLetter",]"payload"|"payloadBase64"}
 *
 * `key` and `expiresAt` are null when absent; `payload` (a string) only for a text or JSON
 * content type whose bytes are valid UTF-8, `payloadBase64` otherwise; the payload is always the
 * last field, so a payload held in a side file is streamed into its line chunk by chunk.
 * `Waystation-Export-Total` says how many lines to expect (an estimate for pending messages,
 * which a route may deliver meanwhile); `waystation import` reads every kind of export.
 *
 * Memory is bounded by one batch, never by the backlog: the store is read `batchMessages` /
 * `batchBytes` at a time, through a Readable that is pulled only as the socket drains, so the
 * next batch is read only once the client took the previous one. A client that takes nothing for
 * `idleTimeoutMs` has its connection closed.
 *
 * Reach (SPEC §8): scope `read`; a stream out of the token's reach, or a route with a stream
 * out of it, answers 404 exactly as one that does not exist.
 */
import { Readable } from 'node:stream';
import { TextDecoder } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError, UnknownStreamError } from '../errors.js';
import type { AccessCheck, Principal } from '../ingest/http/auth.js';
import type { DeadLetter, DeadLetterReason } from '../store/dead-letters.js';
import type { StoredMessage } from '../store/message.js';
import type { RouteHandle, Waystation } from '../waystation.js';
import { type SelectionBody, selectedIds, selectionBody } from './dead-letter-routes.js';
import { nameParam } from './params.js';

export interface ExportRoutesOptions {
  ws: Waystation;
  access: AccessCheck;
  /** The route if it exists and is within the principal's reach (routes.ts reachableRoute). */
  reachableRoute: (principal: Principal, name: string) => RouteHandle;
  /** Messages read from the store at a time. Default 256. */
  batchMessages?: number;
  /** Payload bytes read from the store at a time (a message larger than this is read alone). Default 4 MiB. */
  batchBytes?: number;
  /** A client that takes nothing of the response for this long is disconnected, ms. Default 30 000. */
  idleTimeoutMs?: number;
}

export interface ResolvedExportOptions {
  readonly batchMessages: number;
  readonly batchBytes: number;
  readonly idleTimeoutMs: number;
}

export function resolveExportOptions(options: Partial<ResolvedExportOptions> = {}): ResolvedExportOptions {
  return Object.freeze({
    batchMessages: options.batchMessages ?? 256,
    batchBytes: options.batchBytes ?? 4 * 1024 * 1024,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
  });
}

/** The response header with the number of lines to expect. */
export const EXPORT_TOTAL_HEADER = 'waystation-export-total';

const streamParams = nameParam('stream');
const routeParams = nameParam('route');

/** One piece of the response: a whole line, or part of one whose payload streams from a side file. */
type Piece = string;

export async function exportRoutes(app: FastifyInstance, opts: ExportRoutesOptions): Promise<void> {
  const { ws, access } = opts;
  const limits = resolveExportOptions(opts);

  app.get<{ Params: { stream: string }; Querystring: { fromSeq?: number; toSeq?: number } }>(
    '/v1/streams/:stream/export',
    {
      schema: {
        summary: "A stream's messages (optionally a seq range) as NDJSON, streamed",
        params: streamParams,
        querystring: {
          type: 'object',
          properties: { fromSeq: { type: 'integer', minimum: 1 }, toSeq: { type: 'integer', minimum: 1 } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const principal = access(req, 'read');
      const { stream } = req.params;
      if (!principal.reaches(stream)) throw new UnknownStreamError(stream);
      const bounds = ws.streamBounds(stream);
      const from = Math.max(req.query.fromSeq ?? 1, bounds.firstSeq);
      const to = Math.min(req.query.toSeq ?? bounds.lastSeq, bounds.lastSeq);
      if (
        req.query.fromSeq !== undefined &&
        req.query.toSeq !== undefined &&
        req.query.fromSeq > req.query.toSeq
      )
        throw new BadRequestError(`fromSeq (${req.query.fromSeq}) is above toSeq (${req.query.toSeq}).`);
      const total = Math.max(0, to - from + 1);
      return send(req, reply, total, limits, () => messageLines(ws, limits, stream, from, to, () => true));
    },
  );

  app.get<{ Params: { route: string }; Querystring: { pending?: boolean } }>(
    '/v1/routes/:route/export',
    {
      schema: {
        summary: "A route's pending messages as NDJSON, streamed (pending=true)",
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { pending: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const route = opts.reachableRoute(access(req, 'read'), req.params.route);
      if (req.query.pending !== true)
        throw new BadRequestError(
          `A route exports its pending messages: add ?pending=true (a stream's whole history: GET /v1/streams/{stream}/export).`,
        );
      const snapshot = await route.snapshot();
      const isPending = async (m: StoredMessage) =>
        (await ws.messageStatus(m.id)).routes[route.name] === 'pending';
      return send(req, reply, snapshot.inQueue + snapshot.inFlight, limits, () =>
        pendingLines(ws, limits, route, isPending),
      );
    },
  );

  app.get<{ Params: { route: string }; Querystring: { reason?: DeadLetterReason } }>(
    '/v1/routes/:route/dead-letters/export',
    {
      schema: {
        summary: "A route's dead letters (optionally of one reason) with their messages as NDJSON, streamed",
        params: routeParams,
        querystring: {
          type: 'object',
          properties: { reason: selectionBody.properties.reason },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const route = opts.reachableRoute(access(req, 'read'), req.params.route);
      const { reason } = req.query;
      const letters = route.deadLetters.list().filter((l) => reason === undefined || l.reason === reason);
      return send(req, reply, letters.length, limits, () => deadLetterLines(ws, limits, route.name, letters));
    },
  );

  // The same for a selection, whose ids would not fit in a URL: a read, so scope `read`.
  app.post<{ Params: { route: string }; Body: SelectionBody }>(
    '/v1/routes/:route/dead-letters/export',
    {
      schema: {
        summary:
          "Some of a route's dead letters (ids, a reason, or all) with their messages as NDJSON, streamed",
        params: routeParams,
        body: selectionBody,
      },
    },
    async (req, reply) => {
      const route = opts.reachableRoute(access(req, 'read'), req.params.route);
      const all = route.deadLetters.list();
      const ids = selectedIds(req.body, () => all);
      const wanted = ids && new Set(ids);
      const letters = wanted ? all.filter((l) => wanted.has(l.id)) : all;
      return send(req, reply, letters.length, limits, () => deadLetterLines(ws, limits, route.name, letters));
    },
  );
}

/**
 * Answers with the pieces as they are pulled. While the body waits for the client to take what
 * it holds (the generator suspended at a yield) a watchdog runs: past idleTimeoutMs the
 * connection is closed. Time spent reading the store does not count.
 */
function send(
  req: FastifyRequest,
  reply: FastifyReply,
  total: number,
  limits: ResolvedExportOptions,
  pieces: () => AsyncGenerator<Piece>,
): FastifyReply {
  const waiting = { since: undefined as number | undefined };
  const body = Readable.from(watched(pieces(), waiting), { objectMode: false, highWaterMark: 64 * 1024 });
  const timer = setInterval(
    () => {
      if (waiting.since === undefined || Date.now() - waiting.since < limits.idleTimeoutMs) return;
      clearInterval(timer);
      req.log.info(
        { url: req.url, idleTimeoutMs: limits.idleTimeoutMs },
        'export: the client took nothing for the idle timeout; connection closed',
      );
      body.destroy();
      reply.raw.destroy();
    },
    Math.max(10, Math.min(1000, limits.idleTimeoutMs / 4)),
  );
  timer.unref();
  reply.raw.once('close', () => {
    clearInterval(timer);
    body.destroy();
  });
  return reply
    .header('content-type', 'application/x-ndjson')
    .header(EXPORT_TOTAL_HEADER, String(total))
    .send(body);
}

/** Marks when each piece starts waiting to be taken, and when it was. */
async function* watched(
  pieces: AsyncGenerator<Piece>,
  waiting: { since: number | undefined },
): AsyncGenerator<Piece> {
  for await (const piece of pieces) {
    waiting.since = Date.now();
    yield piece;
    waiting.since = undefined;
  }
}

/** The messages of `stream` from `from` to `to` that `keep` keeps, one batch at a time. */
async function* messageLines(
  ws: Waystation,
  limits: ResolvedExportOptions,
  stream: string,
  from: number,
  to: number,
  keep: (m: StoredMessage) => boolean | Promise<boolean>,
): AsyncGenerator<Piece> {
  let next = from;
  while (next <= to) {
    const batch = await ws.readMessages(stream, {
      fromSeq: next,
      maxMessages: Math.min(limits.batchMessages, to - next + 1),
      maxBytes: limits.batchBytes,
    });
    if (batch.length === 0) return;
    for (const m of batch) {
      if (m.seq > to) return;
      if (await keep(m)) yield* lineOf(ws, m, undefined);
    }
    next = batch.at(-1)!.seq + 1;
  }
}

async function* pendingLines(
  ws: Waystation,
  limits: ResolvedExportOptions,
  route: RouteHandle,
  isPending: (m: StoredMessage) => Promise<boolean>,
): AsyncGenerator<Piece> {
  for (const stream of route.streams) {
    // What is there now: messages published during the export are left for the route.
    const { firstSeq, lastSeq } = ws.streamBounds(stream);
    yield* messageLines(ws, limits, stream, firstSeq, lastSeq, isPending);
  }
}

async function* deadLetterLines(
  ws: Waystation,
  limits: ResolvedExportOptions,
  route: string,
  letters: readonly DeadLetter[],
): AsyncGenerator<Piece> {
  for (const letter of letters) {
    // A dead letter keeps its message in the log; one that is gone (resubmitted, deleted
    // meanwhile, collected) is left out.
    const [m] = await ws.readMessages(letter.stream, {
      fromSeq: letter.seq,
      maxMessages: 1,
      maxBytes: limits.batchBytes,
    });
    if (m?.seq !== letter.seq) continue;
    const deadLetter = {
      route,
      reason: letter.reason,
      attempts: letter.attempts,
      lastError: letter.lastError,
      at: letter.at,
    };
    yield* lineOf(ws, m, deadLetter);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isTextType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type.startsWith('text/') || type === 'application/json' || type.endsWith('+json');
}

/** Side-file chunks are re-cut to multiples of 3 bytes, so their base64 pieces join into one. */
const BASE64_PIECE_BYTES = 48 * 1024;

/** One message's line; a payload in a side file is streamed into it in base64 pieces. */
async function* lineOf(
  ws: Waystation,
  m: StoredMessage,
  deadLetter: object | undefined,
): AsyncGenerator<Piece> {
  const head: Record<string, unknown> = {
    id: m.id,
    stream: m.stream,
    seq: m.seq,
    timestamp: m.timestamp,
    key: m.key ?? null,
    headers: m.headers,
    expiresAt: m.expiresAt ?? null,
  };
  if (deadLetter) head.deadLetter = deadLetter;
  const open = JSON.stringify(head).slice(0, -1);
  if (m.payload) {
    if (isTextType(m.headers['content-type'])) {
      try {
        yield `${open},"payload":${JSON.stringify(strictUtf8.decode(m.payload))}}\n`;
        return;
      } catch {
        // Not valid UTF-8 after all: base64.
      }
    }
    yield `${open},"payloadBase64":"${m.payload.toString('base64')}"}\n`;
    return;
  }
  yield `${open},"payloadBase64":"`;
  const payload = ws.openPayload(m);
  let rest: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of payload as AsyncIterable<Buffer>) {
      let bytes = rest.byteLength > 0 ? Buffer.concat([rest, chunk]) : chunk;
      while (bytes.byteLength >= BASE64_PIECE_BYTES) {
        yield bytes.subarray(0, BASE64_PIECE_BYTES).toString('base64');
        bytes = bytes.subarray(BASE64_PIECE_BYTES);
      }
      const whole = bytes.byteLength - (bytes.byteLength % 3);
      if (whole > 0) yield bytes.subarray(0, whole).toString('base64');
      rest = Buffer.from(bytes.subarray(whole));
    }
  } finally {
    payload.destroy();
  }
  yield `${rest.toString('base64')}"}\n`;
}
