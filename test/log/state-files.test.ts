import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CorruptStateError } from '../../src/errors.js';
import { nodeFileSystem, readAtomicJson, StateFile, writeAtomicJson } from '../../src/log/index.js';
import { SlotFile } from '../../src/log/slot-file.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { tempDir } from '../support/tmp.js';

describe('atomic state files', () => {
  it('round-trips JSON and reports undefined for a missing file', async () => {
    const dir = await tempDir();
    const path = join(dir, 'cursor.state');
    expect(await readAtomicJson(nodeFileSystem, path)).toBeUndefined();
    await writeAtomicJson(nodeFileSystem, path, { seq: 41 });
    await writeAtomicJson(nodeFileSystem, path, { seq: 42 });
    expect(await readAtomicJson(nodeFileSystem, path)).toEqual({ seq: 42 });
  });

  it('names the damaged file instead of parsing garbage', async () => {
    const dir = await tempDir();
    const path = join(dir, 'route.state');
    await writeAtomicJson(nodeFileSystem, path, { state: 'held' });
    const bytes = await readFile(path);
    bytes[bytes.byteLength - 2] = bytes[bytes.byteLength - 2]! ^ 1;
    await writeFile(path, bytes);
    const err = await readAtomicJson(nodeFileSystem, path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptStateError);
    expect((err as Error).message).toContain(path);
  });

  it('keeps the old content when the process dies before the rename', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/s');
    await writeAtomicJson(fs, '/s/a.state', { v: 1 });
    fs.failNext('rename', 'EIO');
    await expect(writeAtomicJson(fs, '/s/a.state', { v: 2 })).rejects.toThrow();
    fs.crash();
    const after = fs.recoverAfterCrash(() => 0.5);
    expect(await readAtomicJson(after, '/s/a.state')).toEqual({ v: 1 });
  });
});

describe('slot file', () => {
  it('keeps the last value across reopen and survives a torn write of the next one', async () => {
    for (let budget = 0; budget <= 32; budget += 4) {
      const fs = new MemFileSystem();
      await fs.mkdir('/s');
      const { file } = await SlotFile.open(fs, '/s/log.start', 1);
      await file.write(10);
      await file.write(20);
      fs.crashAfterBytes(budget);
      await file.write(30).catch(() => {});
      fs.crash();
      const after = fs.recoverAfterCrash(() => 0.99);
      const { value } = await SlotFile.open(after, '/s/log.start', 1);
      // Either the new value made it whole, or the previous one is still there.
      expect([20, 30]).toContain(value);
      // The last 4 bytes of a slot are zero padding: a write torn after the checksum is complete.
      if (budget < 28) expect(value).toBe(20);
    }
  });

  it('rewrites in place on a full disk', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/s');
    const { file } = await SlotFile.open(fs, '/s/log.start', 1);
    fs.capacity = fs.usedBytes();
    await file.write(99);
    expect((await SlotFile.open(fs, '/s/log.start', 1)).value).toBe(99);
  });
});

describe('StateFile', () => {
  it('keeps saving after a failed save and retries the failed one', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/s');
    let value = 1;
    const errors: unknown[] = [];
    const file = new StateFile(
      '/s/a.json',
      () => ({ value }),
      (err) => errors.push(err),
      5,
      fs,
    );
    await file.save();
    fs.failNext('rename', 'ENOSPC');
    value = 2;
    await expect(file.save()).rejects.toThrow(/ENOSPC/);
    expect(errors).toHaveLength(1);
    expect(await readAtomicJson(fs, '/s/a.json')).toEqual({ value: 1 });
    // The retry runs by itself, without another change.
    await vi.waitFor(async () => expect(await readAtomicJson(fs, '/s/a.json')).toEqual({ value: 2 }));
    value = 3;
    await file.save();
    expect(await readAtomicJson(fs, '/s/a.json')).toEqual({ value: 3 });
    expect(errors).toHaveLength(1);
  });

  it('a failing timer-driven save does not reject later flushes', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/s');
    let value = 1;
    const errors: unknown[] = [];
    const file = new StateFile(
      '/s/b.json',
      () => ({ value }),
      (err) => errors.push(err),
      1,
      fs,
    );
    fs.failNext('rename', 'EIO');
    file.changed();
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    value = 7;
    file.changed();
    await file.flush();
    expect(await readAtomicJson(fs, '/s/b.json')).toEqual({ value: 7 });
    file.cancel();
  });
});

describe('StateFile retries', () => {
  it('backs off even when it saves without delay, and a cancelled file is not written back', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/s');
    const errors: unknown[] = [];
    const file = new StateFile(
      '/s/c.json',
      () => ({ v: 1 }),
      (err) => errors.push(err),
      0,
      fs,
    );
    fs.capacity = fs.usedBytes();
    await expect(file.save()).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 250));
    // 0.1 s, then 0.2 s: two retries at most in a quarter of a second, not one a millisecond.
    expect(errors.length).toBeLessThanOrEqual(3);
    await file.cancel();
    fs.capacity = Number.POSITIVE_INFINITY;
    await new Promise((r) => setTimeout(r, 500));
    expect(await fs.sizeOf('/s/c.json')).toBeUndefined();
    file.changed();
    await file.save();
    expect(await fs.sizeOf('/s/c.json')).toBeUndefined();
  });
});
