/**
 * Request-body compression for the targets that speak HTTP (`http`, `waystation`; issue 12):
 * `compression: gzip | br | none` sets `Content-Encoding` and compresses the body.
 *
 * - In-memory bodies (NDJSON batches, small payloads) are compressed on the libuv thread pool
 *   (async node:zlib), not on the event loop, and sent with their compressed Content-Length.
 * - Streamed payloads (side files) go through a zlib stream as they are read, sent chunked; a
 *   failing read fails the compressed stream, and so the request (a nack).
 *
 * Levels, measured on bench:forward's NDJSON batches (docs/benchmarks.md): gzip level 6 (zlib's
 * default) and brotli quality 4 — brotli's higher qualities cost several times the CPU for a few
 * percent of bytes, which a gateway draining a backlog pays per message.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { promisify } from 'node:util';
import {
  type BrotliOptions,
  brotliCompress,
  constants,
  createBrotliCompress,
  createGzip,
  gzip,
  type ZlibOptions,
} from 'node:zlib';

export const Compressions = ['none', 'gzip', 'br'] as const;
export type Compression = (typeof Compressions)[number];

/** gzip level (zlib's default). */
export const GZIP_LEVEL = 6;
/** brotli quality (0–11; 4 is brotli's fast end that still beats gzip -6 on NDJSON). */
export const BROTLI_QUALITY = 4;

const gzipAsync = promisify<Buffer | string, ZlibOptions, Buffer>(gzip);
const brotliAsync = promisify<Buffer | string, BrotliOptions, Buffer>(brotliCompress);

function brotliOptions(sizeHint: number | undefined): BrotliOptions {
  const params: Record<number, number> = { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY };
  if (sizeHint !== undefined) params[constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
  return { params };
}

/** A body to send: what `compressBody` or `compressStream` made of it, with its headers. */
export interface EncodedBody<B> {
  body: B;
  /** Content-Encoding, when the body is compressed. */
  encoding?: 'gzip' | 'br';
}

/** Compresses an in-memory body (off the event loop); `none` hands it back as it is. */
export async function compressBody(
  body: string | Buffer,
  compression: Compression,
): Promise<EncodedBody<string | Buffer>> {
  if (compression === 'none') return { body };
  if (compression === 'gzip') return { body: await gzipAsync(body, { level: GZIP_LEVEL }), encoding: 'gzip' };
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  return { body: await brotliAsync(body, brotliOptions(size)), encoding: 'br' };
}

/**
 * Compresses a payload stream as it is read; `none` hands it back. An error of `source` (a side
 * file that cannot be read) destroys the compressed stream with it, and destroying the
 * compressed stream (an aborted request) destroys `source`.
 */
export function compressStream(
  source: Readable,
  compression: Compression,
  sizeHint?: number,
): EncodedBody<Readable> {
  if (compression === 'none') return { body: source };
  const zip =
    compression === 'gzip'
      ? createGzip({ level: GZIP_LEVEL })
      : createBrotliCompress(brotliOptions(sizeHint));
  pipeline(source, zip, () => {
    // Errors reach the reader of `zip` (undici), which fails the request with them.
  });
  return { body: zip, encoding: compression };
}
