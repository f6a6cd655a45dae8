/**
 * On-disk formats of the log: the record frame and the segment index. Both carry a format
 * version. DO NOT REORDER OR RESIZE FIELDS: data directories written by older builds must stay
 * readable. Add fields only behind a new version number.
 *
 * Record frame (little-endian), one after another in a segment file:
 *
 *   offset size field
 *   0      4    magic 0x31525357 ("WSR1" on disk), lets recovery find the next frame after damage
 *   4      4    bodyLength: bytes after offset 12
 *   8      4    crc32 (zlib) of the bodyLength bytes after offset 12
 *   12     1    format version (1)
 *   13     1    flags: bit 0 = payload lives in a blob side file; bit 1 = more records of the
 *                same append follow (recovery drops an append whose last record is missing)
 *   14     2    metaLength (the upper layer's opaque metadata: id, key, headers, TTL)
 *   16     8    seq, unsigned 64-bit (values stay below 2^53)
 *   24     8    timestamp, ms since the epoch, float64
 *   32     M    meta
 *   32+M   ...  payload bytes, or for a blob: size (u64) + crc32 of the blob (u32) + 0 (u32)
 *
 * Segment index (`<base>.idx`), a cache rebuilt from the segment whenever it is missing, stale or
 * damaged, so it is written without fsync:
 *
 *   0  4  magic 0x31495357 ("WSI1")
 *   4  4  format version (1)
 *   8  8  coveredBytes: length of the segment prefix this index describes
 *   16 4  count: records described (seq base .. base+count-1)
 *   20 4  blobCount
 *   24 8  minTimestamp (float64)
 *   32 8  maxTimestamp (float64)
 *   40 8  blobBytes: total size of this segment's blob side files
 *   48 4  crc32 of the body (positions + blob table)
 *   52 4  crc32 of bytes 0..51
 *   56    positions: u32 per record, byte offset in the segment; 0xFFFFFFFF = lost to corruption
 *   ...   blob table: (seq float64, size float64) per blob record
 */
import { crc32 } from 'node:zlib';

export const RECORD_MAGIC = 0x31525357;
export const RECORD_VERSION = 1;
export const FRAME_PREFIX_BYTES = 12;
export const RECORD_HEADER_BYTES = 32;
export const BLOB_REF_BYTES = 16;
export const FLAG_BLOB = 1;
export const FLAG_CONTINUED = 2;
export const MAX_META_BYTES = 0xffff;
/** Position sentinel for a sequence number whose record was lost to corruption. */
export const LOST = 0xffffffff;

export const INDEX_MAGIC = 0x31495357;
export const INDEX_VERSION = 1;
export const INDEX_HEADER_BYTES = 56;

export interface BlobRef {
  size: number;
  crc: number;
}

export interface EncodedRecordInput {
  seq: number;
  timestamp: number;
  meta: Uint8Array;
  /** Inline payload, or the reference to a blob side file. */
  payload: Uint8Array | BlobRef;
  /** More records of the same append follow this one. */
  continued: boolean;
}

export function encodedSize(metaLength: number, payload: Uint8Array | BlobRef): number {
  return (
    RECORD_HEADER_BYTES + metaLength + (payload instanceof Uint8Array ? payload.byteLength : BLOB_REF_BYTES)
  );
}

const TWO_32 = 2 ** 32;

/** u64 without BigInt: the values stay below 2^53. */
function writeUint64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

function readUint64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32;
}

