/**
 * One segment file of a stream's log and its in-memory index: the byte position of every
 * sequence number in it (dense, so reads in either direction go straight to their bytes).
 */
import { join } from 'node:path';
import type { StorageFile, StorageFileSystem } from './file-system.js';
import {
  type DecodedRecord,
  type DecodeResult,
  decodeIndex,
  decodeIndexHeader,
  decodeRecord,
  encodeIndex,
  FRAME_PREFIX_BYTES,
  findMagic,
  INDEX_HEADER_BYTES,
  LOST,
} from './format.js';

const SEQ_DIGITS = 20;
const SCAN_CHUNK_BYTES = 1024 * 1024;

export function segmentFileName(baseSeq: number): string {
  return `${String(baseSeq).padStart(SEQ_DIGITS, '0')}.seg`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const match = /^(\d{20})\.seg$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

export interface ScanDamage {
  offset: number;
  seqs: number[];
  reason: string;
}

export interface ScanOutcome {
  /** Where valid frames end: everything after is a torn tail. */
  validBytes: number;
  damage: ScanDamage[];
}

export class Segment {
  readonly path: string;
  readonly indexPath: string;
  /** Sequence numbers covered: baseSeq .. baseSeq + count - 1 (lost ones included). */
  count = 0;
  /** Bytes of valid frames, which is the file length once recovery ran. */
  size = 0;
  minTimestamp = Number.POSITIVE_INFINITY;
  maxTimestamp = Number.NEGATIVE_INFINITY;
  /** seq → size of that record's blob side file. Complete only while `loaded`. */
  blobs = new Map<number, number>();
  /** Total size of this segment's blob side files. */
  blobBytes = 0;
  sealed = false;
  /** Deleted by retention: close the handle once the last reader releases it. */
  retired = false;
  /** Positions are in memory (always true for the active segment). */
  loaded = false;
  private positions: Uint32Array = new Uint32Array(1024);
  private file: StorageFile | undefined;
  private opening: Promise<StorageFile> | undefined;
  private users = 0;

  constructor(
    readonly dir: string,
    readonly baseSeq: number,
    private readonly fs: StorageFileSystem,
  ) {
    this.path = join(dir, segmentFileName(baseSeq));
    this.indexPath = this.path.replace(/\.seg$/, '.idx');
  }

  get lastSeq(): number {
    return this.baseSeq + this.count - 1;
  }

  get isOpen(): boolean {
    return this.file !== undefined;
  }

  get inUse(): boolean {
    return this.users > 0;
  }

  positionOf(seq: number): number {
    return this.positions[seq - this.baseSeq] ?? LOST;
  }

  /** End of the frame of `seq`: the next valid position after it, or `limit`. */
  endOf(seq: number, limit: number): number {
    for (let i = seq - this.baseSeq + 1; i < this.count; i++) {
      const p = this.positions[i]!;
      if (p !== LOST) return p;
    }
    return limit;
  }

  markLost(seq: number): void {
    this.positions[seq - this.baseSeq] = LOST;
  }

  /** Records a frame appended at `position` (or LOST). */
  push(position: number, timestamp?: number, blobSize?: number): void {
    if (this.count === this.positions.length) {
      const grown = new Uint32Array(Math.max(1024, this.positions.length * 2));
      grown.set(this.positions);
      this.positions = grown;
    }
    const seq = this.baseSeq + this.count;
    this.positions[this.count++] = position;
    if (timestamp !== undefined) {
      if (timestamp < this.minTimestamp) this.minTimestamp = timestamp;
      if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    }
    if (blobSize !== undefined) {
      this.blobs.set(seq, blobSize);
      this.blobBytes += blobSize;
    }
  }

  /** Forgets appended records past `count` (a failed group commit). */
  rollback(count: number, size: number, removedBlobs: readonly number[]): void {
    this.count = count;
    this.size = size;
    for (const seq of removedBlobs) {
      this.blobBytes -= this.blobs.get(seq) ?? 0;
      this.blobs.delete(seq);
    }
  }

  /** Forgets everything known about the frames, before a full scan rebuilds it. */
  resetForScan(): void {
    this.positions = new Uint32Array(1024);
    this.count = 0;
    this.size = 0;
    this.blobs = new Map();
    this.blobBytes = 0;
    this.minTimestamp = Number.POSITIVE_INFINITY;
    this.maxTimestamp = Number.NEGATIVE_INFINITY;
  }

  /** Drops the positions of a sealed segment to bound memory; they are reloaded on the next read. */
  unload(): void {
    if (!this.sealed) return;
    this.positions = new Uint32Array(0);
    this.blobs = new Map();
    this.loaded = false;
  }

  /** Closes the handle now, or when the last reader releases it. */
  retire(): Promise<void> {
    this.retired = true;
    return this.users === 0 ? this.close() : Promise.resolve();
  }

  async acquire(): Promise<StorageFile> {
    this.users++;
    try {
      if (this.file) return this.file;
      this.opening ??= this.fs.open(this.path, this.sealed ? 'read' : 'readwrite');
      this.file = await this.opening;
      return this.file;
    } catch (err) {
      this.users--;
      this.opening = undefined;
      throw err;
    } finally {
      this.opening = undefined;
    }
  }

  release(): void {
    this.users--;
    if (this.users === 0 && this.retired) void this.close().catch(() => {});
  }

  async close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (file) await file.close();
  }

  /** Sets the open handle of a segment just created by the writer. */
  adopt(file: StorageFile): void {
    this.file = file;
    this.loaded = true;
  }

  /** Loads the index file if it matches the segment; false when it must be rebuilt by a scan. */
  async loadIndex(expectedCount: number | undefined, fileSize: number): Promise<boolean> {
    const bytes = await readWholeFile(this.fs, this.indexPath);
    const index = bytes ? decodeIndex(bytes) : undefined;
    if (!index || index.coveredBytes > fileSize) return false;
    if (expectedCount !== undefined && (index.count !== expectedCount || index.coveredBytes !== fileSize)) {
      return false;
    }
    this.positions = index.positions;
    this.count = index.count;
    this.size = index.coveredBytes;
    this.minTimestamp = index.minTimestamp;
    this.maxTimestamp = index.maxTimestamp;
    this.blobs = index.blobs;
    this.blobBytes = index.blobBytes;
    this.loaded = true;
    return true;
  }

  /** Writes the index cache (tmp + rename; no fsync: it is rebuilt if lost). A failed write leaves no tmp. */
  async writeIndex(): Promise<void> {
    const bytes = encodeIndex(
      {
        coveredBytes: this.size,
        minTimestamp: this.minTimestamp,
        maxTimestamp: this.maxTimestamp,
        positions: this.positions,
        blobs: this.blobs,
      },
      this.count,
    );
    const tmp = `${this.indexPath}.tmp`;
    try {
      const file = await this.fs.open(tmp, 'create');
      try {
        await file.write([bytes], 0);
      } finally {
        await file.close();
      }
      await this.fs.rename(tmp, this.indexPath);
    } catch (err) {
      await this.fs.remove(tmp).catch(() => {});
      throw err;
    }
  }

  /** Reads only the index header: timestamps for retention without loading positions. */
  async loadIndexSummary(expectedCount: number, fileSize: number): Promise<boolean> {
    const bytes = await readPrefix(this.fs, this.indexPath, INDEX_HEADER_BYTES);
    const header = bytes ? decodeIndexHeader(bytes) : undefined;
    if (!header || header.count !== expectedCount || header.coveredBytes !== fileSize) return false;
    this.count = expectedCount;
    this.size = fileSize;
    this.minTimestamp = header.minTimestamp;
    this.maxTimestamp = header.maxTimestamp;
    this.blobBytes = header.blobBytes;
    return true;
  }

  /**
   * Rebuilds positions by reading the segment from `fromByte` (0, or where a still-valid index
   * ends). A damaged frame is skipped by searching for the next frame that decodes cleanly;
   * sequence numbers with no valid frame become LOST. What follows the last valid frame is the
   * torn tail: `validBytes` says where it starts.
   */
  async scan(fromByte: number, fileSize: number): Promise<ScanOutcome> {
    const file = await this.acquire();
    const damage: ScanDamage[] = [];
    const reader = new ChunkReader(file, fileSize);
    // Start of an append whose last record has not been seen yet.
    let openAppend: { position: number; count: number; blobs: number[] } | undefined;
    try {
      let pos = fromByte;
      while (pos < fileSize) {
        const result = await reader.decodeAt(pos);
        if (result.kind === 'record' && result.record.seq >= this.baseSeq + this.count) {
          const { record } = result;
          this.accept(record, pos, damage);
          openAppend ??= { position: pos, count: this.count - 1, blobs: [] };
          if (record.blob) openAppend.blobs.push(record.seq);
          if (!record.continued) openAppend = undefined;
          pos += record.frameBytes;
          continue;
        }
        const next = await this.resync(reader, pos + 1);
        if (next === undefined) break;
        const reason =
          result.kind === 'corrupt'
            ? result.reason
            : result.kind === 'record'
              ? `out-of-order frame for seq ${result.record.seq}`
              : 'truncated frame';
        damage.push({ offset: pos, seqs: [], reason });
        openAppend = undefined;
        pos = next;
      }
      if (openAppend) {
        // The tail holds part of an append that never completed: all-or-nothing, so drop it.
        this.rollback(openAppend.count, openAppend.position, openAppend.blobs);
        return { validBytes: openAppend.position, damage };
      }
      return { validBytes: pos, damage };
    } finally {
      this.release();
    }
  }

  private accept(record: DecodedRecord, position: number, damage: ScanDamage[]): void {
    const expected = this.baseSeq + this.count;
    if (record.seq > expected) {
      const lost: number[] = [];
      for (let s = expected; s < record.seq; s++) {
        this.push(LOST);
        lost.push(s);
      }
      const last = damage.at(-1);
      if (last && last.seqs.length === 0) last.seqs.push(...lost);
      else damage.push({ offset: position, seqs: lost, reason: 'missing frames' });
    }
    this.push(position, record.timestamp, record.blob?.size);
    this.size = position + record.frameBytes;
  }

  /** Offset of the next frame at or after `from` that decodes cleanly and continues the sequence. */
  private async resync(reader: ChunkReader, from: number): Promise<number | undefined> {
    let at = from;
    for (;;) {
      const candidate = await reader.findMagic(at);
      if (candidate === undefined) return undefined;
      const result = await reader.decodeAt(candidate);
      if (result.kind === 'record' && result.record.seq >= this.baseSeq + this.count) return candidate;
      at = candidate + 1;
    }
  }
}

