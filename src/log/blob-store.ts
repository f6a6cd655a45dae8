/**
 * Side files for payloads larger than `blobThreshold`. A payload is streamed into
 * `blobs/<random>.tmp` (checksummed on the way, never held whole in memory), fsynced, and
 * renamed to `blobs/<seq>.blob` by the writer when its record gets a sequence number. Reading
 * streams the file back and fails the stream if size or checksum differ from the record's.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { BlobCorruptError } from '../errors.js';
import type { StorageFileSystem } from './file-system.js';
import type { BlobRef } from './format.js';

const SEQ_DIGITS = 20;
/** Staged bytes are written once this much has accumulated. */
const WRITE_CHUNK_BYTES = 1024 * 1024;

export interface StagedBlob extends BlobRef {
  tmpPath: string;
}

export type StagedPayload = { kind: 'inline'; bytes: Uint8Array } | { kind: 'blob'; blob: StagedBlob };

/** Runs one storage operation under the write deadline. */
export type Guard = <T>(op: Promise<T>, what: string) => Promise<T>;

export class BlobStore {
  constructor(
    readonly dir: string,
    private readonly fs: StorageFileSystem,
  ) {}

  pathOf(seq: number): string {
    return join(this.dir, `${String(seq).padStart(SEQ_DIGITS, '0')}.blob`);
  }

  static parseName(name: string): number | undefined {
    const match = /^(\d{20})\.blob$/.exec(name);
    return match ? Number(match[1]) : undefined;
  }

  /**
   * Keeps a payload of at most `threshold` bytes inline; writes a larger one (or a stream that
   * turns out larger) to a temporary side file, fsynced when `sync` is set.
   */
  async stage(
    source: Uint8Array | AsyncIterable<Uint8Array>,
    threshold: number,
    sync: boolean,
    guard: Guard,
  ): Promise<StagedPayload> {
    if (source instanceof Uint8Array) {
      if (source.byteLength <= threshold) return { kind: 'inline', bytes: source };
      return { kind: 'blob', blob: await this.write([source], sync, guard) };
    }
    const head: Uint8Array[] = [];
    let headBytes = 0;
    const iterator = source[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) return { kind: 'inline', bytes: Buffer.concat(head, headBytes) };
      head.push(next.value);
      headBytes += next.value.byteLength;
      if (headBytes > threshold) break;
    }
    const rest = { [Symbol.asyncIterator]: () => iterator };
    return { kind: 'blob', blob: await this.write(concatSources(head, rest), sync, guard) };
  }

  private async write(
    source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    sync: boolean,
    guard: Guard,
  ): Promise<StagedBlob> {
    const tmpPath = join(this.dir, `${randomUUID()}.tmp`);
    const file = await guard(this.fs.open(tmpPath, 'create'), `create ${tmpPath}`);
    let size = 0;
    let crc = 0;
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      await guard(file.write(pending, size - pendingBytes), `write ${tmpPath}`);
      pending = [];
      pendingBytes = 0;
    };
    try {
      for await (const chunk of source) {
        crc = crc32(chunk, crc);
        size += chunk.byteLength;
        pending.push(chunk);
        pendingBytes += chunk.byteLength;
        if (pendingBytes >= WRITE_CHUNK_BYTES) await flush();
      }
      if (pendingBytes > 0) await flush();
      if (sync) await guard(file.sync(), `fsync ${tmpPath}`);
      await file.close();
    } catch (err) {
      await file.close().catch(() => {});
      await this.fs.remove(tmpPath).catch(() => {});
      throw err;
    }
    return { tmpPath, size, crc: crc >>> 0 };
  }

  /** Gives a staged blob its final name. */
  commit(staged: StagedBlob, seq: number): Promise<void> {
    return this.fs.rename(staged.tmpPath, this.pathOf(seq));
  }

  discard(staged: StagedBlob): Promise<void> {
    return this.fs.remove(staged.tmpPath);
  }

  /** Streams a blob, failing with BlobCorruptError if it differs from its record's size or checksum. */
  open(seq: number, ref: BlobRef): Readable {
    const path = this.pathOf(seq);
    const raw = this.fs.readStream(path);
    async function* verified(): AsyncGenerator<Buffer> {
      let size = 0;
      let crc = 0;
      for await (const chunk of raw as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        crc = crc32(chunk, crc);
        yield chunk;
      }
      if (size !== ref.size || crc >>> 0 !== ref.crc) {
        throw new BlobCorruptError(
          `Blob ${path} of seq ${seq} is damaged (size ${size}, expected ${ref.size}; checksum ${crc >>> 0}, expected ${ref.crc}).`,
        );
      }
    }
    return Readable.from(verified(), { objectMode: false });
  }

  /** At open only: removes temporaries and side files outside [fromSeq, toSeq); returns bytes freed. */
  async removeOrphans(fromSeq: number, toSeq: number): Promise<number> {
    let freed = 0;
    for (const name of await this.fs.list(this.dir)) {
      const seq = BlobStore.parseName(name);
      if (seq !== undefined && seq >= fromSeq && seq < toSeq) continue;
      if (seq === undefined && !name.endsWith('.tmp')) continue;
      const path = join(this.dir, name);
      freed += (await this.fs.sizeOf(path)) ?? 0;
      await this.fs.remove(path);
    }
    return freed;
  }

  /** Removes the side files of seqs below `seq`; returns bytes freed. */
  async removeBelow(seq: number, sizes: ReadonlyMap<number, number>): Promise<number> {
    let freed = 0;
    for (const name of await this.fs.list(this.dir)) {
      const s = BlobStore.parseName(name);
      if (s === undefined || s >= seq) continue;
      const path = join(this.dir, name);
      freed += sizes.get(s) ?? (await this.fs.sizeOf(path)) ?? 0;
      await this.fs.remove(path);
    }
    return freed;
  }
}

async function* concatSources(
  head: readonly Uint8Array[],
  rest: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  yield* head;
  yield* rest;
}
