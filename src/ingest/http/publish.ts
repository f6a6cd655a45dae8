/**
 * HTTP ingest (SPEC §5): single-message publish (the body streamed straight to the store, so a
 * 2 GiB payload never sits in memory), all-or-nothing NDJSON batches, and receipts with
 * long-polling. A 202 is sent only once the message is durable. Bodies sent with
 * `Content-Encoding: gzip | br` are decoded as they arrive (decode.ts), the size limits applying
 * to the decoded bytes.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { nameParam } from '../../admin/params.js';
import { parseDuration } from '../../config/units.js';
import {
  BadRequestError,
  PayloadTooLargeError,
  UnknownMessageError,
  UnknownStreamError,
  WaitTimeoutError,
} from '../../errors.js';
import { decodeHttpHeader, ENCODED_HEADERS, encodedHeaderNames } from '../../store/http-headers.js';
import type { BatchMessage, MessageStatus, Waystation } from '../../waystation.js';
import { type AccessCheck, type Principal, reachesAll } from './auth.js';
import { type BodyLimits, guardBody, readSmallBody } from './body-guard.js';
import { contentCodings } from './decode.js';

export interface PublishRoutesOptions {
  ws: Waystation;
  maxBodyBytes: number;
  maxBatchBytes: number;
  /** Bodies up to this size (with a Content-Length) are read whole: storage.blobThreshold. */
  inlineBodyBytes: number;
  /** http.bodyTimeout and http.maxStagingBytes, shared by every publish. */
  body: BodyLimits;
  access: AccessCheck;
}

const HEADER_PREFIX = 'waystation-header-';

const publishedSchema = {
  type: 'object',
  properties: { id: { type: 'string' }, stream: { type: 'string' }, seq: { type: 'integer' } },
  required: ['id', 'stream', 'seq'],
} as const;

const streamParams = nameParam('stream');

/** A stream out of the token's reach answers as one that does not exist (SPEC §8). */
function requireStream(principal: Principal, stream: string): void {
  if (!principal.reaches(stream)) throw new UnknownStreamError(stream);
}

