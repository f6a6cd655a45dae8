/**
 * Small persistent state (cursors, route state, log metadata) replaced atomically: write a
 * temporary file, fsync it, rename it over the old one, fsync the directory. A reader sees the
 * old or the new content, never a mix; a failed write removes its temporary file. Each file carries a checksum, so damage is reported as a
 * `CorruptStateError` naming the file instead of being parsed as garbage.
 *
 * Layout (little-endian), DO NOT REORDER: magic "WSA1" (u32), format version (u32, 1),
 * content length (u32), crc32 of the content (u32), content bytes.
 */
import { basename, dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { CorruptStateError } from '../errors.js';
import type { StorageFileSystem } from './file-system.js';

const MAGIC = 0x31415357;
const VERSION = 1;
const HEADER_BYTES = 16;

export async function writeAtomicFile(
  fs: StorageFileSystem,
  path: string,
  content: Uint8Array,
): Promise<void> {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(VERSION, 4);
  header.writeUInt32LE(content.byteLength, 8);
  header.writeUInt32LE(crc32(content) >>> 0, 12);
  const tmp = `${path}.tmp`;
  try {
    const file = await fs.open(tmp, 'create');
    try {
      await file.write([header, content], 0);
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    // The old content stays; a half-written temporary file must not (ENOSPC at shutdown).
    await fs.remove(tmp).catch(() => {});
    throw err;
  }
  await fs.syncDir(dirname(path));
}

/** The content, or undefined if the file does not exist. Throws CorruptStateError if damaged. */
export async function readAtomicFile(fs: StorageFileSystem, path: string): Promise<Buffer | undefined> {
  const size = await fs.sizeOf(path);
  if (size === undefined) return undefined;
  const file = await fs.open(path, 'read');
  const buf = Buffer.alloc(size);
  try {
    await file.read(buf, 0, size, 0);
  } finally {
    await file.close();
  }
  const damaged = (why: string) =>
    new CorruptStateError(
      `State file ${path} is damaged (${why}). Restore it from a backup, or remove ${basename(path)} to reset that state.`,
    );
  if (size < HEADER_BYTES || buf.readUInt32LE(0) !== MAGIC) throw damaged('not a Waystation state file');
  if (buf.readUInt32LE(4) !== VERSION) throw damaged(`unknown format version ${buf.readUInt32LE(4)}`);
  const length = buf.readUInt32LE(8);
  if (HEADER_BYTES + length !== size) throw damaged('length mismatch');
  const content = buf.subarray(HEADER_BYTES);
  if (buf.readUInt32LE(12) !== crc32(content) >>> 0) throw damaged('checksum mismatch');
  return content;
}

export async function writeAtomicJson(fs: StorageFileSystem, path: string, value: unknown): Promise<void> {
  await writeAtomicFile(fs, path, Buffer.from(JSON.stringify(value)));
}

export async function readAtomicJson(fs: StorageFileSystem, path: string): Promise<unknown> {
  const content = await readAtomicFile(fs, path);
  return content === undefined ? undefined : JSON.parse(content.toString('utf8'));
}
