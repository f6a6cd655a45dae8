/**
 * The file layer the log writes through. It is a parameter of the log (never imported
 * directly by it) so tests can shrink the world: an in-memory layer that simulates torn
 * writes at a crash, ENOSPC, EIO and stalls (see test/support/mem-fs.ts).
 *
 * Only what the log needs: positioned reads and writes, fdatasync, truncate, and the few
 * directory operations of an append-only store (rename for atomic replace, fsync of a directory
 * so a created or renamed entry survives a power loss).
 */
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface StorageFile {
  /** Reads up to `length` bytes at `position`; returns how many were read (0 at end of file). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes all of `buffers` contiguously at `position` (short writes are continued). */
  write(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /** fdatasync: the written bytes survive a power loss once this resolves. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export type OpenMode =
  /** read only; the file must exist */
  | 'read'
  /** read and write; the file must exist */
  | 'readwrite'
  /** read and write; created if missing, truncated if present */
  | 'create';

export interface StorageFileSystem {
  open(path: string, mode: OpenMode): Promise<StorageFile>;
  /** Entry names in a directory, or [] if it does not exist. */
  list(dir: string): Promise<string[]>;
  /** Creates the directory and its parents; no error if it exists. */
  mkdir(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; no error if it is already gone. */
  remove(path: string): Promise<void>;
  /** Removes a directory and everything in it; no error if it is already gone. */
  removeTree(dir: string): Promise<void>;
  /** Makes entries created, renamed or removed in `dir` durable. */
  syncDir(dir: string): Promise<void>;
  /** Size in bytes, or undefined if the file does not exist. */
  sizeOf(path: string): Promise<number | undefined>;
  /** Streams a file from `start`, reading a chunk at a time (never the whole file). */
  readStream(path: string, start?: number): Readable;
}

class NodeStorageFile implements StorageFile {
  constructor(private readonly handle: fsp.FileHandle) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    let total = 0;
    while (total < length) {
      const { bytesRead } = await this.handle.read(buffer, offset + total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  async write(buffers: readonly Uint8Array[], position: number): Promise<void> {
    let pending = buffers.filter((b) => b.byteLength > 0);
    let at = position;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending as Uint8Array[], at);
      at += bytesWritten;
      pending = skipBytes(pending, bytesWritten);
    }
  }

  sync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Drops the first `count` bytes from a list of buffers (what a short writev already wrote). */
export function skipBytes(buffers: readonly Uint8Array[], count: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = count;
  for (const b of buffers) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    rest.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return rest;
}

/** Bytes per read when a side file is streamed back. */
const BLOB_READ_CHUNK_BYTES = 64 * 1024;

const flagsFor: Record<OpenMode, string> = { read: 'r', readwrite: 'r+', create: 'w+' };

export const nodeFileSystem: StorageFileSystem = {
  async open(path, mode) {
    return new NodeStorageFile(await fsp.open(path, flagsFor[mode]));
  },
  async list(dir) {
    try {
      return await fsp.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  },
  async mkdir(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  rename(from, to) {
    return fsp.rename(from, to);
  },
  async remove(path) {
    await fsp.rm(path, { force: true });
  },
  async removeTree(dir) {
    await fsp.rm(dir, { recursive: true, force: true });
  },
  async syncDir(dir) {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async sizeOf(path) {
    try {
      return (await fsp.stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  },
  readStream(path, start = 0) {
    // 64 KiB reads, the size a socket delivers: each read is a fresh buffer, garbage once consumed.
    // On Node 24 (V8 13) 256 KiB reads let ~65 MB of them pile up before a GC reclaims them; at
    // 64 KiB the young collections keep up (docs/benchmarks.md, "Node 20, 22 and 24").
    return createReadStream(path, { start, highWaterMark: BLOB_READ_CHUNK_BYTES });
  },
};
