/**
 * An in-memory StorageFileSystem that remembers, per file, which bytes were fsynced, so a test
 * can "pull the plug": `crash()` freezes the old instance, and `recoverAfterCrash()` returns the
 * file system a restarted process would see — synced bytes kept, and of the bytes written after
 * the last fsync a random prefix (optionally zeroed, as ext4 can leave them). Faults: a disk
 * capacity (ENOSPC with a short write), one-shot errors per operation, a stall that resolves
 * only when released, and a crash after a budget of written bytes (the write is torn there).
 */
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import type { OpenMode, StorageFile, StorageFileSystem } from '../../src/log/file-system.js';

interface MemFile {
  data: Buffer;
  synced: number;
}

export type FaultOp = 'open' | 'write' | 'sync' | 'truncate' | 'rename' | 'syncDir' | 'read';

export class CrashedError extends Error {
  readonly code = 'ECRASHED';
}

export function errnoError(code: string, op: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: injected fault during ${op}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

export class MemFileSystem implements StorageFileSystem {
  readonly files = new Map<string, MemFile>();
  readonly dirs = new Set<string>(['/']);
  /** Total bytes the disk holds; writes past it fail with ENOSPC after a short write. */
  capacity = Number.POSITIVE_INFINITY;
  private crashBudget = Number.POSITIVE_INFINITY;
  crashed = false;
  private readonly oneShot = new Map<FaultOp, string>();
  private stallGate: { op: FaultOp; release: Promise<void>; open: () => void } | undefined;

  /** The next `op` fails with an errno `code` (e.g. EIO). */
  failNext(op: FaultOp, code: string): void {
    this.oneShot.set(op, code);
  }

  /** Every `op` from now on waits until the returned function is called. */
  stall(op: FaultOp): () => void {
    let open!: () => void;
    const release = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.stallGate = { op, release, open };
    return () => {
      this.stallGate = undefined;
      open();
    };
  }

  /** The process dies once this many more bytes were written: that write is torn. */
  crashAfterBytes(bytes: number): void {
    this.crashBudget = bytes;
  }

  crash(): void {
    this.crashed = true;
  }

  usedBytes(): number {
    let used = 0;
    for (const f of this.files.values()) used += f.data.byteLength;
    return used;
  }

  /** What a restarted process sees after the crash. `random` in [0, 1). */
  recoverAfterCrash(random: () => number, zeroTornBytes = false): MemFileSystem {
    const next = new MemFileSystem();
    for (const d of this.dirs) next.dirs.add(d);
    for (const [path, file] of this.files) {
      const volatile = file.data.byteLength - file.synced;
      const kept = file.synced + Math.floor(random() * (volatile + 1));
      const data = Buffer.from(file.data.subarray(0, kept));
      if (zeroTornBytes && kept > file.synced && random() < 0.3) data.fill(0, file.synced);
      next.files.set(path, { data, synced: data.byteLength });
    }
    return next;
  }

  private async check(op: FaultOp): Promise<void> {
    if (this.crashed) throw new CrashedError('process crashed');
    if (this.stallGate && this.stallGate.op === op) await this.stallGate.release;
    const code = this.oneShot.get(op);
    if (code !== undefined) {
      this.oneShot.delete(op);
      throw errnoError(code, op);
    }
  }

  private fileAt(path: string): MemFile {
    const f = this.files.get(path);
    if (!f) throw errnoError('ENOENT', `open ${path}`);
    return f;
  }

  async open(path: string, mode: OpenMode): Promise<StorageFile> {
    await this.check('open');
    if (!this.dirs.has(dirname(path))) throw errnoError('ENOENT', `open ${path}`);
    if (mode === 'create') this.files.set(path, { data: Buffer.alloc(0), synced: 0 });
    const file = this.fileAt(path);
    return new MemHandle(this, file);
  }

  /** @internal used by MemHandle */
  async writeTo(file: MemFile, buffers: readonly Uint8Array[], position: number): Promise<void> {
    await this.check('write');
    const bytes = Buffer.concat(buffers);
    let allowed = bytes.byteLength;
    let fault: Error | undefined;
    const growth = Math.max(0, position + bytes.byteLength - file.data.byteLength);
    const room = this.capacity - this.usedBytes();
    if (growth > room) {
      allowed = Math.max(0, file.data.byteLength - position) + Math.max(0, room);
      fault = errnoError('ENOSPC', 'write');
    }
    if (allowed > this.crashBudget) {
      allowed = this.crashBudget;
      fault = new CrashedError('process crashed mid-write');
      this.crashed = true;
    }
    this.crashBudget -= allowed;
    const end = position + allowed;
    if (end > file.data.byteLength) {
      const grown = Buffer.alloc(end);
      file.data.copy(grown);
      file.data = grown;
    }
    bytes.copy(file.data, position, 0, allowed);
    if (fault) throw fault;
  }

  async syncFile(file: MemFile): Promise<void> {
    await this.check('sync');
    file.synced = file.data.byteLength;
  }

  async truncateFile(file: MemFile, length: number): Promise<void> {
    await this.check('truncate');
    file.data = Buffer.from(file.data.subarray(0, length));
    file.synced = Math.min(file.synced, length);
  }

  async readFrom(file: MemFile, buffer: Uint8Array, offset: number, length: number, position: number) {
    await this.check('read');
    const n = Math.max(0, Math.min(length, file.data.byteLength - position));
    file.data.copy(buffer, offset, position, position + n);
    return n;
  }

  async list(dir: string): Promise<string[]> {
    if (this.crashed) throw new CrashedError('process crashed');
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const names = new Set<string>();
    for (const p of [...this.files.keys(), ...this.dirs]) {
      if (p.startsWith(prefix) && p.length > prefix.length) names.add(p.slice(prefix.length).split('/')[0]!);
    }
    return [...names];
  }

  async mkdir(dir: string): Promise<void> {
    if (this.crashed) throw new CrashedError('process crashed');
    let d = dir;
    while (d !== '/' && d !== '.') {
      this.dirs.add(d);
      d = dirname(d);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.check('rename');
    this.files.set(to, this.fileAt(from));
    this.files.delete(from);
  }

  async remove(path: string): Promise<void> {
    if (this.crashed) throw new CrashedError('process crashed');
    this.files.delete(path);
  }

  async removeTree(dir: string): Promise<void> {
    if (this.crashed) throw new CrashedError('process crashed');
    const prefix = `${dir}/`;
    for (const p of [...this.files.keys()]) if (p.startsWith(prefix)) this.files.delete(p);
    for (const d of [...this.dirs]) if (d === dir || d.startsWith(prefix)) this.dirs.delete(d);
  }

  async syncDir(): Promise<void> {
    await this.check('syncDir');
  }

  async sizeOf(path: string): Promise<number | undefined> {
    if (this.crashed) throw new CrashedError('process crashed');
    return this.files.get(path)?.data.byteLength;
  }

  readStream(path: string, start = 0): Readable {
    const file = this.files.get(path);
    if (!file) {
      return new Readable({
        read() {
          this.destroy(errnoError('ENOENT', `read ${path}`));
        },
      });
    }
    const data = Buffer.from(file.data.subarray(start));
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.byteLength; i += 4096) chunks.push(data.subarray(i, i + 4096));
    return Readable.from(chunks, { objectMode: false });
  }
}

class MemHandle implements StorageFile {
  private closed = false;
  constructor(
    private readonly fs: MemFileSystem,
    private readonly file: MemFile,
  ) {}

  private live(): void {
    if (this.closed) throw errnoError('EBADF', 'use of a closed file');
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.live();
    return this.fs.readFrom(this.file, buffer, offset, length, position);
  }

  async write(buffers: readonly Uint8Array[], position: number): Promise<void> {
    this.live();
    await this.fs.writeTo(this.file, buffers, position);
  }

  async sync(): Promise<void> {
    this.live();
    await this.fs.syncFile(this.file);
  }

  async truncate(length: number): Promise<void> {
    this.live();
    await this.fs.truncateFile(this.file, length);
  }

  async size(): Promise<number> {
    this.live();
    return this.file.data.byteLength;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
