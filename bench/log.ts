/**
 * Throughput and open-time benchmark of the segmented log (src/log), with a raw `node:fs`
 * baseline measured in the same run, on the same disk, with the same batching.
 *
 *   npm run bench:log -- [--seconds S] [--open-gb X] [--dir DIR] [--cases always,interval,open]
 *
 * For every log case the file layer is wrapped (through the public `fileSystem` option) to count
 * the writes and fdatasyncs the log issues on its segment files. The raw baseline of that case then
 * writes the same number of bytes per write and per fdatasync to one file with a FileHandle:
 * - `fsync: 'always'`: one write of the log's average group-commit size, then fdatasync, in a loop;
 * - `fsync: 'interval'`: writes of the log's average write size in a loop, with an fdatasync started
 *   (concurrently with the next writes, like the log's timer) after as many writes as the log made
 *   per fdatasync, so the bytes per write and per fdatasync match.
 * The log and its raw baseline alternate in slices of ~1 s (log, raw, log, raw, ...) so drift in
 * the disk's speed hits both alike. `ratio` is the log's disk bytes/s (payload + 32-byte frame
 * header) over the raw bytes/s.
 *
 * The open case builds a log of `--open-gb` × 1 M records of 1 KiB (fsync 'never', 1000 records
 * per append), fdatasyncs it, closes it, then times `Log.open` + `close` with the page cache warm
 * and cold (pages dropped per file with `dd iflag=nocache count=0`), then again with the active
 * segment's index deleted (what a crash leaves: the active segment is scanned).
 *
 * Data goes to `<dir>/log-bench-<pid>/` (default dir: `<repo>/.bench-data`) and is removed at the end.
 * The last line printed is `RESULT {json}`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type AppendInput,
  type FsyncPolicy,
  Log,
  nodeFileSystem,
  type StorageFile,
  type StorageFileSystem,
} from '../src/log/index.js';

const KiB = 1024;
const MB = 1e6;
/** Bytes of a frame besides the payload (format.ts: RECORD_HEADER_BYTES), with no meta. */
const FRAME_HEADER_BYTES = 32;
const FSYNC_INTERVAL_MS = 200;
/** A pair's log and raw sides alternate in slices of about this length. */
const SLICE_SECONDS = 1;

const TARGETS = {
  always64_1k_msgs_per_s: 100_000,
  interval_1k_msgs_per_s: 300_000,
  ratio_64k_vs_raw: 0.7,
} as const;

// ------------------------------------------------------------------------------------------ options

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    seconds: { type: 'string', default: '3' },
    'open-gb': { type: 'string', default: '1' },
    cases: { type: 'string', default: 'always,interval,open' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  console.log(
    [
      'usage: npm run bench:log -- [options]',
      '  --seconds S     measured duration of each throughput case (default 3)',
      '  --open-gb X     size of the log built for the open case, X million 1 KiB records (default 1;',
      '                  the spec size is 5); 0 skips the open case',
      '  --dir DIR       parent of the data directory (default <repo>/.bench-data); same disk as the repo',
      '  --cases LIST    comma-separated subset of always,interval,open (default all)',
    ].join('\n'),
  );
  process.exit(0);
}

const seconds = Number(args.seconds);
const openGb = Number(args['open-gb']);
if (!(seconds > 0) || !(openGb >= 0)) {
  console.error('--seconds must be > 0 and --open-gb >= 0');
  process.exit(2);
}
const selected = new Set(args.cases.split(',').map((s) => s.trim()));
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const parentDir = resolve(args.dir ?? join(repo, '.bench-data'));
const root = join(parentDir, `log-bench-${process.pid}`);
const warmupMs = Math.min(500, seconds * 200);

// ------------------------------------------------------------------------------------------ helpers

interface IoCounters {
  writes: number;
  writeBytes: number;
  syncs: number;
}

function zeroCounters(c: IoCounters): void {
  c.writes = 0;
  c.writeBytes = 0;
  c.syncs = 0;
}