export async function publishRoutes(app: FastifyInstance, opts: PublishRoutesOptions): Promise<void> {
  const { ws } = opts;

  await app.register(async (raw) => {
    // The body is handed over as the raw request stream, whatever its content type.
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    raw.post<{ Params: { stream: string } }>(
      '/v1/streams/:stream/messages',
      {
        schema: {
          summary: 'Publish one message; 202 once it is durable',
          params: streamParams,
          response: { 202: publishedSchema },
        },
      },
      async (req, reply) => {
        const { stream } = req.params;
        requireStream(opts.access(req, 'publish'), stream);
        const codings = contentCodings(req.headers['content-encoding']);
        const length = req.headers['content-length'];
        const declared = length === undefined ? undefined : Number(length);
        if (declared !== undefined && declared > opts.maxBodyBytes)
          throw new PayloadTooLargeError(opts.maxBodyBytes);
        const encoded = encodedHeaderNames(header(req, ENCODED_HEADERS));
        const publishOptions = {
          key: messageKey(req, encoded),
          headers: messageHeaders(req, encoded),
          ttl: ttlOf(req),
          idempotencyKey: header(req, 'idempotency-key'),
        };
        const body = req.body as IncomingMessage | undefined;
        if (body && codings.length > 0) {
          const decoded = guardBody(body, declared, opts.body, {
            codings,
            limitBytes: opts.maxBodyBytes,
            what: 'The message body',
          });
          try {
            const payload = await inlineOrStream(decoded, opts.inlineBodyBytes);
            return reply.code(202).send(await ws.publish(stream, payload, publishOptions));
          } finally {
            decoded.destroy();
          }
        }
        // A small body with a declared length is read into memory (the log's fast, ordered path);
        // anything else streams to a side file as it arrives.
        if (!body || (declared !== undefined && declared <= opts.inlineBodyBytes)) {
          const payload = body ? await readSmallBody(body, declared ?? 0, opts.body) : new Uint8Array(0);
          return reply.code(202).send(await ws.publish(stream, payload, publishOptions));
        }
        const guarded = guardBody(body, declared, opts.body);
        try {
          return reply
            .code(202)
            .send(await ws.publish(stream, limited(guarded, opts.maxBodyBytes), publishOptions));
        } finally {
          // A publish refused before it read the body (unknown stream, storage full) ends the
          // guard quietly: the refusal is the answer, not a timeout or an abort.
          guarded.destroy();
        }
      },
    );
  });

  await app.register(async (batch) => {
    batch.removeAllContentTypeParsers();
    batch.addContentTypeParser(
      '*',
      { parseAs: 'string', bodyLimit: opts.maxBatchBytes },
      (_req, body, done) => done(null, body),
    );
    // Authorization before the body is read, and the body bounded while it arrives.
    batch.addHook<{ Params: { stream: string } }>('preParsing', async (req, _reply, payload) => {
      requireStream(opts.access(req, 'publish'), req.params.stream);
      const length = req.headers['content-length'];
      const declared = length === undefined ? undefined : Number(length);
      const codings = contentCodings(req.headers['content-encoding']);
      if (declared !== undefined && declared > opts.maxBatchBytes)
        throw new PayloadTooLargeError(opts.maxBatchBytes, 'The batch body');
      // Fastify's bodyLimit counts what it reads, the decoded bytes; decoding refuses them first.
      const decoding =
        codings.length > 0 ? { codings, limitBytes: opts.maxBatchBytes, what: 'The batch body' } : undefined;
      return guardBody(payload as IncomingMessage, declared, opts.body, decoding);
    });

    batch.post<{ Params: { stream: string } }>(
      '/v1/streams/:stream/messages::batch',
      {
        bodyLimit: opts.maxBatchBytes,
        schema: {
          summary: 'Publish NDJSON messages all-or-nothing; 202 once all are durable',
          params: streamParams,
          response: {
            202: {
              type: 'object',
              properties: {
                ids: { type: 'array', items: { type: ['string', 'null'] } },
                stored: { type: 'integer' },
                duplicates: { type: 'integer' },
                expired: { type: 'integer' },
              },
            },
          },
        },
      },
      async (req, reply) => {
        const { stream } = req.params;
        requireStream(opts.access(req, 'publish'), stream);
        const lines = parseNdjson(String(req.body ?? ''));
        const idempotencyKey = header(req, 'idempotency-key');
        if (lines.some((l) => l.expiresAt !== undefined || l.idempotencyKey !== undefined))
          return reply.code(202).send(await publishLines(ws, stream, lines, idempotencyKey));
        const refs = await ws.publishBatch(stream, lines, { idempotencyKey });
        return reply.code(202).send({ ids: refs.map((r) => r.id) });
      },
    );
  });

  app.get<{ Params: { id: string }; Querystring: { wait?: 'delivered'; timeout?: string } }>(
    '/v1/messages/:id',
    {
      schema: {
        summary: "A message's status per route, optionally waiting until every route is done with it",
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        querystring: {
          type: 'object',
          properties: { wait: { type: 'string', enum: ['delivered'] }, timeout: { type: 'string' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      const principal = opts.access(req, 'read');
      const status = await ws.messageStatus(id);
      if (!principal.reaches(status.stream)) throw new UnknownMessageError(id);
      // Only the routes within the token's reach appear in the receipt (SPEC §8).
      const visible = (st: MessageStatus) => {
        const routes = Object.fromEntries(
          Object.entries(st.routes).filter(([r]) => reachesAll(principal, ws.routeStreams(r) ?? [])),
        );
        return { ...st, routes, settled: settled(routes) };
      };
      if (req.query.wait !== 'delivered') return visible(status);
      const timeout = parseDuration(req.query.timeout ?? '30s');
      if (timeout === undefined || timeout > 300_000) {
        throw new BadRequestError('timeout must be a duration of at most 5m, e.g. "30s".');
      }
      try {
        return visible(await ws.messageStatus(id, { waitFor: 'delivered', timeout }));
      } catch (err) {
        // A long-poll that runs out answers the current state rather than an error.
        if (err instanceof WaitTimeoutError) return visible(await ws.messageStatus(id));
        throw err;
      }
    },
  );
}

function settled(routes: Record<string, string>): boolean {
  return Object.values(routes).every((s) => s !== 'pending');
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function ttlOf(req: FastifyRequest): number | undefined {
  const raw = header(req, 'waystation-ttl');
  if (raw === undefined) return undefined;
  const ms = parseDuration(/^\d+$/.test(raw) ? Number(raw) * 1000 : raw);
  if (ms === undefined)
    throw new BadRequestError(
      `Waystation-TTL "${raw}" is not a duration: write seconds ("30") or "30s", "5m".`,
    );
  return ms;
}

/**
 * Message headers: content-type, and every Waystation-Header-<name>; the fields listed in
 * Waystation-Encoded-Headers (what a waystation target had to percent-encode) decoded.
 */
function messageHeaders(req: FastifyRequest, encoded: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  const contentType = header(req, 'content-type');
  if (contentType !== undefined)
    out['content-type'] = encoded.has('content-type')
      ? decodeHttpHeader(contentType, 'Content-Type')
      : contentType;
  for (const [field, raw] of Object.entries(req.headers)) {
    if (!field.startsWith(HEADER_PREFIX) || raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(', ') : raw;
    const name = field.slice(HEADER_PREFIX.length);
    const [k, v] = encoded.has(field)
      ? [decodeHttpHeader(name, field), decodeHttpHeader(value, field)]
      : [name, value];
    // defineProperty: a header named `__proto__` is a header, not the object's prototype.
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Waystation-Key, decoded when Waystation-Encoded-Headers lists it. */
function messageKey(req: FastifyRequest, encoded: ReadonlySet<string>): string | undefined {
  const key = header(req, 'waystation-key');
  if (key === undefined || !encoded.has('waystation-key')) return key;
  return decodeHttpHeader(key, 'Waystation-Key');
}

/** Passes the body through, failing with 413 once it passes `limit` (nothing is stored then). */
async function* limited(body: AsyncIterable<Uint8Array>, limit: number): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.byteLength;
    if (seen > limit) throw new PayloadTooLargeError(limit);
    yield chunk;
  }
}

/**
 * A decoded body read into memory while it stays within `inlineBytes` (the log's fast path, as
 * for a small body with a Content-Length); past that it streams on to a side file: what was
 * read, then the rest as it is decoded.
 */
async function inlineOrStream(body: Readable, inlineBytes: number): Promise<Buffer | AsyncIterable<Buffer>> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  while (size <= inlineBytes) {
    const next = await chunks.next();
    if (next.done) return head.length === 1 ? head[0]! : Buffer.concat(head, size);
    head.push(next.value);
    size += next.value.byteLength;
  }
  return (async function* () {
    while (head.length > 0) yield head.shift()!;
    for (;;) {
      const next = await chunks.next();
      if (next.done) return;
      yield next.value;
    }
  })();
}

interface BatchLine {
  payload?: unknown;
  payloadBase64?: unknown;
  key?: unknown;
  headers?: unknown;
  ttl?: unknown;
  expiresAt?: unknown;
  idempotencyKey?: unknown;
}

/** A parsed batch line: a message, with the per-line fields `waystation import` sends. */
interface ParsedLine extends BatchMessage {
  /** ms since the epoch; the message expires then (instead of a relative ttl). */
  expiresAt?: number | undefined;
  /** This line's own Idempotency-Key (the line is then its own publish). */
  idempotencyKey?: string | undefined;
}

interface LinesAnswer {
  ids: (string | null)[];
  stored: number;
  duplicates: number;
  expired: number;
}

/**
 * A batch whose lines carry `expiresAt` or `idempotencyKey` (what `waystation import` sends).
 * With per-line keys each line is its own idempotent message (Waystation.publishEach): a line
 * whose key was used within storage.dedupWindow, or earlier in the batch, answers the first id
 * and stores nothing; the others are stored in line order in one durable write, all or nothing
 * (in cluster mode one after the other: a failure leaves the lines before it stored). Sending the
 * batch again stores each line once. A line whose expiresAt has passed is not stored (null in
 * ids). Without per-line keys the batch stays one all-or-nothing publish.
 */
async function publishLines(
  ws: Waystation,
  stream: string,
  lines: readonly ParsedLine[],
  idempotencyKey: string | undefined,
): Promise<LinesAnswer> {
  const perLine = lines.some((l) => l.idempotencyKey !== undefined);
  if (perLine && lines.some((l) => l.idempotencyKey === undefined))
    throw new BadRequestError('Either every line carries "idempotencyKey" or none does.');
  if (perLine && idempotencyKey !== undefined)
    throw new BadRequestError(
      'A batch with per-line "idempotencyKey" takes no Idempotency-Key header: send one or the other.',
    );
  const answer: LinesAnswer = { ids: lines.map(() => null), stored: 0, duplicates: 0, expired: 0 };
  // The remaining TTL is taken at the last moment, so the stored expiry is the line's within ms.
  const live = (line: ParsedLine): BatchMessage | undefined => {
    const { expiresAt, idempotencyKey: _, ...message } = line;
    if (expiresAt === undefined) return message;
    const ttl = expiresAt - Date.now();
    if (ttl <= 0) {
      answer.expired++;
      return undefined;
    }
    return { ...message, ttl };
  };
  if (!perLine) {
    const kept: { at: number; message: BatchMessage }[] = [];
    for (const [at, line] of lines.entries()) {
      const message = live(line);
      if (message) kept.push({ at, message });
    }
    if (kept.length === 0) return answer;
    const refs = await ws.publishBatch(
      stream,
      kept.map((k) => k.message),
      { idempotencyKey },
    );
    for (const [i, ref] of refs.entries()) answer.ids[kept[i]!.at] = ref.id;
    answer.stored = refs.length;
    return answer;
  }
  const kept: { at: number; message: BatchMessage & { idempotencyKey: string } }[] = [];
  for (const [at, line] of lines.entries()) {
    const message = live(line);
    if (message) kept.push({ at, message: { ...message, idempotencyKey: line.idempotencyKey! } });
  }
  if (kept.length === 0) return answer;
  const { refs, duplicate } = await ws.publishEach(
    stream,
    kept.map((k) => k.message),
  );
  for (const [i, ref] of refs.entries()) {
    answer.ids[kept[i]!.at] = ref.id;
    if (duplicate[i]) answer.duplicates++;
    else answer.stored++;
  }
  return answer;
}

/** Standard base64, padding optional, nothing else: Buffer.from would silently skip the rest. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

function parseNdjson(text: string): ParsedLine[] {
  const messages: ParsedLine[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const at = `line ${i + 1}`;
    let obj: BatchLine;
    try {
      obj = JSON.parse(line) as BatchLine;
    } catch {
      throw new BadRequestError(
        `${at} is not JSON; send one {"payload"|"payloadBase64","key","headers"} object per line.`,
      );
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
      throw new BadRequestError(`${at} is not a JSON object.`);
    let payload: Buffer;
    if (typeof obj.payload === 'string' && obj.payloadBase64 === undefined)
      payload = Buffer.from(obj.payload);
    else if (typeof obj.payloadBase64 === 'string' && obj.payload === undefined) {
      if (!BASE64.test(obj.payloadBase64))
        throw new BadRequestError(
          `${at}: "payloadBase64" is not base64 (A-Z, a-z, 0-9, "+", "/", "=" padding, no spaces); nothing of the batch was stored.`,
        );
      payload = Buffer.from(obj.payloadBase64, 'base64');
    } else throw new BadRequestError(`${at} needs exactly one of "payload" (string) or "payloadBase64".`);
    if (obj.key !== undefined && typeof obj.key !== 'string')
      throw new BadRequestError(`${at}: "key" must be a string.`);
    const headers = obj.headers ?? {};
    if (
      typeof headers !== 'object' ||
      headers === null ||
      Object.values(headers).some((v) => typeof v !== 'string')
    ) {
      throw new BadRequestError(`${at}: "headers" must be an object of strings.`);
    }
    if (obj.ttl !== undefined && typeof obj.ttl !== 'string' && typeof obj.ttl !== 'number') {
      throw new BadRequestError(`${at}: "ttl" must be a duration ("30s") or ms.`);
    }
    if (obj.expiresAt !== undefined && obj.expiresAt !== null) {
      if (typeof obj.expiresAt !== 'number' || !Number.isSafeInteger(obj.expiresAt) || obj.expiresAt < 0)
        throw new BadRequestError(`${at}: "expiresAt" must be ms since the epoch (an integer).`);
      if (obj.ttl !== undefined) throw new BadRequestError(`${at}: give "ttl" or "expiresAt", not both.`);
    }
    if (
      obj.idempotencyKey !== undefined &&
      (typeof obj.idempotencyKey !== 'string' || obj.idempotencyKey === '' || obj.idempotencyKey.length > 256)
    )
      throw new BadRequestError(`${at}: "idempotencyKey" must be a string of 1-256 characters.`);
    messages.push({
      payload,
      key: obj.key as string | undefined,
      headers: headers as Record<string, string>,
      ttl: obj.ttl as string | number | undefined,
      expiresAt: typeof obj.expiresAt === 'number' ? obj.expiresAt : undefined,
      idempotencyKey: obj.idempotencyKey as string | undefined,
    });
  }
  if (messages.length === 0) throw new BadRequestError('The batch is empty: send one JSON object per line.');
  return messages;
}
