/**
 * How one publish (a batch of messages) rides in ONE JetStream message, so a batch is stored
 * all-or-nothing by JetStream itself on every server version (docs/cluster.md, "Streams").
 *
 * Headers (names are part of the format, DO NOT RENAME):
 *   Ws-Seq            Waystation seq of the batch's first message (seqs are dense from 1)
 *   Ws-Count          number of messages in the batch (>= 1)
 *   Ws-Idem-Key       the publish's Idempotency-Key, if any (also in Nats-Msg-Id as `i:<key>`)
 *   Ws-Fingerprint    the idempotent request's fingerprint (src/store/fingerprint.ts)
 *
 * Body, format version 1 (DO NOT REORDER FIELDS):
 *   u8 version (1) | u32 count | count × ( u32 metaLength | meta | u32 payloadLength | payload )
 * where meta is src/store/message.ts's encodeMeta (key, headers, expiresAt; the idempotency key
 * and fingerprint live in the headers, once per batch). Integers are big-endian.
 */
import { decodeMeta, encodeMeta, type MessageMeta } from '../store/message.js';

export const BATCH_FORMAT_VERSION = 1;

export const BatchHeaders = {
  seq: 'Ws-Seq',
  count: 'Ws-Count',
  idempotencyKey: 'Ws-Idem-Key',
  fingerprint: 'Ws-Fingerprint',
} as const;

export interface BatchRecord {
  meta: MessageMeta;
  payload: Uint8Array;
}

export interface DecodedRecord {
  meta: MessageMeta;
  payload: Buffer;
}

/** Bytes the body of these records takes (for the max_payload check before encoding). */
export function encodedBatchBytes(records: readonly { metaBytes: number; payloadBytes: number }[]): number {
  return 5 + records.reduce((sum, r) => sum + 8 + r.metaBytes + r.payloadBytes, 0);
}

export function encodeBatch(records: readonly BatchRecord[]): Buffer {
  const metas = records.map((r) =>
    encodeMeta({ key: r.meta.key, headers: r.meta.headers, expiresAt: r.meta.expiresAt }),
  );
  const size = encodedBatchBytes(
    records.map((r, i) => ({ metaBytes: metas[i]!.byteLength, payloadBytes: r.payload.byteLength })),
  );
  const out = Buffer.allocUnsafe(size);
  out[0] = BATCH_FORMAT_VERSION;
  out.writeUInt32BE(records.length, 1);
  let at = 5;
  records.forEach((r, i) => {
    const meta = metas[i]!;
    out.writeUInt32BE(meta.byteLength, at);
    meta.copy(out, at + 4);
    at += 4 + meta.byteLength;
    out.writeUInt32BE(r.payload.byteLength, at);
    out.set(r.payload, at + 4);
    at += 4 + r.payload.byteLength;
  });
  return out;
}

/** The records of a batch body; throws on a body this version cannot read. */
export function decodeBatch(body: Uint8Array): DecodedRecord[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (buf.byteLength < 5 || buf[0] !== BATCH_FORMAT_VERSION)
    throw new Error(`not a Waystation batch (format version ${buf[0]})`);
  const count = buf.readUInt32BE(1);
  const out: DecodedRecord[] = [];
  let at = 5;
  for (let i = 0; i < count; i++) {
    const metaLength = buf.readUInt32BE(at);
    const meta = decodeMeta(buf.subarray(at + 4, at + 4 + metaLength));
    at += 4 + metaLength;
    const payloadLength = buf.readUInt32BE(at);
    if (at + 4 + payloadLength > buf.byteLength) throw new Error('truncated Waystation batch');
    out.push({ meta, payload: buf.subarray(at + 4, at + 4 + payloadLength) });
    at += 4 + payloadLength;
  }
  return out;
}
