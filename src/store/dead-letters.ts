/**
 * Dead letters of one route: messages a target refused for good (`error`) or that ran out of
 * retries with store-and-forward off. Each entry references the message in its stream (the
 * bytes stay in the log while the entry exists) with the reason, attempts, last error and time.
 * Persisted as a journal (`dead-letters.journal`); compacted when mostly removals.
 */

import { dirname, join } from 'node:path';
import type { StorageFileSystem } from '../log/index.js';
import type { DeadLetterStore } from './backend.js';
import { Journal, type JournalDamage } from './journal.js';

export const DeadLetterReasons = ['error', 'retries-exhausted', 'damaged'] as const;
export type DeadLetterReason = (typeof DeadLetterReasons)[number];

export interface DeadLetter {
  id: string;
  stream: string;
  seq: number;
  /** The message's ordering key: in `key` ordering a dead letter blocks its key until resolved. */
  key: string | undefined;
  reason: DeadLetterReason;
  attempts: number;
  lastError: string;
  /** ms since the epoch when the message was dead-lettered (its last failure). */
  at: number;
  /**
   * ms since the epoch of its first failed attempt since the route started (`at` when it was
   * dead-lettered at once). Absent in letters written before it was recorded.
   */
  firstFailedAt?: number;
  /** The payload's size in bytes; absent in letters written before it was recorded, and for damaged records. */
  bytes?: number;
}

type Entry = { op: 'add'; letter: DeadLetter } | { op: 'remove'; stream: string; seq: number };

/**
 * A route's dead letters in memory, indexed by stream and seq: the read side both backends share
 * (the embedded journal below, the JetStream KV bucket in src/cluster). Subclasses keep it in step
 * with what they persist.
 */
export abstract class DeadLetterIndex {
  protected readonly letters = new Map<string, DeadLetter>();

  protected static keyOf(stream: string, seq: number): string {
    return `${stream}\u0000${seq}`;
  }

  has(stream: string, seq: number): boolean {
    return this.letters.has(DeadLetterIndex.keyOf(stream, seq));
  }

  get(stream: string, seq: number): DeadLetter | undefined {
    return this.letters.get(DeadLetterIndex.keyOf(stream, seq));
  }

  byId(id: string): DeadLetter | undefined {
    for (const l of this.letters.values()) if (l.id === id) return l;
    return undefined;
  }

  /** Oldest first (by stream, then seq). */
  list(): DeadLetter[] {
    return [...this.letters.values()].sort((a, b) =>
      a.stream === b.stream ? a.seq - b.seq : a.stream < b.stream ? -1 : 1,
    );
  }

  /** Ordering keys of a stream's dead letters (each blocks its key in `key` ordering). */
  keysOf(stream: string): Set<string> {
    const keys = new Set<string>();
    for (const l of this.letters.values()) if (l.stream === stream && l.key !== undefined) keys.add(l.key);
    return keys;
  }

  /** Lowest dead-lettered seq of a stream: the log must keep it. */
  minSeq(stream: string): number | undefined {
    let min: number | undefined;
    for (const l of this.letters.values())
      if (l.stream === stream && (min === undefined || l.seq < min)) min = l.seq;
    return min;
  }
}

export class DeadLetters extends DeadLetterIndex implements DeadLetterStore {
  private removals = 0;

  private constructor(private readonly journal: Journal<Entry>) {
    super();
  }

  static async open(
    fs: StorageFileSystem,
    routeDir: string,
    onDamage?: (damage: JournalDamage) => void,
  ): Promise<DeadLetters> {
    const { journal, entries } = await Journal.open<Entry>(
      fs,
      join(routeDir, 'dead-letters.journal'),
      onDamage,
    );
    const dl = new DeadLetters(journal);
    for (const e of entries) dl.apply(e);
    return dl;
  }

  private apply(entry: Entry): void {
    if (entry.op === 'add')
      this.letters.set(DeadLetterIndex.keyOf(entry.letter.stream, entry.letter.seq), entry.letter);
    else if (this.letters.delete(DeadLetterIndex.keyOf(entry.stream, entry.seq))) this.removals++;
  }

  get size(): number {
    return this.letters.size;
  }

  async add(letters: readonly DeadLetter[]): Promise<void> {
    const entries: Entry[] = letters.map((letter) => ({ op: 'add', letter }));
    await this.journal.append(entries);
    for (const e of entries) this.apply(e);
  }

  async remove(letters: readonly DeadLetter[]): Promise<void> {
    const entries: Entry[] = letters.map((l) => ({ op: 'remove', stream: l.stream, seq: l.seq }));
    await this.journal.append(entries);
    for (const e of entries) this.apply(e);
    if (this.removals > 1000 && this.removals > this.letters.size) {
      await this.journal.rewrite(
        this.list().map((letter) => ({ op: 'add', letter })),
        dirname(this.journal.path),
      );
      this.removals = 0;
    }
  }

  close(): Promise<void> {
    return this.journal.close();
  }
}
