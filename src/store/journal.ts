/**
 * An append-only journal of JSON entries, one per line, each prefixed by the CRC32 of its JSON
 * (8 hex digits and a space). Appends are fsynced before they resolve. Opening replays the
 * entries; a torn last line (a crash mid-append) is truncated away, a damaged line elsewhere is
 * skipped and reported. `rewrite` compacts by atomically replacing the file.
 */
import { crc32 } from 'node:zlib';
import type { StorageFile, StorageFileSystem } from '../log/index.js';

export interface JournalDamage {
  path: string;
  line: number;
  reason: string;
}

export class Journal<E> {
  private constructor(
    private readonly fs: StorageFileSystem,
    readonly path: string,
    private file: StorageFile,
    private size: number,
  ) {}

  static async open<E>(
    fs: StorageFileSystem,
    path: string,
    onDamage: (damage: JournalDamage) => void = () => {},
  ): Promise<{ journal: Journal<E>; entries: E[] }> {
    const existing = await fs.sizeOf(path);
    if (existing === undefined) {
      const created = await fs.open(path, 'create');
      await created.sync();
      return { journal: new Journal<E>(fs, path, created, 0), entries: [] };
    }
    const file = await fs.open(path, 'readwrite');
    const buf = Buffer.alloc(existing);
    await file.read(buf, 0, existing, 0);
    const entries: E[] = [];
    let pos = 0;
    let line = 0;
    while (pos < buf.byteLength) {
      const end = buf.indexOf(0x0a, pos);
      line++;
      if (end < 0) break; // torn tail: no newline yet
      const text = buf.subarray(pos, end).toString('utf8');
      pos = end + 1;
      const entry = parseLine<E>(text);
      if (entry === undefined) onDamage({ path, line, reason: 'checksum or JSON mismatch' });
      else entries.push(entry);
    }
    if (pos < buf.byteLength) await file.truncate(pos);
    return { journal: new Journal<E>(fs, path, file, pos), entries };
  }

  async append(entries: readonly E[]): Promise<void> {
    if (entries.length === 0) return;
    const bytes = Buffer.from(entries.map(formatLine).join(''));
    await this.file.write([bytes], this.size);
    await this.file.sync();
    this.size += bytes.byteLength;
  }

  /** Replaces the whole journal with `entries` (write temp, fsync, rename, fsync dir). */
  async rewrite(entries: readonly E[], dir: string): Promise<void> {
    const bytes = Buffer.from(entries.map(formatLine).join(''));
    const tmp = `${this.path}.tmp`;
    const file = await this.fs.open(tmp, 'create');
    await file.write([bytes], 0);
    await file.sync();
    await this.file.close();
    await this.fs.rename(tmp, this.path);
    await this.fs.syncDir(dir);
    this.file = file;
    this.size = bytes.byteLength;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

function formatLine(entry: unknown): string {
  const json = JSON.stringify(entry);
  return `${(crc32(json) >>> 0).toString(16).padStart(8, '0')} ${json}\n`;
}

function parseLine<E>(text: string): E | undefined {
  if (text.length < 10 || text[8] !== ' ') return undefined;
  const json = text.slice(9);
  if (Number.parseInt(text.slice(0, 8), 16) !== crc32(json) >>> 0) return undefined;
  try {
    return JSON.parse(json) as E;
  } catch {
    return undefined;
  }
}