/** Writes one record frame into `target` at `offset`; returns the bytes written. */
export function encodeRecord(target: Buffer, offset: number, input: EncodedRecordInput): number {
  const { seq, timestamp, meta, payload, continued } = input;
  const isBlob = !(payload instanceof Uint8Array);
  const total = encodedSize(meta.byteLength, payload);
  target.writeUInt32LE(RECORD_MAGIC, offset);
  target.writeUInt32LE(total - FRAME_PREFIX_BYTES, offset + 4);
  target.writeUInt8(RECORD_VERSION, offset + 12);
  target.writeUInt8((isBlob ? FLAG_BLOB : 0) | (continued ? FLAG_CONTINUED : 0), offset + 13);
  target.writeUInt16LE(meta.byteLength, offset + 14);
  writeUint64(target, seq, offset + 16);
  target.writeDoubleLE(timestamp, offset + 24);
  target.set(meta, offset + RECORD_HEADER_BYTES);
  const payloadAt = offset + RECORD_HEADER_BYTES + meta.byteLength;
  if (isBlob) {
    writeUint64(target, payload.size, payloadAt);
    target.writeUInt32LE(payload.crc >>> 0, payloadAt + 8);
    target.writeUInt32LE(0, payloadAt + 12);
  } else {
    target.set(payload, payloadAt);
  }
  const crc = crc32(target.subarray(offset + FRAME_PREFIX_BYTES, offset + total));
  target.writeUInt32LE(crc >>> 0, offset + 8);
  return total;
}

export interface DecodedRecord {
  seq: number;
  timestamp: number;
  meta: Buffer;
  /** Inline payload (a view into the read buffer), or undefined for a blob record. */
  payload: Buffer | undefined;
  blob: BlobRef | undefined;
  /** More records of the same append follow. */
  continued: boolean;
  /** Bytes the frame occupies in the segment. */
  frameBytes: number;
}

export type DecodeResult =
  | { kind: 'record'; record: DecodedRecord }
  /** The buffer ends inside this frame: `needBytes` is the whole frame's length if known. */
  | { kind: 'incomplete'; needBytes: number | undefined }
  | { kind: 'corrupt'; reason: string };

/** Frames larger than this are treated as damage, whatever their length field says. */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

/** Decodes the frame at `offset`, looking at no more than `end`. */
export function decodeRecord(buf: Buffer, offset: number, end: number): DecodeResult {
  if (end - offset < FRAME_PREFIX_BYTES) return { kind: 'incomplete', needBytes: undefined };
  if (buf.readUInt32LE(offset) !== RECORD_MAGIC) return { kind: 'corrupt', reason: 'bad magic' };
  const bodyLength = buf.readUInt32LE(offset + 4);
  const frameBytes = FRAME_PREFIX_BYTES + bodyLength;
  if (bodyLength < RECORD_HEADER_BYTES - FRAME_PREFIX_BYTES || frameBytes > MAX_FRAME_BYTES) {
    return { kind: 'corrupt', reason: `impossible frame length ${bodyLength}` };
  }
  if (end - offset < frameBytes) return { kind: 'incomplete', needBytes: frameBytes };
  const expected = buf.readUInt32LE(offset + 8);
  const actual = crc32(buf.subarray(offset + FRAME_PREFIX_BYTES, offset + frameBytes)) >>> 0;
  if (expected !== actual) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const version = buf.readUInt8(offset + 12);
  if (version !== RECORD_VERSION) return { kind: 'corrupt', reason: `unknown record version ${version}` };
  const flags = buf.readUInt8(offset + 13);
  const metaLength = buf.readUInt16LE(offset + 14);
  const seq = readUint64(buf, offset + 16);
  const timestamp = buf.readDoubleLE(offset + 24);
  const metaAt = offset + RECORD_HEADER_BYTES;
  const payloadAt = metaAt + metaLength;
  if (payloadAt > offset + frameBytes) return { kind: 'corrupt', reason: 'meta longer than frame' };
  const meta = buf.subarray(metaAt, payloadAt);
  const continued = (flags & FLAG_CONTINUED) !== 0;
  if ((flags & FLAG_BLOB) !== 0) {
    if (offset + frameBytes - payloadAt !== BLOB_REF_BYTES)
      return { kind: 'corrupt', reason: 'bad blob reference' };
    const blob = { size: readUint64(buf, payloadAt), crc: buf.readUInt32LE(payloadAt + 8) };
    return {
      kind: 'record',
      record: { seq, timestamp, meta, payload: undefined, blob, continued, frameBytes },
    };
  }
  const payload = buf.subarray(payloadAt, offset + frameBytes);
  return {
    kind: 'record',
    record: { seq, timestamp, meta, payload, blob: undefined, continued, frameBytes },
  };
}

