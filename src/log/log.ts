/**
 * The durable segmented log of one stream. It knows bytes, sequence numbers and timestamps;
 * nothing of messages, routes, targets or protocols (the record's `meta` is opaque to it).
 *
 * Design constraints
 * - An append resolves only once its records are durable per `fsync` (default `always`:
 *   after fdatasync). Concurrent appends share one write and one fdatasync (group commit).
 * - One append is all-or-nothing: its records are written in one write to one segment; if the
 *   write, the fsync or the deadline (`writeTimeoutMs`) fails, the bytes are truncated away, the
 *   sequence numbers are reused, and the caller gets a typed error holding what was not stored.
 * - Readers see only committed records. Reads go by sequence number through a dense in-memory
 *   index (4 bytes per record), forwards or backwards, bounded by count and bytes; segments are
 *   never loaded whole. Indexes of sealed segments are loaded on demand and evicted (LRU,
 *   `maxOpenSegments`), so memory is bounded by configuration, not by backlog.
 * - Opening does not scan sealed segments: their record count comes from file names, their
 *   timestamps from the index header. Only the active segment (at most `segmentBytes`) is read,
 *   and after a clean close only the part its index does not cover.
 * - Recovery never blocks start-up: a torn tail is truncated; a damaged frame is skipped by
 *   searching for the next intact one, and its sequence numbers are reported and counted as lost.
 * - Deleting history drops whole segments and side files below a sequence number; the logical
 *   start is persisted first (in place, so it works on a full disk), and an interrupted delete
 *   finishes at the next open.
 *
 * On-disk layout of a stream directory
 *   <20-digit base seq>.seg   records with seq >= base (frame format: format.ts)
 *   <20-digit base seq>.idx   index cache of that segment (rebuilt when missing or stale)
 *   blobs/<20-digit seq>.blob payloads above blobThreshold; blobs/<uuid>.tmp while staging
 *   log.start                 the logical start seq (slot-file.ts: rewritable on a full disk)
 * Sequence numbers start at 1 and are never reused once committed.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  InvalidArgumentError,
  LogClosedError,
  RecordTooLargeError,
  StorageFullError,
  StorageIOError,
  StorageTimeoutError,
  WaystationError,
} from '../errors.js';
import { BlobStore, type Guard, type StagedBlob, type StagedPayload } from './blob-store.js';
import type { StorageFileSystem } from './file-system.js';
import { type BlobRef, decodeRecord, encodedSize, encodeRecord, LOST, MAX_META_BYTES } from './format.js';
import { type LogOptions, type ResolvedLogOptions, resolveLogOptions } from './options.js';
import { parseSegmentFileName, Segment } from './segment.js';
import { SlotFile } from './slot-file.js';

export interface AppendInput {
  /** Bytes, or a stream of bytes (spilled to a side file once larger than blobThreshold). */
  payload: Uint8Array | AsyncIterable<Uint8Array>;
  /** Opaque metadata kept beside the payload, at most 65 535 bytes. */
  meta?: Uint8Array;
  /** ms since the epoch; default: now. */
  timestamp?: number;
}

export interface AppendResult {
  firstSeq: number;
  lastSeq: number;
}

export interface LogRecord {
  seq: number;
  timestamp: number;
  meta: Buffer;
  /** The payload, or undefined when it lives in a side file (read it with openPayload). */
  payload: Buffer | undefined;
  payloadBytes: number;
  /** Blob reference when the payload lives in a side file. */
  blob: BlobRef | undefined;
}

export interface ReadOptions {
  /** First sequence number to read (clamped to what exists). */
  fromSeq: number;
  /** `backward` returns newest first, down from `fromSeq`. Default `forward`. */
  direction?: 'forward' | 'backward';
  /** Stop after this many records. Default 1000. */
  maxRecords?: number;
  /** Stop once this many frame bytes were read (at least one record is returned). Default 4 MiB. */
  maxBytes?: number;
  /** Last sequence number to read in the direction of reading (inclusive). */
  untilSeq?: number;
}

