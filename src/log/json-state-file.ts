/**
 * A small JSON state file of an adapter (the broker's retained messages, store-and-forward topics
 * and subscriber positions; the dashboard's route history and timeline), replaced atomically. `changed()` saves within `delayMs`, coalescing
 * bursts; `flush()` saves now if anything changed. A crash loses at most the last `delayMs`.
 * A failed save (a full disk) is reported and retried with backoff until one succeeds; it never
 * stops later saves.
 */
import { readAtomicJson, writeAtomicJson } from './atomic-file.js';
import { nodeFileSystem, type StorageFileSystem } from './file-system.js';

const MAX_RETRY_MS = 30_000;

export class StateFile<T> {
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private retryMs = 0;

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
    this.dirty = true;
    this.schedule(Math.max(this.delayMs, this.retryMs));
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // The failure is reported by flush() itself (and retried); nothing more to do here.
      this.flush().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  /** Saves now (a change that must be durable before the caller answers). */
  save(): Promise<void> {
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
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await writeAtomicJson(this.fs, this.path, this.snapshot());
        this.retryMs = 0;
      } catch (err) {
        this.dirty = true;
        this.retryMs = Math.min(MAX_RETRY_MS, Math.max(this.delayMs, this.retryMs * 2));
        this.onError(err);
        this.schedule(this.retryMs);
        throw err;
      }
    });
    this.saving = run.catch(() => {});
    return run;
  }

  /** Stops saving (the file is about to be deleted). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    this.retryMs = 0;
  }
}