/** node:fs with the writes and fdatasyncs on segment files counted. */
function countingFileSystem(c: IoCounters): StorageFileSystem {
  return {
    ...nodeFileSystem,
    async open(path, mode) {
      const file = await nodeFileSystem.open(path, mode);
      if (!path.endsWith('.seg')) return file;
      const counted: StorageFile = {
        read: (buffer, offset, length, position) => file.read(buffer, offset, length, position),
        write: (buffers, position) => {
          c.writes++;
          for (const b of buffers) c.writeBytes += b.byteLength;
          return file.write(buffers, position);
        },
        sync: () => {
          c.syncs++;
          return file.sync();
        },
        truncate: (length) => file.truncate(length),
        size: () => file.size(),
        close: () => file.close(),
      };
      return counted;
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Growable list of latencies in ms. */
class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }
}

function sizeLabel(bytes: number): string {
  return bytes >= KiB ? `${bytes / KiB}k` : `${bytes}b`;
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function progress(line: string): void {
  console.log(`  ${line}`);
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^\d{20}\.seg$/.test(n)).sort();
}

/** Drops the page cache of every file in `dir` (per file: posix_fadvise DONTNEED through dd). */
function dropCache(dir: string, names: readonly string[]): boolean {
  try {
    for (const name of names) {
      execFileSync('dd', [`if=${join(dir, name)}`, 'iflag=nocache', 'count=0', 'status=none'], {
        stdio: 'ignore',
      });
    }
    return true;
  } catch {
    return false;
  }
}

/** The last commit that changed src/log (the code measured), marked when src/log has local changes. */
function measuredCommit(): string | null {
  try {
    const git = (...gitArgs: string[]): string =>
      execFileSync('git', gitArgs, {
        cwd: repo,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    const commit = git('log', '-1', '--format=%h', '--', 'src/log');
    return git('status', '--porcelain', '--', 'src/log') === '' ? commit : `${commit}+local-changes`;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------------------------------ cases

interface Row {
  name: string;
  kind: 'log' | 'raw';
  /** Records appended (log) or frames' worth of bytes written (raw). */
  records: number;
  elapsedS: number;
  /** Payload bytes (log) or bytes written (raw). */
  payloadBytes: number;
  diskBytes: number;
  writes: number;
  syncs: number;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  ratio: number | undefined;
}

interface LogCase {
  name: string;
  fsync: FsyncPolicy;
  recordBytes: number;
  appenders: number;
  batch: number;
}

/** What the measured slices of one side of a pair add up to. */
interface Totals {
  records: number;
  elapsedMs: number;
  writes: number;
  writeBytes: number;
  syncs: number;
  latencies: Samples;
}

const newTotals = (): Totals => ({
  records: 0,
  elapsedMs: 0,
  writes: 0,
  writeBytes: 0,
  syncs: 0,
  latencies: new Samples(),
});

const rows: Row[] = [];

/** One log case: a log kept open across the slices it is driven for. */
class LogSide {
  readonly totals = newTotals();
  private readonly batch: AppendInput[];
  private appended = 0;

  private constructor(
    readonly spec: LogCase,
    private readonly dir: string,
    private readonly log: Log,
    private readonly io: IoCounters,
  ) {
    const payload = randomBytes(spec.recordBytes);
    this.batch = Array.from({ length: spec.batch }, () => ({ payload }));
  }

  static async open(spec: LogCase): Promise<LogSide> {
    const dir = join(root, spec.name.replace(/\W+/g, '-'));
    const io: IoCounters = { writes: 0, writeBytes: 0, syncs: 0 };
    const log = await Log.open(dir, {
      fsync: spec.fsync,
      fsyncIntervalMs: FSYNC_INTERVAL_MS,
      fileSystem: countingFileSystem(io),
    });
    return new LogSide(spec, dir, log, io);
  }

  /** `appenders` loops, each awaiting one append of `batch` records at a time, for `ms`. */
  async run(ms: number, measure: boolean): Promise<void> {
    const { log, batch, totals } = this;
    zeroCounters(this.io);
    const t0 = performance.now();
    const until = t0 + ms;
    let records = 0;
    const loop = async (): Promise<void> => {
      while (performance.now() < until) {
        const t = performance.now();
        await log.append(batch);
        if (measure) totals.latencies.push(performance.now() - t);
        records += batch.length;
      }
    };
    await Promise.all(Array.from({ length: this.spec.appenders }, loop));
    const elapsed = performance.now() - t0;
    this.appended += records;
    if (measure) {
      totals.records += records;
      totals.elapsedMs += elapsed;
      totals.writes += this.io.writes;
      totals.writeBytes += this.io.writeBytes;
      totals.syncs += this.io.syncs;
    }
    // Leave nothing dirty for the raw slice that follows (outside the measured time).
    if (this.spec.fsync !== 'always') await log.sync();
  }

  async close(): Promise<void> {
    if (this.log.lastSeq !== this.appended) {
      throw new Error(`${this.spec.name}: lastSeq ${this.log.lastSeq} != ${this.appended} appended`);
    }
    await this.log.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Raw baseline: positioned writes appending to one file through a FileHandle. With `syncEvery`
 * undefined each write is followed by an awaited fdatasync (as `fsync: 'always'` does); otherwise
 * an fdatasync is started after every `syncEvery` writes and runs concurrently with the next
 * writes (as the `interval` timer does), waiting for the previous one if it is still running.
 */
class RawSide {
  readonly totals = newTotals();
  private position = 0;
  private buf = Buffer.alloc(0);

  private constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(): Promise<RawSide> {
    const path = join(root, 'raw.dat');
    return new RawSide(path, await open(path, 'w'));
  }

  async run(ms: number, writeBytes: number, syncEvery: number | undefined, measure: boolean): Promise<void> {
    const { fh, totals } = this;
    if (this.buf.byteLength !== writeBytes) this.buf = randomBytes(Math.max(1, writeBytes));
    const buf = this.buf;
    let writes = 0;
    let syncs = 0;
    let unsynced = 0;
    let syncing: Promise<void> | undefined;
    const t0 = performance.now();
    const until = t0 + ms;
    const start = this.position;
    while (performance.now() < until) {
      const t = performance.now();
      await fh.write(buf, 0, buf.byteLength, this.position);
      this.position += buf.byteLength;
      writes++;
      if (syncEvery === undefined) {
        await fh.datasync();
        syncs++;
      } else if (++unsynced >= syncEvery) {
        unsynced = 0;
        await syncing;
        syncing = fh.datasync().then(() => {
          syncs++;
        });
      }
      if (measure) totals.latencies.push(performance.now() - t);
    }
    const elapsed = performance.now() - t0;
    const counted = syncs;
    await syncing;
    if (syncEvery !== undefined) await fh.datasync();
    if (measure) {
      totals.elapsedMs += elapsed;
      totals.writes += writes;
      totals.writeBytes += this.position - start;
      totals.syncs += counted;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
    await rm(this.path, { force: true });
  }
}

function toRow(name: string, kind: 'log' | 'raw', t: Totals, payloadBytes: number, frameBytes: number): Row {
  const sorted = t.latencies.sorted();
  return {
    name,
    kind,
    records: kind === 'log' ? t.records : t.writeBytes / frameBytes,
    elapsedS: t.elapsedMs / 1000,
    payloadBytes,
    diskBytes: t.writeBytes,
    writes: t.writes,
    syncs: t.syncs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    ratio: undefined,
  };
}

/**
 * A log case and its raw baseline, interleaved in slices (log, raw, log, raw, ...) so that drift
 * in the disk's speed hits both alike. Each raw slice uses the batching the log showed so far.
 */
async function runPair(spec: LogCase): Promise<{ log: Row; raw: Row }> {
  const frameBytes = spec.recordBytes + FRAME_HEADER_BYTES;
  const slices = Math.max(1, Math.round(seconds / SLICE_SECONDS));
  const sliceMs = (seconds * 1000) / slices;
  const logSide = await LogSide.open(spec);
  const rawSide = await RawSide.open();
  let writeBytes = 0;
  let syncEvery: number | undefined;
  try {
    await logSide.run(warmupMs, false);
    for (let i = 0; i < slices; i++) {
      await logSide.run(sliceMs, true);
      const t = logSide.totals;
      writeBytes = Math.round(t.writeBytes / Math.max(1, t.writes));
      syncEvery =
        spec.fsync === 'always' ? undefined : Math.max(1, Math.round(t.writes / Math.max(1, t.syncs)));
      if (i === 0) await rawSide.run(warmupMs, writeBytes, syncEvery, false);
      await rawSide.run(sliceMs, writeBytes, syncEvery, true);
    }
  } finally {
    await logSide.close();
    await rawSide.close();
  }
  const log = toRow(spec.name, 'log', logSide.totals, logSide.totals.records * spec.recordBytes, frameBytes);
  const rawName =
    syncEvery === undefined
      ? `raw write ${fmt(writeBytes)} B + fdatasync`
      : `raw write ${fmt(writeBytes)} B, fdatasync per ${fmt(syncEvery)} writes`;
  const raw = toRow(rawName, 'raw', rawSide.totals, rawSide.totals.writeBytes, frameBytes);
  log.ratio = log.diskBytes / log.elapsedS / (raw.diskBytes / raw.elapsedS);
  rows.push(log, raw);
  progress(
    `${log.name}: ${fmt(log.records / log.elapsedS)} rec/s, ${fmt(log.payloadBytes / log.elapsedS / MB, 1)} MB/s` +
      ` | ${raw.name}: ${fmt(raw.diskBytes / raw.elapsedS / MB, 1)} MB/s | ratio ${fmt(log.ratio, 2)}`,
  );
  return { log, raw };
}

// ------------------------------------------------------------------------------------------ open

interface OpenResult {
  records: number;
  bytes: number;
  segments: number;
  activeSegmentBytes: number;
  buildS: number;
  openMs: number[];
  openOnlyMs: number[];
  openColdMs: number[];
  crashMs: number[];
  crashColdMs: number[];
  noIndexMs: number[];
}

async function timeOpen(dir: string, expectLast: number): Promise<{ total: number; open: number }> {
  const t0 = performance.now();
  const log = await Log.open(dir);
  const t1 = performance.now();
  const last = log.lastSeq;
  await log.close();
  const t2 = performance.now();
  if (last !== expectLast) throw new Error(`open: lastSeq ${last} != ${expectLast}`);
  return { total: t2 - t0, open: t1 - t0 };
}

async function runOpenCase(): Promise<OpenResult> {
  const dir = join(root, 'open');
  const records = Math.round(openGb * 1_000_000);
  const recordBytes = KiB;
  const perAppend = 1000;
  const need = records * (recordBytes + FRAME_HEADER_BYTES);
  await mkdir(root, { recursive: true });
  const fsInfo = await statfs(root);
  const free = fsInfo.bavail * fsInfo.bsize;
  if (free < need * 1.1 + 512 * 1024 * 1024) {
    throw new Error(
      `open case needs ~${fmt(need / 1e9, 2)} GB free in ${root}; ${fmt(free / 1e9, 2)} GB are. Lower --open-gb.`,
    );
  }
  progress(`building ${fmt(records)} records of 1 KiB (${fmt(need / 1e9, 2)} GB) with fsync 'never' ...`);
  const payload = randomBytes(recordBytes);
  const full: AppendInput[] = Array.from({ length: perAppend }, () => ({ payload }));
  const t0 = performance.now();
  const log = await Log.open(dir, { fsync: 'never' });
  let next = 0;
  const builder = async (): Promise<void> => {
    while (next < records) {
      const n = Math.min(perAppend, records - next);
      next += n;
      await log.append(n === perAppend ? full : full.slice(0, n));
    }
  };
  await Promise.all(Array.from({ length: 8 }, builder));
  const stats = log.stats();
  await log.close();
  // Flush everything before timing, so writeback does not compete with the opens.
  const segs = await segmentFiles(dir);
  for (const name of segs) {
    const fh = await open(join(dir, name), 'r');
    await fh.datasync();
    await fh.close();
  }
  const buildS = (performance.now() - t0) / 1000;
  const activeSeg = segs.at(-1)!;
  const activeSegmentBytes = (await stat(join(dir, activeSeg))).size;
  progress(
    `built ${fmt(stats.records)} records, ${fmt(stats.bytes / 1e9, 3)} GB, ${stats.segments} segments in ` +
      `${fmt(buildS, 1)} s (${fmt(stats.bytes / buildS / MB)} MB/s incl. flush); active segment ${fmt(activeSegmentBytes / MB, 1)} MB`,
  );

  const result: OpenResult = {
    records: stats.records,
    bytes: stats.bytes,
    segments: stats.segments,
    activeSegmentBytes,
    buildS,
    openMs: [],
    openOnlyMs: [],
    openColdMs: [],
    crashMs: [],
    crashColdMs: [],
    noIndexMs: [],
  };
  const all = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n !== 'blobs');
  const activeIdx = join(dir, activeSeg.replace(/\.seg$/, '.idx'));
  const reps = 3;
  for (let i = 0; i < reps; i++) {
    const t = await timeOpen(dir, records);
    result.openMs.push(t.total);
    result.openOnlyMs.push(t.open);
  }
  progress(`open+close (warm cache): ${result.openMs.map((v) => fmt(v, 1)).join(', ')} ms`);
  for (let i = 0; i < reps; i++) {
    if (!dropCache(dir, await all())) break;
    result.openColdMs.push((await timeOpen(dir, records)).total);
  }
  progress(`open+close (cold cache): ${result.openColdMs.map((v) => fmt(v, 1)).join(', ') || 'n/a'} ms`);
  for (let i = 0; i < reps; i++) {
    await rm(activeIdx, { force: true });
    result.crashMs.push((await timeOpen(dir, records)).total);
  }
  progress(`open+close, active .idx deleted (warm): ${result.crashMs.map((v) => fmt(v, 1)).join(', ')} ms`);
  for (let i = 0; i < reps; i++) {
    await rm(activeIdx, { force: true });
    if (!dropCache(dir, await all())) break;
    result.crashColdMs.push((await timeOpen(dir, records)).total);
  }
  progress(
    `open+close, active .idx deleted (cold): ${result.crashColdMs.map((v) => fmt(v, 1)).join(', ') || 'n/a'} ms`,
  );
  for (const name of await all()) if (name.endsWith('.idx')) await rm(join(dir, name), { force: true });
  result.noIndexMs.push((await timeOpen(dir, records)).total);
  progress(`open+close, every .idx deleted (warm): ${fmt(result.noIndexMs[0], 1)} ms`);
  // Reading still works after that: the first sealed segment's index is rebuilt by a scan.
  const check = await Log.open(dir);
  const first = await check.read({ fromSeq: 1, maxRecords: 1 });
  const last = await check.read({ fromSeq: records, maxRecords: 1 });
  await check.close();
  if (first[0]?.seq !== 1 || last[0]?.seq !== records || first[0].payloadBytes !== recordBytes) {
    throw new Error('open: read-back check failed');
  }
  await rm(dir, { recursive: true, force: true });
  return result;
}

// ------------------------------------------------------------------------------------------ main

function printTable(): void {
  const header = [
    'case',
    'rec/s',
    'MB/s',
    'disk MB/s',
    'writes/s',
    'fsyncs/s',
    'KiB/fsync',
    'p50 ms',
    'p99 ms',
    'ratio',
  ];
  const body = rows.map((r) => [
    r.kind === 'raw' ? `  ${r.name}` : r.name,
    fmt(r.records / r.elapsedS),
    fmt(r.payloadBytes / r.elapsedS / MB, 1),
    fmt(r.diskBytes / r.elapsedS / MB, 1),
    fmt(r.writes / r.elapsedS),
    fmt(r.syncs / r.elapsedS),
    fmt(r.syncs > 0 ? r.diskBytes / r.syncs / KiB : undefined, 1),
    fmt(r.p50Ms, 3),
    fmt(r.p99Ms, 3),
    r.ratio === undefined ? '' : fmt(r.ratio, 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(line(b));
}

const cleanupSync = (): void => {
  rmSync(root, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanupSync();
  process.exit(130);
});

const result: Record<string, number | string | null> = { src_log_commit: measuredCommit() };
let exitCode = 0;
console.log(
  `waystation log benchmark: node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ` +
    `${fmt(totalmem() / 2 ** 30, 1)} GiB RAM`,
);
console.log(`src/log as of commit ${result.src_log_commit ?? 'unknown'}`);
console.log(`data: ${root}; ${seconds} s per case after ${warmupMs} ms warm-up; MB = 10^6 bytes`);
try {
  await mkdir(root, { recursive: true });
  const rate = (r: Row): number => r.records / r.elapsedS;
  const mbps = (r: Row): number => r.payloadBytes / r.elapsedS / MB;

  if (selected.has('always')) {
    console.log("fsync 'always'");
    for (const recordBytes of [100, KiB, 64 * KiB]) {
      for (const appenders of [1, 64]) {
        const name = `always ${sizeLabel(recordBytes)} x${appenders}`;
        const { log, raw } = await runPair({ name, fsync: 'always', recordBytes, appenders, batch: 1 });
        if (recordBytes === KiB && appenders === 1) result.always1_1k_msgs_per_s = Math.round(rate(log));
        if (recordBytes === KiB && appenders === 64) result.always64_1k_msgs_per_s = Math.round(rate(log));
        if (recordBytes === 100 && appenders === 64) result.always64_100b_msgs_per_s = Math.round(rate(log));
        if (recordBytes === 64 * KiB && appenders === 64) {
          result.always64_64k_mb_per_s = round(mbps(log), 2);
          result.always64_64k_ratio_vs_raw = round(log.ratio ?? Number.NaN, 3);
        }
        if (recordBytes === 64 * KiB && appenders === 1) {
          result.mb_per_s_64k = round(mbps(log), 2);
          result.mb_per_s_64k_case = name;
          result.raw_mb_per_s = round(mbps(raw), 2);
          result.ratio_64k_vs_raw = round(mbps(log) / mbps(raw), 3);
        }
      }
    }
  }

  if (selected.has('interval')) {
    console.log(`fsync 'interval' (${FSYNC_INTERVAL_MS} ms)`);
    let best: Row | undefined;
    const cases: LogCase[] = [
      { name: 'interval 1k x1', fsync: 'interval', recordBytes: KiB, appenders: 1, batch: 1 },
      { name: 'interval 1k x64', fsync: 'interval', recordBytes: KiB, appenders: 64, batch: 1 },
      { name: 'interval 1k x1 batch100', fsync: 'interval', recordBytes: KiB, appenders: 1, batch: 100 },
    ];
    for (const spec of cases) {
      const { log } = await runPair(spec);
      const key = spec.name.replace(/^interval 1k /, 'interval_1k_').replace(/ /g, '_');
      result[`${key}_msgs_per_s`] = Math.round(rate(log));
      if (!best || rate(log) > rate(best)) best = log;
    }
    if (best) {
      result.interval_1k_msgs_per_s = Math.round(rate(best));
      result.interval_1k_case = best.name;
    }
  }

  if (selected.has('open') && openGb > 0) {
    console.log('open');
    const o = await runOpenCase();
    result.open_5gb_ms = round(median(o.openMs), 1);
    result.open_only_ms = round(median(o.openOnlyMs), 1);
    result.open_cold_ms = o.openColdMs.length > 0 ? round(median(o.openColdMs), 1) : null;
    result.open_after_crash_ms = round(median(o.crashMs), 1);
    result.open_after_crash_cold_ms = o.crashColdMs.length > 0 ? round(median(o.crashColdMs), 1) : null;
    result.open_no_index_ms = round(o.noIndexMs[0] ?? Number.NaN, 1);
    result.open_size_gb = round(o.bytes / 1e9, 3);
    result.open_records = o.records;
    result.open_segments = o.segments;
    result.open_active_segment_mb = round(o.activeSegmentBytes / MB, 1);
    result.open_build_s = round(o.buildS, 1);
  }
  result.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);

  console.log('');
  printTable();
  console.log('');
  console.log('rec/s of a raw row: its bytes/s in frames of the log case above it. ratio: disk MB/s of the');
  console.log(
    'log case / MB/s of its raw baseline (same bytes per write and per fdatasync). p50/p99: per append call.',
  );
  if (result.mb_per_s_64k !== undefined) {
    console.log(
      `mb_per_s_64k is '${result.mb_per_s_64k_case}'; raw_mb_per_s is its baseline (write + fdatasync per record).`,
    );
  }
  if (result.open_5gb_ms !== undefined) {
    console.log(
      `open: ${fmt(Number(result.open_records))} records, ${result.open_size_gb} GB, ${result.open_segments} ` +
        `segments: open+close ${result.open_5gb_ms} ms warm / ${result.open_cold_ms ?? '-'} ms cold; ` +
        `active .idx deleted ${result.open_after_crash_ms} ms warm / ${result.open_after_crash_cold_ms ?? '-'} ms cold ` +
        `(scans the ${result.open_active_segment_mb} MB active segment); every .idx deleted ${result.open_no_index_ms} ms`,
    );
  }
  console.log('');
  console.log('targets');
  for (const [key, target] of Object.entries(TARGETS)) {
    const value = result[key];
    if (typeof value !== 'number') {
      console.log(`  ${key.padEnd(24)} not measured`);
      continue;
    }
    const pass = value >= target;
    const digits = target < 10 ? 3 : 0;
    const miss = pass ? '' : ` (${fmt((1 - value / target) * 100, 1)}% below)`;
    console.log(
      `  ${key.padEnd(24)} ${fmt(value, digits).padStart(10)} >= ${fmt(target, digits).padStart(8)}  ${pass ? 'PASS' : 'MISS'}${miss}`,
    );
    result[`${key}_pass`] = pass ? 'PASS' : 'MISS';
  }
} catch (err) {
  exitCode = 1;
  console.error(err);
} finally {
  await rm(root, { recursive: true, force: true });
  if (args.dir === undefined) await rmdir(parentDir).catch(() => {});
}
console.log(`RESULT ${JSON.stringify(result)}`);
process.exitCode = exitCode;
