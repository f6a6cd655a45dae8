import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { Log } from '../../src/log/index.js';
import { tempDir } from '../support/tmp.js';

const enc = (s: string) => Buffer.from(s);

describe('Log', () => {
  it('assigns sequence numbers from 1 and reads them back in both directions', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    const r1 = await log.append([{ payload: enc('a'), meta: enc('m1') }]);
    const r2 = await log.append([{ payload: enc('b') }, { payload: enc('c') }]);
    expect(r1).toEqual({ firstSeq: 1, lastSeq: 1 });
    expect(r2).toEqual({ firstSeq: 2, lastSeq: 3 });
    const fwd = await log.read({ fromSeq: 1 });
    expect(fwd.map((r) => r.payload?.toString())).toEqual(['a', 'b', 'c']);
    expect(fwd[0]?.meta.toString()).toBe('m1');
    const back = await log.read({ fromSeq: 3, direction: 'backward' });
    expect(back.map((r) => r.seq)).toEqual([3, 2, 1]);
    const bounded = await log.read({ fromSeq: 2, maxRecords: 1 });
    expect(bounded.map((r) => r.seq)).toEqual([2]);
    await log.close();
  });

  it('shares fsyncs between concurrent appends and keeps them all after reopen', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 8192 });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append([{ payload: enc(`p${i}`.padEnd(100, '.')) }])),
    );
    const seqs = results.map((r) => r.firstSeq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    await log.close();
    const files = (await readdir(dir)).filter((f) => f.endsWith('.seg'));
    expect(files.length).toBeGreaterThan(2);
    const again = await Log.open(dir, { segmentBytes: 8192 });
    expect(again.stats()).toMatchObject({ firstSeq: 1, lastSeq: 200, records: 200 });
    const all = await again.read({ fromSeq: 1, maxRecords: 1000 });
    expect(all).toHaveLength(200);
    const back = await again.read({ fromSeq: 200, direction: 'backward', maxRecords: 1000 });
    expect(back.map((r) => r.seq)).toEqual(all.map((r) => r.seq).reverse());
    await again.close();
  });

  it('stores large payloads in side files and streams them back', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { blobThreshold: 1024 });
    const big = randomBytes(100_000);
    async function* chunks() {
      for (let i = 0; i < big.length; i += 7000) yield big.subarray(i, i + 7000);
    }
    const { firstSeq } = await log.append([
      { payload: chunks() },
      { payload: enc('small') },
      { payload: big },
    ]);
    const records = await log.read({ fromSeq: firstSeq });
    expect(records[0]?.payload).toBeUndefined();
    expect(records[0]?.payloadBytes).toBe(big.length);
    expect(await buffer(log.openPayload(records[0]!))).toEqual(big);
    expect(records[1]?.payload?.toString()).toBe('small');
    expect(await buffer(log.openPayload(records[2]!))).toEqual(big);
    expect((await readdir(join(dir, 'blobs'))).sort()).toEqual([
      '00000000000000000001.blob',
      '00000000000000000003.blob',
    ]);
    await log.close();
  });

  it('deletes whole segments and side files below a sequence number, and remembers it', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, { segmentBytes: 4096, blobThreshold: 512 });
    for (let i = 0; i < 100; i++) await log.append([{ payload: Buffer.alloc(i % 10 === 0 ? 600 : 100, i) }]);
    const before = log.stats();
    const freed = await log.deleteBelow(60);
    expect(freed.records).toBe(59);
    expect(freed.bytes).toBeGreaterThan(0);
    const after = log.stats();
    expect(after.firstSeq).toBe(60);
    expect(after.bytes).toBeLessThan(before.bytes);
    expect((await log.read({ fromSeq: 1 }))[0]?.seq).toBe(60);
    const blobs = await readdir(join(dir, 'blobs'));
    expect(blobs.every((b) => Number(b.slice(0, 20)) >= 60)).toBe(true);
    await log.close();
    const again = await Log.open(dir, { segmentBytes: 4096, blobThreshold: 512 });
    expect(again.stats()).toMatchObject({ firstSeq: 60, lastSeq: 100 });
    const { firstSeq } = await again.append([{ payload: enc('next') }]);
    expect(firstSeq).toBe(101);
    await again.close();
  });

  it('keeps numbering after everything was deleted', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir);
    await log.append([{ payload: enc('a') }, { payload: enc('b') }]);
    await log.deleteBelow(1000);
    expect(log.stats()).toMatchObject({ firstSeq: 3, lastSeq: 2, records: 0 });
    await log.close();
    const again = await Log.open(dir);
    expect((await again.append([{ payload: enc('c') }])).firstSeq).toBe(3);
    expect((await again.read({ fromSeq: 1 })).map((r) => r.seq)).toEqual([3]);
    await again.close();
  });
});
