/**
 * Damage done to real segment and index files between runs: the log must open, report and
 * count what it lost, return only intact records (never garbage), and keep accepting appends.
 */
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CorruptionReport, Log, type LogOptions } from '../../src/log/index.js';
import { payloadFor } from '../support/payload.js';
import { tempDir } from '../support/tmp.js';

const OPTIONS: LogOptions = { segmentBytes: 4096, blobThreshold: 100_000 };

async function fill(dir: string, count: number): Promise<void> {
  const log = await Log.open(dir, OPTIONS);
  for (let i = 1; i <= count; i++) {
    await log.append([{ payload: payloadFor(`r${i}`, 50 + ((i * 37) % 200)), meta: Buffer.from(`r${i}`) }]);
  }
  await log.close();
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.seg')).sort();
}

async function openWithReports(dir: string): Promise<{ log: Log; reports: CorruptionReport[] }> {
  const reports: CorruptionReport[] = [];
  const log = await Log.open(dir, { ...OPTIONS, onCorruption: (r) => reports.push(r) });
  return { log, reports };
}

/** Every record returned is intact: its bytes are exactly what was written for its seq. */
async function readAllIntact(log: Log): Promise<number[]> {
  const records = await log.read({ fromSeq: 1, maxRecords: 100_000, maxBytes: Number.MAX_SAFE_INTEGER });
  for (const r of records) {
    expect(r.meta.toString()).toBe(`r${r.seq}`);
    expect(r.payload?.equals(payloadFor(`r${r.seq}`, r.payload.byteLength))).toBe(true);
  }
  return records.map((r) => r.seq);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('recovery from damaged files', () => {
  it('truncates a torn tail after the last complete record', async () => {
    const dir = await tempDir();
    await fill(dir, 40);
    const active = join(dir, (await segmentFiles(dir)).at(-1)!);
    const size = (await readFile(active)).byteLength;
    await truncate(active, size - 7);
    const { log, reports } = await openWithReports(dir);
    expect(log.stats().lastSeq).toBe(39);
    expect(log.stats().truncatedBytes).toBeGreaterThan(0);
    expect(reports).toEqual([]);
    expect(await readAllIntact(log)).toEqual(range(1, 39));
    expect((await log.append([{ payload: payloadFor('r40', 10), meta: Buffer.from('r40') }])).firstSeq).toBe(
      40,
    );
    await log.close();
  });

  it('skips and reports a record whose checksum fails in a sealed segment, keeping the rest', async () => {
    const dir = await tempDir();
    await fill(dir, 60);
    const first = join(dir, (await segmentFiles(dir))[0]!);
    const bytes = await readFile(first);
    bytes[200] = bytes[200]! ^ 0x40;
    await writeFile(first, bytes);
    const { log, reports } = await openWithReports(dir);
    const seqs = await readAllIntact(log);
    expect(reports).toHaveLength(1);
    const lost = reports[0]!.seqs;
    expect(lost).toHaveLength(1);
    expect(seqs).toEqual(range(1, 60).filter((s) => s !== lost[0]));
    expect(log.stats().corruptRecords).toBe(1);
    // Reported once, not on every read.
    await readAllIntact(log);
    expect(reports).toHaveLength(1);
    await log.close();
  });

  it('finds the next intact record after a damaged length field in the active segment', async () => {
    const dir = await tempDir();
    await fill(dir, 60);
    const activeName = (await segmentFiles(dir)).at(-1)!;
    const active = join(dir, activeName);
    await rm(active.replace(/\.seg$/, '.idx'));
    const bytes = await readFile(active);
    // The length field of the second frame in the segment.
    const secondFrame = 12 + bytes.readUInt32LE(4);
    bytes.writeUInt32LE(0xfffffff0, secondFrame + 4);
    await writeFile(active, bytes);
    const { log, reports } = await openWithReports(dir);
    const base = Number(activeName.slice(0, 20));
    expect(reports.flatMap((r) => r.seqs)).toEqual([base + 1]);
    expect(await readAllIntact(log)).toEqual(range(1, 60).filter((s) => s !== base + 1));
    expect((await log.append([{ payload: payloadFor('r61', 10), meta: Buffer.from('r61') }])).firstSeq).toBe(
      61,
    );
    await log.close();
  });

  it('rebuilds a missing or damaged index from its segment', async () => {
    const dir = await tempDir();
    await fill(dir, 60);
    const idx = (await readdir(dir)).filter((f) => f.endsWith('.idx')).sort();
    expect(idx.length).toBeGreaterThan(2);
    await rm(join(dir, idx[0]!));
    const damaged = await readFile(join(dir, idx[1]!));
    damaged[damaged.byteLength - 1] = damaged[damaged.byteLength - 1]! ^ 1;
    await writeFile(join(dir, idx[1]!), damaged);
    const { log, reports } = await openWithReports(dir);
    expect(await readAllIntact(log)).toEqual(range(1, 60));
    expect(reports).toEqual([]);
    await log.close();
    expect((await readdir(dir)).filter((f) => f.endsWith('.idx')).sort()).toEqual(idx);
  });

  it('survives bit flips and truncations at random offsets of random segment files', async () => {
    const pristine = await tempDir();
    await fill(pristine, 80);
    const names = await segmentFiles(pristine);
    const originals = new Map<string, Buffer>();
    for (const n of names) originals.set(n, await readFile(join(pristine, n)));
    const damageArb = fc.record({
      file: fc.integer({ min: 0, max: names.length - 1 }),
      offset: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
      truncate: fc.boolean(),
      dropIndexes: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(damageArb, { minLength: 1, maxLength: 3 }), async (damages) => {
        const dir = await tempDir();
        for (const n of await readdir(pristine)) {
          if (n === 'blobs') continue;
          await writeFile(join(dir, n), await readFile(join(pristine, n)));
        }
        const touched = new Set<string>();
        for (const d of damages) {
          const name = names[d.file]!;
          const path = join(dir, name);
          const bytes = await readFile(path);
          if (bytes.byteLength === 0) continue;
          const at = d.offset % bytes.byteLength;
          touched.add(name);
          if (d.truncate) await truncate(path, at);
          else {
            bytes[at] = bytes[at]! ^ (1 << d.bit);
            await writeFile(path, bytes);
          }
          if (d.dropIndexes) await rm(path.replace(/\.seg$/, '.idx'), { force: true });
        }
        const { log } = await openWithReports(dir);
        const seqs = await readAllIntact(log);
        // Records of untouched segments are all there.
        for (const [i, n] of names.entries()) {
          if (touched.has(n) || i === names.length - 1) continue;
          const base = Number(n.slice(0, 20));
          const next = Number(names[i + 1]!.slice(0, 20));
          for (let s = base; s < next; s++) expect(seqs).toContain(s);
        }
        const { firstSeq } = await log.append([{ payload: payloadFor('new', 5), meta: Buffer.from('new') }]);
        expect(firstSeq).toBe(log.stats().lastSeq);
        await log.close();
        const again = await Log.open(dir, OPTIONS);
        expect(again.stats().lastSeq).toBe(firstSeq);
        await again.close();
        expect(originals.size).toBe(names.length);
      }),
      { numRuns: 60 },
    );
  });
});