export interface SegmentInfo {
  baseSeq: number;
  lastSeq: number;
  /** Segment file bytes plus side-file bytes. */
  bytes: number;
  minTimestamp: number;
  maxTimestamp: number;
}

export interface LogStats {
  firstSeq: number;
  lastSeq: number;
  /** Sequence numbers in [firstSeq, lastSeq], damaged ones included. */
  records: number;
  /** Segment and side-file bytes on disk. */
  bytes: number;
  segments: number;
  /** Records found damaged and skipped since open. */
  corruptRecords: number;
  /** Torn-tail bytes truncated at open. */
  truncatedBytes: number;
}

export interface DeleteResult {
  records: number;
  bytes: number;
}

interface PreparedRecord {
  meta: Uint8Array;
  timestamp: number;
  payload: StagedPayload;
  frameBytes: number;
}

interface PendingAppend {
  inputs: readonly AppendInput[];
  records: PreparedRecord[];
  frameBytes: number;
  state: 'queued' | 'writing' | 'settled';
  round: Round | undefined;
  timer: NodeJS.Timeout | undefined;
  resolve: (result: AppendResult) => void;
  reject: (err: Error) => void;
}

interface Round {
  appends: PendingAppend[];
  abandoned: boolean;
}

const START_FILE = 'log.start';

export class Log {
  private readonly opts: ResolvedLogOptions;
  private readonly fs: StorageFileSystem;
  private readonly blobs: BlobStore;
  private segments: Segment[] = [];
  private startSeq = 1;
  private startFile: SlotFile | undefined;
  private nextSeq = 1;
  private committedSeq = 0;
  private queue: PendingAppend[] = [];
  private pumping = false;
  private pumpDone: Promise<void> = Promise.resolve();
  /** Set when a failed round could not be truncated away; retried before the next round. */
  private truncateTo: number | undefined;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private corruptRecords = 0;
  private truncatedBytes = 0;
  private readonly loading = new Map<Segment, Promise<void>>();

  private constructor(
    readonly dir: string,
    options: LogOptions,
  ) {
    this.opts = resolveLogOptions(options);
    this.fs = this.opts.fileSystem;
    this.blobs = new BlobStore(join(dir, 'blobs'), this.fs);
  }

  static async open(dir: string, options: LogOptions = {}): Promise<Log> {
    const log = new Log(dir, options);
    await log.recover();
    if (log.opts.fsync === 'interval') {
      log.syncTimer = setInterval(() => void log.backgroundSync(), log.opts.fsyncIntervalMs);
      log.syncTimer.unref();
    }
    return log;
  }

  /** Lowest readable sequence number (equal to nextSeq when the log is empty). */
  get firstSeq(): number {
    return Math.max(this.startSeq, this.segments[0]?.baseSeq ?? this.startSeq);
  }

  /** Highest committed sequence number (firstSeq - 1 when empty). */
  get lastSeq(): number {
    return this.committedSeq;
  }

