/**
 * A set of sequence numbers kept as sorted, disjoint, non-adjacent inclusive ranges. Routes ack
 * out of order (LIFO, unordered and key ordering, parallel batches), so "what is done" is a set,
 * not a single cursor; in the usual case it is one range and costs a few bytes.
 */
export type SeqRange = readonly [first: number, last: number];

export class SeqSet {
  /** Flat [first0, last0, first1, last1, ...], sorted, ranges neither overlapping nor touching. */
  private bounds: number[] = [];

  static fromRanges(ranges: readonly SeqRange[]): SeqSet {
    const set = new SeqSet();
    for (const [a, b] of ranges) set.addRange(a, b);
    return set;
  }

  ranges(): SeqRange[] {
    const out: SeqRange[] = [];
    for (let i = 0; i < this.bounds.length; i += 2) out.push([this.bounds[i]!, this.bounds[i + 1]!]);
    return out;
  }

  get rangeCount(): number {
    return this.bounds.length / 2;
  }

  /** Index of the first range whose last >= seq (ranges.length/2 if none). */
  private locate(seq: number): number {
    let lo = 0;
    let hi = this.bounds.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.bounds[mid * 2 + 1]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(seq: number): boolean {
    const i = this.locate(seq);
    return i < this.bounds.length / 2 && this.bounds[i * 2]! <= seq;
  }

  add(seq: number): void {
    this.addRange(seq, seq);
  }

  addRange(first: number, last: number): void {
    if (last < first) return;
    // Ranges that overlap or touch [first, last] merge into one.
    const i = this.locate(first - 1);
    let start = first;
    let end = last;
    let j = i;
    while (j < this.bounds.length / 2 && this.bounds[j * 2]! <= last + 1) {
      start = Math.min(start, this.bounds[j * 2]!);
      end = Math.max(end, this.bounds[j * 2 + 1]!);
      j++;
    }
    this.bounds.splice(i * 2, (j - i) * 2, start, end);
  }

  delete(seq: number): void {
    const i = this.locate(seq);
    if (i >= this.bounds.length / 2 || this.bounds[i * 2]! > seq) return;
    const first = this.bounds[i * 2]!;
    const last = this.bounds[i * 2 + 1]!;
    const replacement: number[] = [];
    if (first <= seq - 1) replacement.push(first, seq - 1);
    if (seq + 1 <= last) replacement.push(seq + 1, last);
    this.bounds.splice(i * 2, 2, ...replacement);
  }

  /** Forgets every member below `seq`. */
  removeBelow(seq: number): void {
    const i = this.locate(seq);
    this.bounds.splice(0, i * 2);
    if (this.bounds.length > 0 && this.bounds[0]! < seq) this.bounds[0] = seq;
  }

  /** Members within [first, last]. */
  countIn(first: number, last: number): number {
    if (last < first) return 0;
    let count = 0;
    for (let i = this.locate(first); i < this.bounds.length / 2; i++) {
      const a = Math.max(first, this.bounds[i * 2]!);
      const b = Math.min(last, this.bounds[i * 2 + 1]!);
      if (a > last) break;
      if (b >= a) count += b - a + 1;
    }
    return count;
  }

  /** Smallest non-member >= seq. */
  nextMissing(seq: number): number {
    const i = this.locate(seq);
    if (i < this.bounds.length / 2 && this.bounds[i * 2]! <= seq) return this.bounds[i * 2 + 1]! + 1;
    return seq;
  }

  /** Largest non-member <= seq. */
  prevMissing(seq: number): number {
    const i = this.locate(seq);
    if (i < this.bounds.length / 2 && this.bounds[i * 2]! <= seq) return this.bounds[i * 2]! - 1;
    return seq;
  }

  /** Ranges of non-members within [first, last], ascending. */
  gaps(first: number, last: number): SeqRange[] {
    const out: SeqRange[] = [];
    let at = first;
    while (at <= last) {
      const start = this.nextMissing(at);
      if (start > last) break;
      const i = this.locate(start);
      const nextMember = i < this.bounds.length / 2 ? this.bounds[i * 2]! : Number.POSITIVE_INFINITY;
      const end = Math.min(last, nextMember - 1);
      out.push([start, end]);
      at = end + 1;
    }
    return out;
  }

  /** Smallest member, or undefined. */
  first(): number | undefined {
    return this.bounds[0];
  }
}
