/**
 * A small JSON state file of an adapter (the broker's retained messages, store-and-forward topics
 * and subscriber positions; the dashboard's route history and timeline), replaced atomically. `changed()` saves within `delayMs`, coalescing
 * bursts; `flush()` saves now if anything changed. A crash loses at most the last `delayMs`.
 * A failed save (a full disk) is reported and retried with backoff (0.1 s doubling to 30 s) until
 * one succeeds; it never stops later saves.
 */
import { readAtomicJson, writeAtomicJson } from './atomic-file.js';
import { nodeFileSystem, type StorageFileSystem } from './file-system.js';

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 30_000;

export class StateFile<T> {
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private retryMs = 0;
  private cancelled = false;

  constructor(
    readonly path: string,
    private readonly snapshot: () => T,
    private readonly onError: (err: unknown) => void,
    private readonly delayMs = 100,
    private readonly fs: StorageFileSystem = nodeFileSystem,
  ) {}

  static read(path: string, fs: StorageFileSystem = nodeFileSystem): Promise<unknown> {
    return readAtomicJson(fs, path);
  }

  changed(): void {
    if (this.cancelled) return;
    this.dirty = true;
    this.schedule(Math.max(this.delayMs, this.retryMs));
  }

  private schedule(ms: number): void {
    if (this.timer || this.cancelled) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // The failure is reported by flush() itself (and retried); nothing more to do here.
      this.flush().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  /** Saves now (a change that must be durable before the caller answers). */
  save(): Promise<void> {
    if (this.cancelled) return Promise.resolve();
    this.dirty = true;
    return this.flush();
  }

  /** Saves now if anything changed since the last save. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Each save runs after the one before it, whether that one failed or not: a rejected link
    // must not reject every later flush.
    const run = this.saving.then(async () => {
      if (!this.dirty || this.cancelled) return;
      this.dirty = false;
      try {
        await writeAtomicJson(this.fs, this.path, this.snapshot());
        this.retryMs = 0;
      } catch (err) {
        if (this.cancelled) return;
        this.dirty = true;
        this.retryMs = Math.min(MAX_RETRY_MS, Math.max(this.delayMs, MIN_RETRY_MS, this.retryMs * 2));
        this.onError(err);
        this.schedule(this.retryMs);
        throw err;
      }
    });
    this.saving = run.catch(() => {});
    return run;
  }

  /**
   * Stops saving for good (the file is about to be deleted); resolves once a save already
   * running has finished, so that deleting the file then is final.
   */
  cancel(): Promise<void> {
    this.cancelled = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    return this.saving;
  }
}