  stats(): LogStats {
    let bytes = 0;
    for (const seg of this.segments) bytes += seg.size + seg.blobBytes;
    const firstSeq = this.firstSeq;
    return {
      firstSeq,
      lastSeq: this.lastSeq,
      records: Math.max(0, this.lastSeq - firstSeq + 1),
      bytes,
      segments: this.segments.length,
      corruptRecords: this.corruptRecords,
      truncatedBytes: this.truncatedBytes,
    };
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    await this.fs.mkdir(this.dir);
    await this.fs.mkdir(this.blobs.dir);
    const start = await SlotFile.open(this.fs, join(this.dir, START_FILE), 1);
    this.startFile = start.file;
    this.startSeq = Math.max(1, start.value);

    const names = await this.fs.list(this.dir);
    for (const name of names) if (name.endsWith('.tmp')) await this.fs.remove(join(this.dir, name));
    const bases = names
      .map(parseSegmentFileName)
      .filter((b): b is number => b !== undefined)
      .sort((a, b) => a - b);

    for (let i = 0; i < bases.length - 1; i++) {
      const base = bases[i]!;
      const nextBase = bases[i + 1]!;
      const seg = new Segment(this.dir, base, this.fs);
      if (nextBase <= this.startSeq) {
        // Below the persisted start: a delete was interrupted; finish it.
        await this.removeSegmentFiles(seg);
        continue;
      }
      seg.sealed = true;
      const size = (await this.fs.sizeOf(seg.path)) ?? 0;
      if (!(await seg.loadIndexSummary(nextBase - base, size))) {
        // The summary is rebuilt lazily; count and size are known without it.
        seg.count = nextBase - base;
        seg.size = size;
      }
      this.segments.push(seg);
    }

    const lastBase = bases.at(-1);
    if (lastBase === undefined) {
      this.segments.push(await this.createSegment(this.startSeq));
    } else {
      this.segments.push(await this.recoverActive(lastBase));
    }
    let active = this.active;
    this.nextSeq = active.baseSeq + active.count;
    if (this.nextSeq < this.startSeq) {
      // Records below the persisted start were lost (fsync never/interval); keep numbering.
      active.sealed = true;
      await this.saveIndex(active, 'sealing it at open');
      active = await this.createSegment(this.startSeq);
      this.segments.push(active);
      this.nextSeq = this.startSeq;
    }
    this.committedSeq = this.nextSeq - 1;
    await this.blobs.removeOrphans(this.firstSeq, this.nextSeq);
  }