/** Sequential reads of a file through one reusable buffer, for scans. */
class ChunkReader {
  private buf = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  constructor(
    private readonly file: StorageFile,
    private readonly fileSize: number,
  ) {}

  private async fill(at: number, atLeast: number): Promise<void> {
    const want = Math.min(Math.max(atLeast, SCAN_CHUNK_BYTES), this.fileSize - at);
    if (this.buf.byteLength < want) this.buf = Buffer.alloc(want);
    const n = await this.file.read(this.buf, 0, want, at);
    this.start = at;
    this.end = at + n;
  }

  async decodeAt(at: number): Promise<DecodeResult> {
    if (at < this.start || at + FRAME_PREFIX_BYTES > this.end) await this.fill(at, FRAME_PREFIX_BYTES);
    let result = decodeRecord(this.buf, at - this.start, this.end - this.start);
    if (result.kind === 'incomplete' && result.needBytes !== undefined && this.end < this.fileSize) {
      await this.fill(at, result.needBytes);
      result = decodeRecord(this.buf, 0, this.end - this.start);
    }
    return result;
  }

  async findMagic(from: number): Promise<number | undefined> {
    let at = from;
    while (at < this.fileSize) {
      if (at < this.start || at >= this.end) await this.fill(at, FRAME_PREFIX_BYTES);
      const hit = findMagic(this.buf, at - this.start, this.end - this.start);
      if (hit >= 0) return this.start + hit;
      if (this.end >= this.fileSize) return undefined;
      // The magic may straddle the chunk boundary: continue 3 bytes before it.
      at = Math.max(at + 1, this.end - 3);
      await this.fill(at, FRAME_PREFIX_BYTES);
    }
    return undefined;
  }
}

async function readWholeFile(fs: StorageFileSystem, path: string): Promise<Buffer | undefined> {
  const size = await fs.sizeOf(path);
  if (size === undefined) return undefined;
  return readPrefix(fs, path, size);
}

async function readPrefix(fs: StorageFileSystem, path: string, length: number): Promise<Buffer | undefined> {
  let file: StorageFile;
  try {
    file = await fs.open(path, 'read');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(length);
    const n = await file.read(buf, 0, length, 0);
    return buf.subarray(0, n);
  } finally {
    await file.close();
  }
}
