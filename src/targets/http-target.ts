/**
 * Delivers to an HTTP endpoint through an undici pool with keep-alive.
 *
 * - `single` mode: one POST per message, payload as the body (streamed from its side file when
 *   large), with the message's headers, `content-type`, `Waystation-Id`, `Waystation-Stream`,
 *   `Waystation-Seq`, `Waystation-Key` and `Idempotency-Key: <message id>` so receivers can
 *   de-duplicate redeliveries. Messages of one batch go one after another, in order. Header
 *   names and values no HTTP header can carry are percent-encoded and listed in
 *   `Waystation-Encoded-Headers` (src/store/http-headers.ts).
 * - `batch` mode: one POST of NDJSON (ndjson.ts) per batch; the status applies to all of it.
 * - `compression` (gzip | br, default none; compression.ts): request bodies of both modes are
 *   sent with that Content-Encoding (in single mode the payload, compressed as it is read).
 *
 * Status classification (IBM's "which exceptions trigger store"), overridable per target:
 * 2xx ack; 408, 425, 429, 5xx, connection errors and timeouts nack (Retry-After honoured);
 * any other status error (dead letter).
 */

import { Pool } from 'undici';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, deliverInOrder, nack, permanentError } from '../delivery/target.js';
import { addHttpHeaders, ENCODED_HEADERS, setHttpHeader } from '../store/http-headers.js';
import { type Compression, compressBody, compressStream } from './compression.js';
import { ndjsonBatch } from './ndjson.js';
import { redactUrl } from './template.js';

export interface HttpTargetOptions {
  url: string;
  method?: 'POST' | 'PUT';
  mode?: 'single' | 'batch';
  /** Extra request headers. */
  headers?: Readonly<Record<string, string>>;
  /** Per-request timeout, ms. Default 10 000. */
  timeoutMs?: number;
  auth?: { type: 'basic'; username: string; password: string } | { type: 'bearer'; token: string };
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /** Status codes or ranges ("404", "400-499", "4xx") forced to an outcome. */
  classify?: { ack?: readonly string[]; nack?: readonly string[]; error?: readonly string[] };
  /** Keep-alive connections in the pool. Default 8. */
  connections?: number;
  /** Content-Encoding of request bodies, batch and single mode. Default none. */
  compression?: Compression;
}

type Classification = 'ack' | 'nack' | 'error';

export class HttpTarget implements Target {
  readonly type = 'http';
  private readonly pool: Pool;
  private readonly url: URL;
  private readonly rules: { kind: Classification; test: (status: number) => boolean }[];

  constructor(private readonly options: HttpTargetOptions) {
    this.url = new URL(options.url);
    const tls = options.tls;
    this.pool = new Pool(this.url.origin, {
      connections: options.connections ?? 8,
      connect: tls
        ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized ?? true }
        : undefined,
      headersTimeout: options.timeoutMs ?? 10_000,
      bodyTimeout: options.timeoutMs ?? 10_000,
    });
    this.rules = (['error', 'nack', 'ack'] as const).flatMap((kind) =>
      (options.classify?.[kind] ?? []).map((spec) => ({ kind, test: statusMatcher(spec) })),
    );
  }

  classify(status: number): Classification {
    for (const rule of this.rules) if (rule.test(status)) return rule.kind;
    if (status >= 200 && status < 300) return 'ack';
    if (status === 408 || status === 425 || status === 429 || status >= 500) return 'nack';
    return 'error';
  }

  async deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    const compression = this.options.compression ?? 'none';
    if (this.options.mode === 'batch') {
      const ndjson = await ndjsonBatch(batch);
      const { body, encoding } = await compressBody(ndjson, compression);
      const headers: Record<string, string> = { 'content-type': 'application/x-ndjson' };
      if (encoding) headers['content-encoding'] = encoding;
      const outcome = await this.post(body, headers, signal);
      return batch.map(() => outcome);
    }
    if (compression === 'none')
      return deliverInOrder(batch, (d) =>
        this.post(d.payload ?? d.openPayload(), this.messageHeaders(d), signal),
      );
    return deliverInOrder(batch, async (d) => {
      const headers = this.messageHeaders(d);
      const { body, encoding } = d.payload
        ? await compressBody(d.payload, compression)
        : compressStream(d.openPayload(), compression, d.payloadBytes);
      // A payload stored with its own Content-Encoding (a message header) keeps it: codings are
      // listed in the order they were applied (RFC 9110 §8.4).
      const own = headers['content-encoding'];
      if (encoding) headers['content-encoding'] = own ? `${own}, ${encoding}` : encoding;
      // A compressed stream's length is known only once it is read: sent chunked.
      if (Buffer.isBuffer(body)) headers['content-length'] = String(body.byteLength);
      else delete headers['content-length'];
      return this.post(body, headers, signal);
    });
  }

  private messageHeaders(d: Delivery): Record<string, string> {
    const encoded: string[] = [];
    const headers = addHttpHeaders({}, d.headers, '', encoded);
    headers['content-type'] ??= 'application/octet-stream';
    headers['waystation-id'] = d.id;
    headers['waystation-stream'] = d.stream;
    headers['waystation-seq'] = String(d.seq);
    if (d.key !== undefined) setHttpHeader(headers, 'waystation-key', d.key, encoded);
    if (encoded.length > 0) headers[ENCODED_HEADERS] = encoded.join(',');
    headers['idempotency-key'] = d.id;
    headers['content-length'] = String(d.payloadBytes);
    return headers;
  }

  private async post(
    body: string | Buffer | NodeJS.ReadableStream,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const all: Record<string, string> = { ...headers, ...this.options.headers };
    const auth = this.options.auth;
    if (auth?.type === 'basic') {
      all.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    } else if (auth?.type === 'bearer') all.authorization = `Bearer ${auth.token}`;
    try {
      const res = await this.pool.request({
        path: `${this.url.pathname}${this.url.search}`,
        method: this.options.method ?? 'POST',
        headers: all,
        body: body as string | Buffer,
        signal,
      });
      const text = await res.body.text().catch(() => '');
      const kind = this.classify(res.statusCode);
      if (kind === 'ack') return ack;
      const reason = `HTTP ${res.statusCode} from ${redactUrl(this.url.href)}${text ? `: ${text.slice(0, 200)}` : ''}`;
      if (kind === 'error') return permanentError(reason);
      return nack(reason, retryAfterMs(res.headers['retry-after']));
    } catch (err) {
      return nack(`POST ${redactUrl(this.url.href)} failed: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    await this.pool.close();
  }
}

function statusMatcher(spec: string): (status: number) => boolean {
  const s = spec.trim().toLowerCase();
  const xx = /^([1-5])xx$/.exec(s);
  if (xx) return (status) => Math.floor(status / 100) === Number(xx[1]);
  const range = /^(\d{3})-(\d{3})$/.exec(s);
  if (range) return (status) => status >= Number(range[1]) && status <= Number(range[2]);
  const exact = Number(s);
  return (status) => status === exact;
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
