/**
 * The history the gateway keeps of every route for the dashboard (issue 11): inQueue, usedBytes
 * and the rates stored / forwarded / expired / pruned / dead-lettered per second, in three
 * bounded rings (history-ring.ts) read as the 5 min, 1 h and 24 h windows:
 *
 *   5m   1 s buckets × 300      1h   10 s buckets × 360      24h   60 s buckets × 1440
 *
 * Memory is fixed per route (ROUTE_HISTORY_BYTES, 75,600 bytes), whatever the traffic or uptime.
 *
 * The recorder reads every route once a second (its counters, the streams' last seq for
 * `stored`) and adds the growth since the previous reading to each ring; a counter that went
 * down was reset (reset-counters, a recreated stream) and counts from zero. The first reading
 * after a start counts nothing: the growth while the gateway was down is not a rate. What the
 * gateway did not see stays a gap, read as null.
 *
 * Kept across restarts in `<dataDir>/dashboard/route-history.state` (an atomic, checksummed
 * file, src/log/atomic-file.ts), written every `saveIntervalMs` and at stop, so a crash loses
 * at most that much. A damaged or unreadable file does not stop the gateway: it is moved aside
 * to `route-history.state.damaged` with a warning, and history starts empty.
 */
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { deflateRaw, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import { type StorageFileSystem, writeAtomicJson } from '../log/index.js';
import { loadStateFile } from './dashboard-state.js';
import { HistoryRing, RATE_FIELDS, type RateField, type Series } from './history-ring.js';

export const HISTORY_WINDOWS = {
  '5m': { stepMs: 1_000, slots: 300 },
  '1h': { stepMs: 10_000, slots: 360 },
  '24h': { stepMs: 60_000, slots: 1_440 },
} as const;
export type HistoryWindow = keyof typeof HISTORY_WINDOWS;
export const HISTORY_WINDOW_NAMES = Object.keys(HISTORY_WINDOWS) as HistoryWindow[];

const RING_SHAPES = Object.values(HISTORY_WINDOWS);

/** Bytes of history one route costs (its rings' typed arrays). */
export const ROUTE_HISTORY_BYTES = RING_SHAPES.reduce(
  (sum, r) => sum + new HistoryRing(r.stepMs, r.slots).byteLength,
  0,
);

/** A reading further apart from the previous one than this counts nothing (the process stalled or slept). */
const MAX_COUNTED_GAP_MS = 5_000;

/** The inQueue sparkline of the routes table: the last 5 minutes in 10 s points. */
const SPARKLINE_POINTS = 30;
export const SPARKLINE_STEP_MS =
  (HISTORY_WINDOWS['5m'].stepMs * HISTORY_WINDOWS['5m'].slots) / SPARKLINE_POINTS;

/** What the recorder reads of one route. */
export interface RouteReading {
  name: string;
  inQueue: number;
  usedBytes: number;
  /** Cumulative counts: `stored` is the sum of the last seq of the streams the route reads. */
  totals: Readonly<Record<RateField, number>>;
}

class RouteHistory {
  readonly rings = RING_SHAPES.map((r) => new HistoryRing(r.stepMs, r.slots));
  lastDeliveredAt: number | undefined;
  private previous: { at: number; totals: Readonly<Record<RateField, number>> } | undefined;

  observe(r: RouteReading, at: number): void {
    const p = this.previous;
    const counted = p !== undefined && at > p.at && at - p.at <= MAX_COUNTED_GAP_MS;
    const counts = Object.fromEntries(
      RATE_FIELDS.map((f) => [f, counted ? growth(p.totals[f], r.totals[f]) : 0]),
    ) as Record<RateField, number>;
    const coveredSeconds = counted ? (at - p.at) / 1000 : 0;
    for (const ring of this.rings)
      ring.add({ at, inQueue: r.inQueue, usedBytes: r.usedBytes, coveredSeconds, counts });
    if (counts.forwarded > 0) this.lastDeliveredAt = at;
    this.previous = { at, totals: { ...r.totals } };
  }
}

/** How much a cumulative count grew; one that went down was reset and counts from zero. */
function growth(before: number, now: number): number {
  return now >= before ? now - before : now;
}

export interface HistoryEstimates {
  /** Seconds until inQueue reaches 0 at its rate of the last minute; 0 when empty, null when not falling. */
  drainSeconds: number | null;
  /** Seconds until a limit (maxBytes, maxMessages) is reached at the last minute's growth; null when none is set or nothing grows. */
  fullSeconds: number | null;
}

/**
 * The trend (per second) of a series' last `spanMs`: the least-squares slope, when the span also
 * ends above (or below) where it began. A burst that came and went has a rising slope over the
 * minute yet ends where it began: no trend. Undefined with under 5 points.
 */
function slope(t: readonly number[], y: readonly (number | null)[], spanMs: number): number | undefined {
  const end = t[t.length - 1] ?? 0;
  let first: number | undefined;
  let last: number | undefined;
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < t.length; i++) {
    const v = y[i];
    if (v === null || v === undefined || t[i]! <= end - spanMs) continue;
    const x = (t[i]! - end) / 1000;
    first ??= v;
    last = v;
    n++;
    sx += x;
    sy += v;
    sxx += x * x;
    sxy += x * v;
  }
  const d = n * sxx - sx * sx;
  if (n < 5 || d === 0) return undefined;
  const fit = (n * sxy - sx * sy) / d;
  return Math.sign(fit) === Math.sign(last! - first!) ? fit : 0;
}

