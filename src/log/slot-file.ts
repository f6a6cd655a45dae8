/**
 * A tiny state record that can be rewritten on a full disk: the file holds two fixed-size slots
 * and each write overwrites the older one in place (no new blocks are allocated), then fsyncs.
 * A reader takes the valid slot with the higher generation, so a write torn by a crash leaves
 * the previous value readable. Used for the log's start sequence, which retention must be able to
 * move forward precisely when the disk is full.
 *
 * Slot layout (little-endian, 32 bytes), DO NOT REORDER: magic "WSS1" (u32), format version
 * (u32, 1), generation (f64), value (f64), crc32 of bytes 0..23 (u32), zero (u32).
 */
import { crc32 } from 'node:zlib';
import type { StorageFileSystem } from './file-system.js';

const MAGIC = 0x31535357;
const VERSION = 1;
const SLOT_BYTES = 32;

export class SlotFile {
  private generation = 0;

  private constructor(
    private readonly fs: StorageFileSystem,
    readonly path: string,
  ) {}

  /** Opens (creating if missing, with `initial`) and returns the file and its current value. */
  static async open(
    fs: StorageFileSystem,
    path: string,
    initial: number,
  ): Promise<{ file: SlotFile; value: number }> {
    const slots = new SlotFile(fs, path);
    const size = await fs.sizeOf(path);
    if (size === undefined) {
      await slots.create(initial);
      return { file: slots, value: initial };
    }
    const buf = Buffer.alloc(SLOT_BYTES * 2);
    const handle = await fs.open(path, 'read');
    try {
      await handle.read(buf, 0, buf.byteLength, 0);
    } finally {
      await handle.close();
    }
    let best: { generation: number; value: number } | undefined;
    for (let i = 0; i < 2; i++) {
      const slot = decodeSlot(buf.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES));
      if (slot && (!best || slot.generation > best.generation)) best = slot;
    }
    if (!best) {
      // Both slots damaged: only possible if the file was torn while being created.
      await slots.create(initial);
      return { file: slots, value: initial };
    }
    slots.generation = best.generation;
    return { file: slots, value: best.value };
  }

  private async create(value: number): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const handle = await this.fs.open(tmp, 'create');
    try {
      await handle.write([encodeSlot(0, value), encodeSlot(1, value)], 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.fs.rename(tmp, this.path);
    this.generation = 1;
  }

  /** Durably replaces the value, overwriting the older slot in place. */
  async write(value: number): Promise<void> {
    const generation = this.generation + 1;
    const handle = await this.fs.open(this.path, 'readwrite');
    try {
      await handle.write([encodeSlot(generation, value)], (generation % 2) * SLOT_BYTES);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.generation = generation;
  }
}

function encodeSlot(generation: number, value: number): Buffer {
  const buf = Buffer.alloc(SLOT_BYTES);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(VERSION, 4);
  buf.writeDoubleLE(generation, 8);
  buf.writeDoubleLE(value, 16);
  buf.writeUInt32LE(crc32(buf.subarray(0, 24)) >>> 0, 24);
  return buf;
}

function decodeSlot(buf: Buffer): { generation: number; value: number } | undefined {
  if (buf.byteLength < SLOT_BYTES || buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== VERSION)
    return undefined;
  if (buf.readUInt32LE(24) !== crc32(buf.subarray(0, 24)) >>> 0) return undefined;
  return { generation: buf.readDoubleLE(8), value: buf.readDoubleLE(16) };
}
