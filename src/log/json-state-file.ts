/**
 * A small JSON state file of an adapter (the broker's retained messages, store-and-forward topics
 * and subscriber positions; the dashboard's route history and timeline), replaced atomically. `changed()` saves within `delayMs`, coalescing
 * bursts; `flush()` saves now if anything changed. A crash loses at most the last `delayMs`.
 */
import { readAtomicJson, writeAtomicJson } from './atomic-file.js';
import { nodeFileSystem, type StorageFileSystem } from './file-system.js';

export class StateFile<T> {
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

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
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(this.onError);
    }, this.delayMs);
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
    this.saving = this.saving.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await writeAtomicJson(this.fs, this.path, this.snapshot());
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    return this.saving;
  }

  /** Stops saving (the file is about to be deleted). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
  }
}
