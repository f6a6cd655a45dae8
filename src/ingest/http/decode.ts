/**
 * Content-Encoding of request bodies (issue 12): `gzip` (also `x-gzip`) and `br` are decoded
 * while the body streams in (node:zlib streams, never the whole body in memory); `identity` is
 * passed through. Up to two codings may be stacked (`Content-Encoding: gzip, br`: gzip applied
 * first, so br is decoded first).
 *
 * The size limits apply to the decoded bytes: the decoded stream fails with
 * PayloadTooLargeError as soon as it passes its limit, and the zlib streams stop there, so a
 * small body that would inflate to gigabytes (a "zip bomb") costs at most the limit's worth of
 * inflating. Decoded bytes are charged to the staging budget as they come out (that is what is
 * held or staged); corrupt or truncated input fails with InvalidEncodingError (400), an unknown
 * coding with UnsupportedEncodingError (415), before any byte is read.
 */
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import { InvalidEncodingError, PayloadTooLargeError, UnsupportedEncodingError } from '../../errors.js';

export type ContentCoding = 'gzip' | 'br';

const MAX_CODINGS = 2;

/**
 * The codings a Content-Encoding header lists, in the order they were applied, `identity`
 * dropped (an empty list: nothing to decode). Throws UnsupportedEncodingError for anything else.
 */
export function contentCodings(header: string | string[] | undefined): ContentCoding[] {
  if (header === undefined) return [];
  const value = Array.isArray(header) ? header.join(',') : header;
  const codings: ContentCoding[] = [];
  for (const raw of value.split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '' || name === 'identity') continue;
    if (name === 'gzip' || name === 'x-gzip') codings.push('gzip');
    else if (name === 'br') codings.push('br');
    else throw new UnsupportedEncodingError(printable(value));
  }
  if (codings.length > MAX_CODINGS) throw new UnsupportedEncodingError(printable(value));
  return codings;
}

function printable(value: string): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
}

export interface DecodeLimits {
  /** Decoded bytes allowed; past them the stream fails with PayloadTooLargeError. */
  limitBytes: number;
  /** What the body is, for the 413's message ("The message body", "The batch body"). */
  what: string;
  /** Called with each decoded chunk's size before it is passed on; may throw (staging full). */
  charge?: (bytes: number) => void;
}

/** The decoded body; `receivedEncodedLength` counts the encoded bytes read so far. */
export interface DecodedBody extends Readable {
  readonly receivedEncodedLength: number;
}

/**
 * Decodes `source` (the encoded body) with one zlib stream per coding, the last applied first.
 * The returned stream fails with the first error of any stage — mapped to InvalidEncodingError
 * for a zlib stage — and destroying it destroys every stage and `source`.
 */
export function decodeBody(
  source: Readable,
  codings: readonly ContentCoding[],
  limits: DecodeLimits,
): DecodedBody {
  let encoded = 0;
  let decoded = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      decoded += chunk.byteLength;
      if (decoded > limits.limitBytes) return done(new PayloadTooLargeError(limits.limitBytes, limits.what));
      try {
        limits.charge?.(chunk.byteLength);
      } catch (err) {
        return done(err as Error);
      }
      done(null, chunk);
    },
  });
  Object.defineProperty(out, 'receivedEncodedLength', { get: () => encoded });
  source.on('data', (chunk: Buffer) => {
    encoded += chunk.byteLength;
  });

  const stages = [...codings].reverse().map((coding) => {
    const stage = coding === 'gzip' ? createGunzip() : createBrotliDecompress();
    stage.on('error', (err) => out.destroy(new InvalidEncodingError(coding, err)));
    return stage;
  });
  source.on('error', (err) => out.destroy(err));
  let upstream: Readable = source;
  for (const stage of stages) upstream = upstream.pipe(stage);
  upstream.pipe(out);
  // However the decoded stream ends (read to the end, refused, destroyed by its reader), the
  // stages stop with it: nothing goes on inflating after an answer.
  out.on('close', () => {
    for (const stage of stages) stage.destroy();
    source.destroy();
  });
  return out as Transform & DecodedBody;
}
