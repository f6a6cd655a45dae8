/**
 * What the library accepts as a payload (docs/library.md), turned into what the log stores:
 * bytes in memory, or an async iterable of byte chunks that is streamed to a side file. A value
 * of any other type is an ArgumentError naming the parameter, raised before anything is staged.
 */
import { ArgumentError } from '../errors.js';

export type PayloadInput =
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | AsyncIterable<Uint8Array | string>;

export type Payload = Uint8Array | AsyncIterable<Uint8Array>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return (value as object).constructor?.name ?? 'object';
}

function isAsyncIterable(value: object): value is AsyncIterable<unknown> {
  return typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** Chunks as bytes: strings (a Readable with setEncoding) become UTF-8, other types are refused. */
async function* asByteChunks(source: AsyncIterable<unknown>, name: string): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    if (chunk instanceof Uint8Array) yield chunk;
    else if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else if (ArrayBuffer.isView(chunk))
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else
      throw new ArgumentError(
        `${name} yielded a chunk of type ${describe(chunk)}; chunks must be bytes or strings.`,
      );
  }
}

export function toPayload(value: unknown, name: string): Payload {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'object' && value !== null) {
    if (value instanceof Blob) return asByteChunks(value.stream() as AsyncIterable<Uint8Array>, name);
    if (isAsyncIterable(value)) return asByteChunks(value, name);
  }
  throw new ArgumentError(
    `${name} must be a string (UTF-8), a Uint8Array or Buffer, an ArrayBuffer, a typed array or DataView, a Blob, or an async iterable of byte chunks such as a Readable; got ${describe(value)}.`,
  );
}

/** Checks the optional fields of one message, naming the parameter of the first that is wrong. */
export function checkMessageFields(
  fields: { key?: unknown; headers?: unknown; ttl?: unknown },
  name: string,
): void {
  if (fields.key !== undefined && typeof fields.key !== 'string')
    throw new ArgumentError(`${name}.key must be a string; got ${describe(fields.key)}.`);
  const { headers } = fields;
  if (headers !== undefined) {
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers))
      throw new ArgumentError(`${name}.headers must be an object of strings; got ${describe(headers)}.`);
    // for...in with hasOwn, not Object.entries: this runs for every message published.
    for (const k in headers) {
      if (!Object.hasOwn(headers, k)) continue;
      const v = (headers as Record<string, unknown>)[k];
      if (typeof v !== 'string')
        throw new ArgumentError(`${name}.headers["${k}"] must be a string; got ${describe(v)}.`);
    }
  }
  if (fields.ttl !== undefined && typeof fields.ttl !== 'string' && typeof fields.ttl !== 'number')
    throw new ArgumentError(
      `${name}.ttl must be ms or a duration string ("30s"); got ${describe(fields.ttl)}.`,
    );
}
