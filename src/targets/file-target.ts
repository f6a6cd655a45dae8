/**
 * Appends each message as an NDJSON line (ndjson.ts) to a file, fsyncs, and only then acks.
 * When the file would pass `maxBytes` it is renamed to `<path>.<ms timestamp>` and a new one is
 * started. Write failures (disk full, permissions) are nacks: the messages stay stored.
 */

import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Delivery, Outcome, Target } from '../delivery/target.js';
import { ack, nack } from '../delivery/target.js';
import { ndjsonBatch } from './ndjson.js';

export interface FileTargetOptions {
  path: string;
  /** Rotate before the file passes this size. Default 64 MiB. */
  maxBytes?: number;
}

export class FileTarget implements Target {
  readonly type = 'file';
  private handle: FileHandle | undefined;
  private size = 0;
  private readonly maxBytes: number;

  constructor(private readonly options: FileTargetOptions) {
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  private async file(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    await mkdir(dirname(this.options.path), { recursive: true });
    this.handle = await open(this.options.path, 'a');
    this.size = (await stat(this.options.path)).size;
    return this.handle;
  }

  async deliver(batch: readonly Delivery[]): Promise<readonly Outcome[]> {
    try {
      const bytes = await ndjsonBatch(batch);
      if (this.size > 0 && this.size + bytes.byteLength > this.maxBytes) await this.rotate();
      const file = await this.file();
      await file.write(bytes);
      await file.datasync();
      this.size += bytes.byteLength;
      return batch.map(() => ack);
    } catch (err) {
      await this.handle?.close().catch(() => {});
      this.handle = undefined;
      const reason = `writing ${this.options.path} failed: ${(err as Error).message}`;
      return batch.map(() => nack(reason));
    }
  }

  private async rotate(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await rename(this.options.path, `${this.options.path}.${Date.now()}`);
  }

  async stop(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}