/** Offset of the next record magic at or after `from`, or -1. */
export function findMagic(buf: Buffer, from: number, end: number): number {
  return buf.subarray(0, end).indexOf(MAGIC_BYTES, from);
}

const MAGIC_BYTES = Buffer.from([0x57, 0x53, 0x52, 0x31]);

export interface SegmentIndexData {
  coveredBytes: number;
  minTimestamp: number;
  maxTimestamp: number;
  positions: Uint32Array;
  /** seq → blob size, for the blob records of this segment. */
  blobs: Map<number, number>;
}

export function encodeIndex(data: SegmentIndexData, count: number): Buffer {
  const bodyBytes = count * 4 + data.blobs.size * 16;
  const buf = Buffer.alloc(INDEX_HEADER_BYTES + bodyBytes);
  buf.writeUInt32LE(INDEX_MAGIC, 0);
  buf.writeUInt32LE(INDEX_VERSION, 4);
  buf.writeDoubleLE(data.coveredBytes, 8);
  buf.writeUInt32LE(count, 16);
  buf.writeUInt32LE(data.blobs.size, 20);
  buf.writeDoubleLE(data.minTimestamp, 24);
  buf.writeDoubleLE(data.maxTimestamp, 32);
  Buffer.from(data.positions.buffer, data.positions.byteOffset, count * 4).copy(buf, INDEX_HEADER_BYTES);
  let at = INDEX_HEADER_BYTES + count * 4;
  for (const [seq, size] of data.blobs) {
    buf.writeDoubleLE(seq, at);
    buf.writeDoubleLE(size, at + 8);
    at += 16;
  }
  let blobBytes = 0;
  for (const size of data.blobs.values()) blobBytes += size;
  buf.writeDoubleLE(blobBytes, 40);
  buf.writeUInt32LE(crc32(buf.subarray(INDEX_HEADER_BYTES)) >>> 0, 48);
  buf.writeUInt32LE(crc32(buf.subarray(0, 52)) >>> 0, 52);
  return buf;
}

export interface IndexHeader {
  coveredBytes: number;
  count: number;
  blobCount: number;
  minTimestamp: number;
  maxTimestamp: number;
  blobBytes: number;
  bodyCrc: number;
}

/** Parses the fixed index header; undefined when damaged or of another version. */
export function decodeIndexHeader(buf: Buffer): IndexHeader | undefined {
  if (buf.byteLength < INDEX_HEADER_BYTES) return undefined;
  if (buf.readUInt32LE(0) !== INDEX_MAGIC || buf.readUInt32LE(4) !== INDEX_VERSION) return undefined;
  if (buf.readUInt32LE(52) !== crc32(buf.subarray(0, 52)) >>> 0) return undefined;
  return {
    coveredBytes: buf.readDoubleLE(8),
    count: buf.readUInt32LE(16),
    blobCount: buf.readUInt32LE(20),
    minTimestamp: buf.readDoubleLE(24),
    maxTimestamp: buf.readDoubleLE(32),
    blobBytes: buf.readDoubleLE(40),
    bodyCrc: buf.readUInt32LE(48),
  };
}

/** Parses an index file; undefined when it is damaged or of another version (then it is rebuilt). */
export function decodeIndex(buf: Buffer): (SegmentIndexData & IndexHeader) | undefined {
  const header = decodeIndexHeader(buf);
  if (!header) return undefined;
  const { count, blobCount } = header;
  if (buf.byteLength !== INDEX_HEADER_BYTES + count * 4 + blobCount * 16) return undefined;
  if (header.bodyCrc !== crc32(buf.subarray(INDEX_HEADER_BYTES)) >>> 0) return undefined;
  const positions = new Uint32Array(Math.max(count, 16));
  for (let i = 0; i < count; i++) positions[i] = buf.readUInt32LE(INDEX_HEADER_BYTES + i * 4);
  const blobs = new Map<number, number>();
  let at = INDEX_HEADER_BYTES + count * 4;
  for (let i = 0; i < blobCount; i++) {
    blobs.set(buf.readDoubleLE(at), buf.readDoubleLE(at + 8));
    at += 16;
  }
  return { ...header, positions, blobs };
}
