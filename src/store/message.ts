/**
 * Messages as the store sees them, and how their metadata rides in a log record's opaque meta.
 *
 * A message id is `<stream incarnation>-<seq>`: the incarnation is random per stream directory,
 * so ids stay unique for the life of the data directory even if a stream is removed and created
 * again (its seqs then restart at 1). Ids are opaque to users; only the store parses them.
 *
 * Meta layout: format version byte (1), then UTF-8 JSON with short keys, DO NOT RENAME:
 * `k` ordering key, `h` headers, `e` expiresAt (ms), `i` idempotency key, `f` the idempotent
 * request's fingerprint (absent in records written before 0.2: such a key matches any retry).
 */
import { InvalidArgumentError } from '../errors.js';

export interface MessageMeta {
  key?: string | undefined;
  headers: Readonly<Record<string, string>>;
  expiresAt?: number | undefined;
  idempotencyKey?: string | undefined;
  /** What the publish that used the idempotency key asked to store (store.ts fingerprintOf). */
  fingerprint?: string | undefined;
}

export interface StoredMessage extends MessageMeta {
  id: string;
  stream: string;
  seq: number;
  /** ms since the epoch, when the message was accepted. */
  timestamp: number;
  /** The payload, or undefined when it lives in a side file (open it through the store). */
  payload: Buffer | undefined;
  payloadBytes: number;
  /** Where a payload above the blob threshold lives (opaque; used to stream it back). */
  blob: { size: number; crc: number } | undefined;
}

const META_VERSION = 1;

interface MetaJson {
  k?: string;
  h?: Record<string, string>;
  e?: number;
  i?: string;
  f?: string;
}

export function encodeMeta(meta: MessageMeta): Buffer {
  const json: MetaJson = {};
  if (meta.key !== undefined) json.k = meta.key;
  for (const _ in meta.headers) {
    json.h = meta.headers as Record<string, string>;
    break;
  }
  if (meta.expiresAt !== undefined) json.e = meta.expiresAt;
  if (meta.idempotencyKey !== undefined) json.i = meta.idempotencyKey;
  if (meta.fingerprint !== undefined) json.f = meta.fingerprint;
  // Written straight after the version byte: one Buffer a message on the publish path, not two.
  const text = JSON.stringify(json);
  const out = Buffer.allocUnsafe(Buffer.byteLength(text) + 1);
  out[0] = META_VERSION;
  out.write(text, 1);
  return out;
}

const NO_META: MessageMeta = Object.freeze({ headers: Object.freeze({}) });

export function decodeMeta(bytes: Buffer): MessageMeta {
  // No key, headers or TTL (version byte + "{}"): skip JSON.parse on the hot read path.
  if (bytes.byteLength <= 3) return NO_META;
  if (bytes[0] !== META_VERSION) throw new Error(`unknown message meta version ${bytes[0]}`);
  const json = JSON.parse(bytes.subarray(1).toString('utf8')) as MetaJson;
  return {
    key: json.k,
    headers: json.h ?? {},
    expiresAt: json.e,
    idempotencyKey: json.i,
    fingerprint: json.f,
  };
}

export function messageId(incarnation: string, seq: number): string {
  return `${incarnation}-${seq}`;
}

export function parseMessageId(id: string): { incarnation: string; seq: number } | undefined {
  const match = /^([a-z2-7]{10})-([1-9][0-9]{0,15})$/.exec(id);
  if (!match) return undefined;
  return { incarnation: match[1]!, seq: Number(match[2]) };
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function newIncarnation(random: (n: number) => Buffer): string {
  return [...random(10)].map((b) => BASE32[b & 31]).join('');
}

export const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function assertStreamName(name: string): void {
  if (!STREAM_NAME.test(name) || name === '.' || name.includes('..')) {
    throw new InvalidArgumentError(
      `"${name}" is not a valid stream name: use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit.`,
    );
  }
}