  private async recoverActive(base: number): Promise<Segment> {
    const seg = new Segment(this.dir, base, this.fs);
    const size = (await this.fs.sizeOf(seg.path)) ?? 0;
    const indexed = await seg.loadIndex(undefined, size);
    if (!indexed) seg.resetForScan();
    seg.loaded = true;
    const outcome = await seg.scan(seg.size, size);
    for (const damage of outcome.damage) {
      this.corruptRecords += damage.seqs.length;
      this.opts.onCorruption({ file: seg.path, ...damage });
    }
    if (outcome.validBytes < size) {
      const file = await seg.acquire();
      try {
        await file.truncate(outcome.validBytes);
        await file.sync();
      } finally {
        seg.release();
      }
      this.truncatedBytes += size - outcome.validBytes;
    }
    seg.size = outcome.validBytes;
    return seg;
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private async createSegment(base: number): Promise<Segment> {
    const seg = new Segment(this.dir, base, this.fs);
    const file = await this.fs.open(seg.path, 'create');
    seg.adopt(file);
    if (this.opts.fsync !== 'never') await this.fs.syncDir(this.dir);
    return seg;
  }

  // ---------------------------------------------------------------- append

  /**
   * Appends records as one all-or-nothing unit and resolves with their sequence numbers once
   * durable per the fsync policy. Rejects with StorageFullError, StorageIOError or
   * StorageTimeoutError (each holding the inputs in `unstored`); nothing of a rejected append
   * becomes visible.
   */
  async append(inputs: readonly AppendInput[]): Promise<AppendResult> {
    if (this.closed) throw new LogClosedError(this.dir);
    if (inputs.length === 0) throw new InvalidArgumentError('append needs at least one record.');
    for (const input of inputs) {
      if ((input.meta?.byteLength ?? 0) > MAX_META_BYTES) {
        throw new RecordTooLargeError(
          `Record metadata (key, headers, ids) is ${input.meta?.byteLength} bytes; at most ${MAX_META_BYTES} fit. Send fewer or shorter headers.`,
        );
      }
    }
    // Inline payloads are queued without awaiting anything, so concurrent appends commit in call
    // order; an append with a large or streamed payload takes its place once staged.
    const inline = inputs.every(
      (i) => i.payload instanceof Uint8Array && i.payload.byteLength <= this.opts.blobThreshold,
    );
    const records = inline
      ? inputs.map((input) => this.prepare(input, { kind: 'inline', bytes: input.payload as Uint8Array }))
      : await this.stageAll(inputs);
    const frameBytes = records.reduce((sum, r) => sum + r.frameBytes, 0);
    if (frameBytes > MAX_APPEND_BYTES || this.closed) {
      await this.discardStaged(records);
      if (this.closed) throw new LogClosedError(this.dir);
      throw new RecordTooLargeError(
        `One append of ${frameBytes} bytes exceeds the ${MAX_APPEND_BYTES}-byte limit; split the batch.`,
      );
    }
    return new Promise<AppendResult>((resolve, reject) => {
      const pending: PendingAppend = {
        inputs,
        records,
        frameBytes,
        state: 'queued',
        round: undefined,
        timer: undefined,
        resolve,
        reject,
      };
      pending.timer = setTimeout(() => this.expire(pending), this.opts.writeTimeoutMs);
      this.queue.push(pending);
      this.pump();
    });
  }

  private prepare(input: AppendInput, payload: StagedPayload): PreparedRecord {
    const meta = input.meta ?? EMPTY;
    const shape = payload.kind === 'inline' ? payload.bytes : BLOB_SHAPE;
    return {
      meta,
      timestamp: input.timestamp ?? this.opts.now(),
      payload,
      frameBytes: encodedSize(meta.byteLength, shape),
    };
  }

  private async stageAll(inputs: readonly AppendInput[]): Promise<PreparedRecord[]> {
    const records: PreparedRecord[] = [];
    try {
      for (const input of inputs) {
        const sync = this.opts.fsync !== 'never';
        const payload = await this.blobs.stage(input.payload, this.opts.blobThreshold, sync, this.guard);
        records.push(this.prepare(input, payload));
      }
      return records;
    } catch (err) {
      await this.discardStaged(records);
      throw this.storageError(err, inputs, 'staging a large payload');
    }
  }

  private readonly guard: Guard = (op, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new StorageTimeoutError(
              `Storage did not finish "${what}" within ${this.opts.writeTimeoutMs} ms (storage.writeTimeout); the disk is stalled or overloaded.`,
            ),
          ),
        this.opts.writeTimeoutMs,
      );
      op.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });

  private expire(pending: PendingAppend): void {
    const err = new StorageTimeoutError(
      `Append to ${this.dir} was not durable within ${this.opts.writeTimeoutMs} ms (storage.writeTimeout); nothing was stored. The disk is stalled or overloaded.`,
      pending.inputs,
    );
    if (pending.state === 'queued') {
      this.queue.splice(this.queue.indexOf(pending), 1);
      pending.state = 'settled';
      void this.discardStaged(pending.records);
      pending.reject(err);
    } else if (pending.state === 'writing' && pending.round) {
      // The round's I/O is still running; it is rolled back when it settles.
      pending.round.abandoned = true;
      for (const p of pending.round.appends) this.settle(p, err);
    }
  }

  private settle(pending: PendingAppend, outcome: AppendResult | Error): void {
    if (pending.state === 'settled') return;
    pending.state = 'settled';
    clearTimeout(pending.timer);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    this.pumpDone = (async () => {
      try {
        while (this.queue.length > 0) await this.runRound();
      } finally {
        this.pumping = false;
      }
    })();
  }

  /** Takes queued appends that fit one write to one segment and commits them. */
  private async runRound(): Promise<void> {
    const round: Round = { appends: [], abandoned: false };
    try {
      if (this.truncateTo !== undefined) await this.repairTail(this.truncateTo);
      const first = this.queue[0]!;
      if (this.active.size > 0 && this.active.size + first.frameBytes > this.opts.segmentBytes)
        await this.roll();
    } catch (err) {
      const failed = this.queue.splice(0);
      for (const p of failed) {
        void this.discardStaged(p.records);
        this.settle(p, this.storageError(err, p.inputs, 'preparing the next segment'));
      }
      return;
    }
    const seg = this.active;
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      const fits = seg.size + bytes + next.frameBytes <= this.opts.segmentBytes;
      const withinWrite = bytes + next.frameBytes <= this.opts.maxWriteBytes;
      if (round.appends.length > 0 && !(fits && withinWrite)) break;
      this.queue.shift();
      next.state = 'writing';
      next.round = round;
      round.appends.push(next);
      bytes += next.frameBytes;
    }
    await this.writeRound(seg, round, bytes);
  }

  private async writeRound(seg: Segment, round: Round, bytes: number): Promise<void> {
    const startCount = seg.count;
    const startSize = seg.size;
    const startSeq = this.nextSeq;
    const buffer = Buffer.allocUnsafe(bytes);
    const committedBlobs: number[] = [];
    const results: AppendResult[] = [];
    let offset = 0;
    let seq = startSeq;
    let failure: unknown;
    let io: Promise<void> | undefined;
    let started = 0;
    const timestamps = { min: seg.minTimestamp, max: seg.maxTimestamp };
    try {
      for (const pending of round.appends) {
        const firstSeq = seq;
        for (const [i, record] of pending.records.entries()) {
          const continued = i < pending.records.length - 1;
          const payload = record.payload.kind === 'inline' ? record.payload.bytes : record.payload.blob;
          if (record.payload.kind === 'blob') {
            await this.guard(this.blobs.commit(record.payload.blob, seq), 'rename a blob');
            committedBlobs.push(seq);
          }
          seg.push(
            startSize + offset,
            record.timestamp,
            record.payload.kind === 'blob' ? record.payload.blob.size : undefined,
          );
          offset += encodeRecord(buffer, offset, {
            seq,
            timestamp: record.timestamp,
            meta: record.meta,
            payload,
            continued,
          });
          seq++;
        }
        results.push({ firstSeq, lastSeq: seq - 1 });
      }
      this.nextSeq = seq;
      const file = await seg.acquire();
      started = performance.now();
      io = (async () => {
        try {
          await file.write([buffer], startSize);
          if (this.opts.fsync === 'always') {
            await file.sync();
            if (committedBlobs.length > 0) await this.fs.syncDir(this.blobs.dir);
          }
        } finally {
          seg.release();
        }
      })();
      await this.guard(io, `write and fsync ${seg.path}`);
    } catch (err) {
      failure = err;
    }
    if (failure === undefined && !round.abandoned) {
      this.opts.onCommit((performance.now() - started) / 1000);
      seg.size = startSize + bytes;
      this.committedSeq = this.nextSeq - 1;
      this.dirty = true;
      for (const [i, p] of round.appends.entries()) this.settle(p, results[i]!);
      return;
    }
    // A stalled write may still land: wait until the disk answers, so the truncate comes after it.
    await io?.catch(() => {});
    // Roll back: the bytes, the index entries, the side files, the sequence numbers.
    seg.rollback(startCount, startSize, committedBlobs);
    seg.minTimestamp = timestamps.min;
    seg.maxTimestamp = timestamps.max;
    this.nextSeq = startSeq;
    await this.repairTail(startSize).catch(() => {
      this.truncateTo = startSize;
    });
    for (const s of committedBlobs) await this.fs.remove(this.blobs.pathOf(s)).catch(() => {});
    for (const pending of round.appends) {
      await this.discardStaged(pending.records);
      this.settle(pending, this.storageError(failure, pending.inputs, `writing to ${seg.path}`));
    }
  }

  private async repairTail(size: number): Promise<void> {
    const file = await this.active.acquire();
    try {
      await this.guard(file.truncate(size), `truncate ${this.active.path}`);
    } finally {
      this.active.release();
    }
    this.truncateTo = undefined;
  }

  /** Seals the active segment and starts the next one at nextSeq. */
  private async roll(): Promise<void> {
    const old = this.active;
    if (this.opts.fsync === 'interval' && this.dirty) {
      const file = await old.acquire();
      try {
        await this.guard(file.sync(), `fsync ${old.path}`);
      } finally {
        old.release();
      }
    }
    const next = await this.createSegment(this.nextSeq);
    old.sealed = true;
    this.segments.push(next);
    await this.saveIndex(old, 'sealing it');
    this.evictLoaded();
  }

  private async discardStaged(records: readonly PreparedRecord[]): Promise<void> {
    for (const r of records) {
      if (r.payload.kind === 'blob') await this.blobs.discard(r.payload.blob as StagedBlob).catch(() => {});
    }
  }

  private storageError(err: unknown, inputs: readonly AppendInput[], what: string): Error {
    if (err instanceof StorageTimeoutError) return new StorageTimeoutError(err.message, inputs);
    if (err instanceof WaystationError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new StorageFullError(
        `The disk holding ${this.dir} is full (${code}) while ${what}; nothing of this append was stored. Free space or raise the limits; appends resume by themselves.`,
        inputs,
        err,
      );
    }
    const reason = code === undefined ? 'an I/O error' : `I/O error ${code}`;
    return new StorageIOError(
      `${reason} while ${what} in ${this.dir}; nothing of this append was stored. Check the disk.`,
      inputs,
      err,
    );
  }

  private async backgroundSync(): Promise<void> {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    await this.sync().catch(() => {
      this.dirty = true;
    });
  }

  /** fdatasync the active segment and the blob directory now (for `interval` and `never`). */
  async sync(): Promise<void> {
    const seg = this.active;
    const file = await seg.acquire();
    try {
      await file.sync();
    } finally {
      seg.release();
    }
    await this.fs.syncDir(this.blobs.dir);
  }

  // ---------------------------------------------------------------- read

  /** Reads committed records in sequence order (or reverse), bounded by count and bytes. */
  async read(options: ReadOptions): Promise<LogRecord[]> {
    if (this.closed) throw new LogClosedError(this.dir);
    const backward = options.direction === 'backward';
    const maxRecords = options.maxRecords ?? 1000;
    const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    const out: LogRecord[] = [];
    let budget = maxBytes;
    let seq = options.fromSeq;
    const step = backward ? -1 : 1;
    for (;;) {
      const low = Math.max(this.firstSeq, backward ? (options.untilSeq ?? 0) : 0);
      const high = Math.min(
        this.lastSeq,
        backward ? Number.MAX_SAFE_INTEGER : (options.untilSeq ?? Number.MAX_SAFE_INTEGER),
      );
      if (backward ? seq > high : seq < low) seq = backward ? high : low;
      if (seq < low || seq > high || out.length >= maxRecords || (budget <= 0 && out.length > 0)) break;
      const seg = this.segmentFor(seq);
      if (!seg) break;
      await this.ensureLoaded(seg);
      // Deleted by deleteBelow meanwhile: the bounds are recomputed on the next turn.
      if (seg.retired) continue;
      const segLow = Math.max(low, seg.baseSeq);
      const segHigh = Math.min(high, seg.lastSeq);
      const next = await this.readSpan(
        seg,
        seq,
        backward ? segLow : segHigh,
        step,
        maxRecords - out.length,
        budget,
        out,
      );
      budget -= next.bytes;
      seq = next.seq;
    }
    return out;
  }

  /**
   * Reads records of one segment from `from` towards `limit` with one positioned read, as many
   * as the remaining count and byte budget allow (at least one).
   */
  private async readSpan(
    seg: Segment,
    from: number,
    limit: number,
    step: 1 | -1,
    maxRecords: number,
    budget: number,
    out: LogRecord[],
  ): Promise<{ seq: number; bytes: number }> {
    const file = await seg.acquire();
    try {
      const segEnd = seg.size;
      let lowPos = Number.POSITIVE_INFINITY;
      let highPos = 0;
      let taken = 0;
      let bytes = 0;
      let s = from;
      const wanted: number[] = [];
      while ((step === 1 ? s <= limit : s >= limit) && taken < maxRecords) {
        const pos = seg.positionOf(s);
        if (pos !== LOST) {
          const end = seg.endOf(s, segEnd);
          const frame = end - pos;
          if (taken > 0 && bytes + frame > budget) break;
          lowPos = Math.min(lowPos, pos);
          highPos = Math.max(highPos, end);
          bytes += frame;
          taken++;
        }
        wanted.push(s);
        s += step;
      }
      if (taken === 0) return { seq: s, bytes: 0 };
      const buf = Buffer.allocUnsafe(highPos - lowPos);
      const n = await file.read(buf, 0, buf.byteLength, lowPos);
      for (let w = 0; w < wanted.length; w++) {
        const seq = wanted[w]!;
        const pos = seg.positionOf(seq);
        if (pos === LOST) continue;
        const result = decodeRecord(buf, pos - lowPos, n);
        if (result.kind !== 'record' || result.record.seq !== seq) {
          const reason =
            result.kind === 'corrupt'
              ? result.reason
              : result.kind === 'record'
                ? 'wrong sequence number'
                : 'short read';
          seg.markLost(seq);
          this.corruptRecords++;
          this.opts.onCorruption({ file: seg.path, offset: pos, seqs: [seq], reason });
          continue;
        }
        const { record } = result;
        out.push({
          seq,
          timestamp: record.timestamp,
          meta: record.meta,
          payload: record.payload,
          payloadBytes: record.payload?.byteLength ?? record.blob?.size ?? 0,
          blob: record.blob,
        });
      }
      return { seq: s, bytes };
    } finally {
      seg.release();
    }
  }

  /** The payload as a stream: from memory for inline records, from the side file for blobs. */
  openPayload(record: LogRecord): Readable {
    if (record.blob) return this.blobs.open(record.seq, record.blob);
    return Readable.from([record.payload ?? Buffer.alloc(0)], { objectMode: false });
  }

  private segmentFor(seq: number): Segment | undefined {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const seg = this.segments[mid]!;
      if (seq < seg.baseSeq) hi = mid - 1;
      else if (seq > seg.lastSeq && mid < this.segments.length - 1) lo = mid + 1;
      else return seg;
    }
    return undefined;
  }

  private async ensureLoaded(seg: Segment): Promise<void> {
    if (seg.loaded) return;
    let loading = this.loading.get(seg);
    if (!loading) {
      loading = this.loadSealed(seg).finally(() => this.loading.delete(seg));
      this.loading.set(seg, loading);
    }
    await loading;
  }

  private async loadSealed(seg: Segment): Promise<void> {
    const count = seg.count;
    const size = (await this.fs.sizeOf(seg.path)) ?? 0;
    if (!(await seg.loadIndex(count, size))) {
      seg.resetForScan();
      const outcome = await seg.scan(0, size);
      // Sequence numbers the segment should hold but has no frame for are lost too.
      const lost: number[] = [];
      while (seg.count < count) {
        lost.push(seg.baseSeq + seg.count);
        seg.push(LOST);
      }
      const damage = [...outcome.damage];
      if (lost.length > 0)
        damage.push({ offset: outcome.validBytes, seqs: lost, reason: 'segment ends early' });
      for (const d of damage) {
        this.corruptRecords += d.seqs.length;
        this.opts.onCorruption({ file: seg.path, ...d });
      }
      seg.count = count;
      seg.size = size;
      // Rebuilt on a read: quietly, a full disk must not log once per segment read.
      await seg.writeIndex().catch(() => {});
    }
    seg.loaded = true;
    this.evictLoaded(seg);
  }

  /** Keeps at most maxOpenSegments sealed segments open and indexed (oldest first out). */
  private evictLoaded(keep?: Segment): void {
    const loaded = this.segments.filter((s) => s.sealed && (s.loaded || s.isOpen) && s !== keep && !s.inUse);
    let excess = loaded.length + 1 - this.opts.maxOpenSegments;
    for (const seg of loaded) {
      if (excess-- <= 0) break;
      seg.unload();
      void seg.close().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- history

  /**
   * Drops every record below `seq`: whole segments and side files go; a partly affected segment
   * stays until the rest of it is dropped too. Returns what was freed.
   */
  async deleteBelow(seq: number): Promise<DeleteResult> {
    if (this.closed) throw new LogClosedError(this.dir);
    const target = Math.min(seq, this.committedSeq + 1);
    const before = this.firstSeq;
    if (target <= before) return { records: 0, bytes: 0 };
    await this.startFile!.write(target);
    this.startSeq = target;
    let bytes = 0;
    while (this.segments.length > 1) {
      const seg = this.segments[0]!;
      const next = this.segments[1]!;
      if (next.baseSeq > target) break;
      this.segments.shift();
      bytes += seg.size;
      await this.removeSegmentFiles(seg);
    }
    // The first kept segment may hold side files below the target: know their sizes.
    await this.ensureLoaded(this.segments[0]!);
    const sizes = new Map<number, number>();
    for (const seg of this.segments) if (seg.loaded) for (const [s, size] of seg.blobs) sizes.set(s, size);
    const blobBytes = await this.blobs.removeBelow(target, sizes);
    // Side files still counted in a kept segment were just freed.
    for (const seg of this.segments) {
      if (!seg.loaded) continue;
      for (const s of [...seg.blobs.keys()]) {
        if (s >= target) continue;
        seg.blobBytes -= seg.blobs.get(s)!;
        seg.blobs.delete(s);
      }
    }
    return { records: this.firstSeq - before, bytes: bytes + blobBytes };
  }

  private async removeSegmentFiles(seg: Segment): Promise<void> {
    await seg.retire();
    await this.fs.remove(seg.path);
    await this.fs.remove(seg.indexPath);
  }

  /** Bytes held for records with seq >= `seq` (frames and side files), for usage limits. */
  async bytesFrom(seq: number): Promise<number> {
    let bytes = 0;
    for (const seg of this.segments) {
      const last = seg === this.active ? this.committedSeq : seg.lastSeq;
      if (last < seq) continue;
      if (seg.baseSeq >= seq) {
        bytes += seg.size + seg.blobBytes;
        continue;
      }
      await this.ensureLoaded(seg);
      let from = seq;
      while (from <= last && seg.positionOf(from) === LOST) from++;
      if (from <= last) bytes += seg.size - seg.positionOf(from);
      for (const [s, size] of seg.blobs) if (s >= seq) bytes += size;
    }
    return bytes;
  }

  /** Per-segment counts, bytes and time range, oldest first, for retention decisions. */
  async segmentInfos(): Promise<SegmentInfo[]> {
    const infos: SegmentInfo[] = [];
    for (const seg of this.segments) {
      if (seg.sealed && seg.minTimestamp > seg.maxTimestamp && seg.count > 0) await this.ensureLoaded(seg);
      infos.push({
        baseSeq: seg.baseSeq,
        lastSeq: seg === this.active ? this.committedSeq : seg.lastSeq,
        bytes: seg.size + seg.blobBytes,
        minTimestamp: seg.minTimestamp,
        maxTimestamp: seg.maxTimestamp,
      });
    }
    return infos;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Writes a segment's index cache; a failure is only a warning (the next open rebuilds it). */
  private async saveIndex(seg: Segment, when: string): Promise<void> {
    try {
      await seg.writeIndex();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.opts.onWarning({
        file: seg.indexPath,
        message: `could not save the segment index ${seg.indexPath} ${when} (${code}); nothing is lost: it is a cache, rebuilt from the segment at the next open`,
        cause: err,
      });
    }
  }

  /**
   * Waits for queued appends, flushes, fsyncs, writes the active index and closes files. The
   * index is a cache: if it cannot be written (a full disk) that is a warning, not a failure.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.syncTimer);
    while (this.pumping || this.queue.length > 0) await this.pumpDone;
    const active = this.active;
    try {
      await this.sync();
      await this.saveIndex(active, 'at close');
    } finally {
      for (const seg of this.segments) await seg.close().catch(() => {});
    }
  }
}

const EMPTY = new Uint8Array(0);
const BLOB_SHAPE: BlobRef = { size: 0, crc: 0 };
/** Bound of one append: positions in a segment are 32-bit. */
const MAX_APPEND_BYTES = 1024 * 1024 * 1024;
