/**
 * Another Waystation downstream (SFC's chained/IPC targets): each message is POSTed to the
 * downstream HTTP API with `Idempotency-Key: <source message id>`, so a retried forward is
 * stored once downstream; the key, TTL-free headers (`Waystation-Header-*`) and content type
 * travel with it (what HTTP cannot carry percent-encoded, listed in `Waystation-Encoded-Headers`,
 * and decoded downstream). One request per message, in order (the downstream batch endpoint takes one key
 * per batch, which cannot de-duplicate single messages of a retried batch).
 * With `compression` (gzip | br) each request body is compressed (compression.ts) and sent with
 * that Content-Encoding; the downstream ingest decodes it while it streams in.
 * 2xx ack; 400, 413 error; everything else (507 full, 503 shutting down, 401/403 while
 * credentials are fixed, 404 until the stream exists, connection errors) nack.
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, deliverInOrder, nack, permanentError } from '../delivery/target.js';
import { addHttpHeaders, ENCODED_HEADERS, setHttpHeader } from '../store/http-headers.js';
import { type Compression, compressBody, compressStream } from './compression.js';
import { compileTemplate, type Template } from './template.js';

export interface WaystationTargetOptions {
  /** Base URL of the downstream gateway, e.g. https://hub:8080. */
  url: string;
  /** Downstream stream template. Default `{stream}`. */
  stream?: string;
  token?: string;
  timeoutMs?: number;
  tls?: { ca?: string; rejectUnauthorized?: boolean };
  /** Content-Encoding of each request body. Default none (downstream ingest decodes gzip and br). */
  compression?: Compression;
}

export class WaystationTarget implements Target {
  readonly type = 'waystation';
  private readonly pool: Pool;
  private readonly stream: Template;
  private readonly base: URL;

  constructor(private readonly options: WaystationTargetOptions) {
    this.base = new URL(options.url);
    this.stream = compileTemplate(options.stream ?? '{stream}');
    const timeout = options.timeoutMs ?? 10_000;
    this.pool = new Pool(this.base.origin, {
      connections: 4,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: options.tls
        ? { ca: options.tls.ca, rejectUnauthorized: options.tls.rejectUnauthorized ?? true }
        : undefined,
    });
  }

  async deliver(batch: readonly Delivery[], signal: AbortSignal): Promise<readonly Outcome[]> {
    return deliverInOrder(batch, (d) => this.forward(d, signal));
  }

  private async forward(d: Delivery, signal: AbortSignal): Promise<Outcome> {
    const { 'content-type': contentType, ...rest } = d.headers;
    const encoded: string[] = [];
    const headers: Record<string, string> = {
      'idempotency-key': d.id,
      'content-length': String(d.payloadBytes),
    };
    setHttpHeader(headers, 'content-type', contentType ?? 'application/octet-stream', encoded);
    if (d.key !== undefined) setHttpHeader(headers, 'waystation-key', d.key, encoded);
    addHttpHeaders(headers, rest, 'waystation-header-', encoded);
    // The downstream intake decodes what is listed: the message arrives as it was stored here.
    if (encoded.length > 0) headers[ENCODED_HEADERS] = encoded.join(',');
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const path = `${this.base.pathname.replace(/\/$/, '')}/v1/streams/${encodeURIComponent(this.stream(d))}/messages`;
    try {
      const compression = this.options.compression ?? 'none';
      let body: string | Buffer | Readable;
      if (compression === 'none') body = d.payload ?? d.openPayload();
      else {
        ({ body } = d.payload
          ? await compressBody(d.payload, compression)
          : compressStream(d.openPayload(), compression, d.payloadBytes));
        headers['content-encoding'] = compression;
        // A compressed stream's length is known only once it is read: sent chunked.
        if (Buffer.isBuffer(body)) headers['content-length'] = String(body.byteLength);
        else delete headers['content-length'];
      }
      const res = await this.pool.request({
        path,
        method: 'POST',
        headers,
        body,
        signal,
      });
      const text = await res.body.text().catch(() => '');
      if (res.statusCode >= 200 && res.statusCode < 300) return ack;
      const reason = `downstream waystation answered ${res.statusCode}: ${text.slice(0, 200)}`;
      return res.statusCode === 400 || res.statusCode === 413 ? permanentError(reason) : nack(reason);
    } catch (err) {
      return nack(`downstream waystation ${this.base.origin}: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    await this.pool.close();
  }
}