/** Time to drain and time until full from the 5 min series (its last minute) and the route now. */
export function estimate(
  fine: Series,
  now: { inQueue: number; usedBytes: number; limitBytes?: number; limitMessages?: number },
): HistoryEstimates {
  const queueSlope = slope(fine.t, fine.inQueue, 60_000);
  const bytesSlope = slope(fine.t, fine.usedBytes, 60_000);
  const drainSeconds =
    now.inQueue === 0 ? 0 : queueSlope !== undefined && queueSlope < 0 ? now.inQueue / -queueSlope : null;
  const until: number[] = [];
  if (now.limitBytes !== undefined && bytesSlope !== undefined && bytesSlope > 0)
    until.push(Math.max(0, now.limitBytes - now.usedBytes) / bytesSlope);
  if (now.limitMessages !== undefined && queueSlope !== undefined && queueSlope > 0)
    until.push(Math.max(0, now.limitMessages - now.inQueue) / queueSlope);
  return { drainSeconds, fullSeconds: until.length > 0 ? Math.min(...until) : null };
}

const FILE_VERSION = 1;

/** The history file's content (JSON inside an atomic file); a change of shape is a new version. */
const HistoryFileSchema = z.object({
  version: z.literal(FILE_VERSION),
  littleEndian: z.boolean(),
  routes: z.record(
    z.string(),
    z.object({
      lastDeliveredAt: z.number().nullable(),
      rings: z.array(z.object({ stepMs: z.number(), slots: z.number(), data: z.string() })),
    }),
  ),
});
type HistoryFile = z.infer<typeof HistoryFileSchema>;

const deflate = promisify(deflateRaw);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Every route's history. */
export class RouteHistories {
  private readonly routes = new Map<string, RouteHistory>();

  private history(name: string): RouteHistory {
    let h = this.routes.get(name);
    if (!h) {
      h = new RouteHistory();
      this.routes.set(name, h);
    }
    return h;
  }

  /** Adds one reading of the routes; routes not read any more are forgotten. */
  observe(readings: readonly RouteReading[], at: number): void {
    const names = new Set(readings.map((r) => r.name));
    for (const name of this.routes.keys()) if (!names.has(name)) this.routes.delete(name);
    for (const r of readings) this.history(r.name).observe(r, at);
  }

  has(route: string): boolean {
    return this.routes.has(route);
  }

  /** A window of a route's history ending now (all gaps when the route has none yet). */
  read(route: string, window: HistoryWindow, now: number): Series {
    const i = HISTORY_WINDOW_NAMES.indexOf(window);
    const ring =
      this.routes.get(route)?.rings[i] ??
      new HistoryRing(HISTORY_WINDOWS[window].stepMs, HISTORY_WINDOWS[window].slots);
    return ring.read(now);
  }

  lastDeliveredAt(route: string): number | undefined {
    return this.routes.get(route)?.lastDeliveredAt;
  }

  /** inQueue over the last 5 minutes in SPARKLINE_POINTS points (each the peak of its seconds). */
  sparkline(route: string, now: number): (number | null)[] {
    const { inQueue } = this.read(route, '5m', now);
    const per = inQueue.length / SPARKLINE_POINTS;
    const points: (number | null)[] = [];
    for (let p = 0; p < SPARKLINE_POINTS; p++) {
      let peak: number | null = null;
      for (const v of inQueue.slice(p * per, (p + 1) * per))
        if (v !== null) peak = peak === null ? v : Math.max(peak, v);
      points.push(peak);
    }
    return points;
  }

