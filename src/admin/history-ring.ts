/**
 * One resolution of a route's history (issue 11): a fixed ring of time buckets, each `stepMs`
 * wide, `slots` of them, so a ring covers `stepMs × slots` and never grows. A bucket holds the
 * peak of the two gauges (inQueue, usedBytes) seen in it, the events counted in it per rate
 * field, and how many seconds of observation it covers (a rate is count / covered seconds, so a
 * bucket the gateway saw only half of is not halved). A slot remembers which bucket it holds; a
 * slot holding an older bucket is a gap (the gateway was not running), read as null.
 *
 * Memory: `slots × 4 × (1 + VALUES)` bytes in two typed arrays, nothing per sample.
 *
 * Persisted layout (route-history.ts writes it), DO NOT REORDER: the bucket numbers as a
 * Uint32Array, then the values as a Float32Array of `slots × VALUES`, per slot in the order of
 * VALUE_FIELDS; both in the machine's byte order, which the file records.
 */

/** The rate fields, counted per bucket. */
export const RATE_FIELDS = ['stored', 'forwarded', 'expired', 'pruned', 'deadLettered'] as const;
export type RateField = (typeof RATE_FIELDS)[number];

/** Per slot, in this order (persisted: do not reorder). */
const VALUE_FIELDS = ['covered', 'inQueue', 'usedBytes', ...RATE_FIELDS] as const;
export const VALUES = VALUE_FIELDS.length;
const COVERED = 0;
const IN_QUEUE = 1;
const USED_BYTES = 2;
const FIRST_RATE = 3;

/** One observation: the gauges now, and the events counted since the previous one. */
export interface Observation {
  /** ms since the epoch. */
  at: number;
  inQueue: number;
  usedBytes: number;
  /** Seconds since the previous observation; 0 when there is none to count from (a start). */
  coveredSeconds: number;
  /** Events since the previous observation (ignored when coveredSeconds is 0). */
  counts: Readonly<Record<RateField, number>>;
}

/** A window read from a ring, column by column; null where the gateway saw nothing. */
export interface Series {
  /** Start of each bucket, ms since the epoch, oldest first. */
  t: number[];
  inQueue: (number | null)[];
  usedBytes: (number | null)[];
  /** Events per second in each bucket. */
  rates: Record<RateField, (number | null)[]>;
}

export class HistoryRing {
  /** Which bucket (floor(ms / stepMs)) each slot holds; 0: never written. */
  readonly buckets: Uint32Array;
  readonly values: Float32Array;

  constructor(
    readonly stepMs: number,
    readonly slots: number,
  ) {
    this.buckets = new Uint32Array(slots);
    this.values = new Float32Array(slots * VALUES);
  }

  /** Bytes this ring holds. */
  get byteLength(): number {
    return this.buckets.byteLength + this.values.byteLength;
  }

  add(o: Observation): void {
    const bucket = Math.floor(o.at / this.stepMs);
    const slot = bucket % this.slots;
    const base = slot * VALUES;
    const v = this.values;
    if (this.buckets[slot] !== bucket) {
      this.buckets[slot] = bucket;
      v.fill(0, base, base + VALUES);
      v[base + IN_QUEUE] = o.inQueue;
      v[base + USED_BYTES] = o.usedBytes;
    } else {
      v[base + IN_QUEUE] = Math.max(v[base + IN_QUEUE]!, o.inQueue);
      v[base + USED_BYTES] = Math.max(v[base + USED_BYTES]!, o.usedBytes);
    }
    if (o.coveredSeconds <= 0) return;
    v[base + COVERED]! += o.coveredSeconds;
    for (let i = 0; i < RATE_FIELDS.length; i++) v[base + FIRST_RATE + i]! += o.counts[RATE_FIELDS[i]!];
  }

  /** The whole ring's span ending with the bucket that holds `now`. */
  read(now: number): Series {
    const last = Math.floor(now / this.stepMs);
    const series: Series = {
      t: [],
      inQueue: [],
      usedBytes: [],
      rates: Object.fromEntries(RATE_FIELDS.map((f) => [f, []])) as unknown as Series['rates'],
    };
    for (let bucket = last - this.slots + 1; bucket <= last; bucket++) {
      series.t.push(bucket * this.stepMs);
      const slot = ((bucket % this.slots) + this.slots) % this.slots;
      const held = bucket > 0 && this.buckets[slot] === bucket;
      const base = slot * VALUES;
      const covered = held ? this.values[base + COVERED]! : 0;
      series.inQueue.push(held ? this.values[base + IN_QUEUE]! : null);
      series.usedBytes.push(held ? this.values[base + USED_BYTES]! : null);
      RATE_FIELDS.forEach((f, i) => {
        series.rates[f].push(covered > 0 ? this.values[base + FIRST_RATE + i]! / covered : null);
      });
    }
    return series;
  }

  /** The ring as bytes (see the layout above). */
  encode(): Buffer {
    return Buffer.concat([
      Buffer.from(this.buckets.buffer, this.buckets.byteOffset, this.buckets.byteLength),
      Buffer.from(this.values.buffer, this.values.byteOffset, this.values.byteLength),
    ]);
  }

  /** Fills the ring from `encode()`'s bytes; false (and the ring left empty) when they do not fit it. */
  decode(bytes: Buffer): boolean {
    if (bytes.byteLength !== this.byteLength) return false;
    // Copied out: a Buffer's offset in its pool need not be aligned for typed arrays.
    const copy = new Uint8Array(bytes);
    this.buckets.set(new Uint32Array(copy.buffer, 0, this.slots));
    this.values.set(new Float32Array(copy.buffer, this.buckets.byteLength, this.slots * VALUES));
    return true;
  }
}
