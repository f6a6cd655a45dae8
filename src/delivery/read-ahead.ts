/**
 * Reading the backlog: the messages a pick chose, one log read per run of consecutive seqs,
 * with records the log found damaged reported apart; and the read-ahead — while a batch is at
 * the target, the one that follows it is read (the target and the disk work at the same time).
 *
 * The read-ahead is only a cache: the next pick still decides what goes, and skips whatever
 * became final meanwhile; a read-ahead message is handed out at most once. A pick that finds a
 * read-ahead under way waits for it rather than reading the same records twice.
 */
import type { MessageStream } from '../store/backend.js';
import type { StoredMessage } from '../store/message.js';

export interface BacklogRead {
  /** In the order of the seqs asked for (those read ahead included). */
  messages: StoredMessage[];
  /** Seqs the log skipped as damaged: they can never be read. */
  damaged: number[];
}

export interface BacklogReaderOptions {
  /** lifo: seqs and reads run from newest to oldest. */
  backward: boolean;
  /** A route's batch byte limit; one read takes at least 64 KiB. */
  batchMaxBytes: number;
}

/** What to read ahead in one stream: its seqs in reading order (none: nothing). */
export interface ReadAheadPlan {
  stream: MessageStream;
  seqs: readonly number[];
}

const MIN_READ_BYTES = 64 * 1024;

export class BacklogReader {
  /** Messages read ahead, per stream (the last read-ahead of each). */
  private readonly ahead = new Map<string, ReadAheadBatch>();
  private reading: Promise<void> | undefined;

  constructor(private readonly options: Readonly<BacklogReaderOptions>) {}

  /** The read-ahead under way, if any. */
  get busy(): Promise<void> | undefined {
    return this.reading;
  }

  /**
   * Starts a read-ahead unless one is under way: for each stream in turn, what `plan` names at
   * that moment (asked only once the previous stream's read is done). Failures go to `onError`.
   */
  readAhead(
    streams: readonly string[],
    plan: (stream: string) => ReadAheadPlan,
    onError: (err: unknown) => void,
  ): void {
    if (this.reading) return;
    this.reading = this.fill(streams, plan)
      .catch(onError)
      .finally(() => {
        this.reading = undefined;
      });
  }

  /** Reads the messages of `seqs` (in reading order), from the read-ahead where it has them. */
  read(stream: MessageStream, seqs: readonly number[]): Promise<BacklogRead> {
    return this.readRuns(stream, seqs, false);
  }

  private async fill(streams: readonly string[], plan: (stream: string) => ReadAheadPlan): Promise<void> {
    for (const name of streams) {
      const { stream, seqs } = plan(name);
      if (seqs.length === 0) continue;
      const { messages } = await this.readRuns(stream, seqs, true);
      this.ahead.set(name, new ReadAheadBatch(messages, this.options.backward));
    }
  }

  private async readRuns(
    stream: MessageStream,
    seqs: readonly number[],
    /** Called by the read-ahead itself (which must not wait for itself). */
    aheadOfTime: boolean,
  ): Promise<BacklogRead> {
    const { backward } = this.options;
    const out: StoredMessage[] = [];
    const damaged: number[] = [];
    // A read-ahead under way is reading these very records: wait for it rather than read twice.
    if (this.reading && !aheadOfTime) await this.reading;
    let i = 0;
    while (i < seqs.length) {
      // One read per run of consecutive seqs.
      let j = i;
      while (j + 1 < seqs.length && Math.abs(seqs[j + 1]! - seqs[j]!) === 1) j++;
      const count = j - i + 1;
      if (this.ahead.get(stream.name)?.take(seqs, i, j, out)) {
        i = j + 1;
        continue;
      }
      const got = await stream.read({
        fromSeq: seqs[i]!,
        untilSeq: seqs[j]!,
        direction: backward ? 'backward' : 'forward',
        maxMessages: count,
        maxBytes: Math.max(this.options.batchMaxBytes, MIN_READ_BYTES),
      });
      for (let k = 0; k < got.length; k++) out.push(got[k]!);
      // The log skips records it found damaged: those seqs, up to the last record returned
      // (or the whole run when none was), can never be read. Beyond it: the byte budget.
      // seqs[i..j] are consecutive, so the last record's place in the run is its distance from
      // seqs[i]; `got` is in run order, so one pass over both finds the gaps.
      const reach = got.length === 0 ? j : i + Math.abs(got.at(-1)!.seq - seqs[i]!);
      if (got.length < reach - i + 1) {
        let g = 0;
        for (let k = i; k <= reach; k++) {
          if (g < got.length && got[g]!.seq === seqs[k]) g++;
          else damaged.push(seqs[k]!);
        }
      }
      if (reach < j) break;
      i = j + 1;
    }
    return { messages: out, damaged };
  }
}

/**
 * One read-ahead: messages in the order they were read (ascending seqs, or descending for lifo),
 * each handed out at most once.
 */
export class ReadAheadBatch {
  private readonly taken: Uint8Array;

  constructor(
    private readonly messages: readonly StoredMessage[],
    private readonly backward: boolean,
  ) {
    this.taken = new Uint8Array(messages.length);
  }

  /**
   * Appends the messages of seqs[i..j] (a run of consecutive seqs in reading order) to `out` and
   * returns true if all of them are here and not yet taken; otherwise changes nothing.
   */
  take(seqs: readonly number[], i: number, j: number, out: StoredMessage[]): boolean {
    const first = this.indexOf(seqs[i]!);
    const count = j - i + 1;
    if (first < 0 || first + count > this.messages.length) return false;
    for (let k = 0; k < count; k++) {
      if (this.taken[first + k] === 1 || this.messages[first + k]!.seq !== seqs[i + k]) return false;
    }
    for (let k = 0; k < count; k++) {
      this.taken[first + k] = 1;
      out.push(this.messages[first + k]!);
    }
    return true;
  }

  /** Binary search: the messages are sorted by seq in reading order. */
  private indexOf(seq: number): number {
    let lo = 0;
    let hi = this.messages.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = this.messages[mid]!.seq;
      if (at === seq) return mid;
      if (this.backward ? at > seq : at < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}