  /** The memory the routes' histories hold, bytes. */
  get byteLength(): number {
    return this.routes.size * ROUTE_HISTORY_BYTES;
  }

  /** The file's content; the rings deflated (mostly gaps and flat lines) off the event loop. */
  async toFile(): Promise<HistoryFile> {
    const routes: HistoryFile['routes'] = {};
    for (const [name, h] of this.routes)
      routes[name] = {
        lastDeliveredAt: h.lastDeliveredAt ?? null,
        rings: await Promise.all(
          h.rings.map(async (r) => ({
            stepMs: r.stepMs,
            slots: r.slots,
            data: (await deflate(r.encode())).toString('base64'),
          })),
        ),
      };
    return { version: FILE_VERSION, littleEndian: LITTLE_ENDIAN, routes };
  }

  /**
   * Restores what a file held for the routes in `keep` (those the configuration has now). A ring
   * whose shape changed, or bytes that do not fit it, start empty. Throws on content that is not
   * a history file.
   */
  restore(content: unknown, keep: ReadonlySet<string>): void {
    const file = HistoryFileSchema.parse(content);
    // Another byte order (the data directory was copied across machines): unreadable, start afresh.
    if (file.littleEndian !== LITTLE_ENDIAN) return;
    for (const [name, saved] of Object.entries(file.routes)) {
      if (!keep.has(name)) continue;
      const h = this.history(name);
      h.lastDeliveredAt = saved.lastDeliveredAt ?? undefined;
      h.rings.forEach((ring, i) => {
        const s = saved.rings[i];
        if (s && s.stepMs === ring.stepMs && s.slots === ring.slots)
          ring.decode(
            inflateRawSync(Buffer.from(s.data, 'base64'), { maxOutputLength: ring.byteLength + 1 }),
          );
      });
    }
  }
}

export interface HistoryRecorderOptions {
  histories: RouteHistories;
  /** Reads every route now. */
  read: () => Promise<RouteReading[]>;
  /** The state file (in the data directory's `dashboard/`). */
  path: string;
  fs: StorageFileSystem;
  /** Between readings, ms. Default 1000. */
  intervalMs?: number;
  /** Between saves of the file, ms: what a crash can lose. Default 60000. */
  saveIntervalMs?: number;
  now?: () => number;
  onWarning: (message: string, err?: unknown) => void;
}

/** Reads the routes every second into their history; loads the file at start, saves it periodically and at stop. */
export class HistoryRecorder {
  private saving: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private saveTimer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();
  private busy = false;
  private started = false;
  private readonly now: () => number;

  constructor(private readonly o: HistoryRecorderOptions) {
    this.now = o.now ?? Date.now;
  }

  private readonly saveFailed = (err: unknown): void =>
    this.o.onWarning(`could not save the route history to ${this.o.path}`, err);

  /** Loads the saved history of the routes in `routes` (a damaged file is moved aside), then reads every second. */
  async start(routes: readonly string[]): Promise<void> {
    await this.o.fs.mkdir(dirname(this.o.path));
    await loadStateFile(this.o.fs, this.o.path, this.o.onWarning, (content) =>
      this.o.histories.restore(content, new Set(routes)),
    );
    this.started = true;
    await this.tick();
    this.timer = setInterval(() => this.tick(), this.o.intervalMs ?? 1000);
    this.timer.unref();
    this.saveTimer = setInterval(() => void this.save(), this.o.saveIntervalMs ?? 60_000);
    this.saveTimer.unref();
  }

  /** Writes the file now (saves never overlap; a failed one is a warning, the next one tries again). */
  save(): Promise<void> {
    this.saving = this.saving
      .then(async () => writeAtomicJson(this.o.fs, this.o.path, await this.o.histories.toFile()))
      .catch(this.saveFailed);
    return this.saving;
  }

  /** One reading now (the timer's, or a test's). */
  tick(): Promise<void> {
    if (this.busy) return this.reading;
    this.busy = true;
    this.reading = this.o
      .read()
      .then(
        (readings) => this.o.histories.observe(readings, this.now()),
        (err) => this.o.onWarning('could not read the routes for their history', err),
      )
      .finally(() => {
        this.busy = false;
      });
    return this.reading;
  }

  /** Stops reading and saves the file (unless the file was never loaded: it would be overwritten). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.saveTimer);
    await this.reading;
    if (!this.started) return;
    this.started = false;
    await this.save();
  }
}
