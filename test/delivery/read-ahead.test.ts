import { describe, expect, it } from 'vitest';
import { BacklogReader, ReadAheadBatch } from '../../src/delivery/read-ahead.js';
import type { MessageStream } from '../../src/store/backend.js';
import type { StoredMessage } from '../../src/store/message.js';
import type { ReadMessagesOptions } from '../../src/store/stream.js';

const msg = (seq: number, payloadBytes = 10): StoredMessage => ({
  id: `x-${seq}`,
  stream: 's',
  seq,
  timestamp: 0,
  headers: {},
  payload: Buffer.alloc(0),
  payloadBytes,
  blob: undefined,
});

/** Seqs 1..n in memory; `damaged` seqs are skipped like the log skips bad records; reads are recorded. */
function memStream(n: number, opts: { damaged?: number[]; bytes?: number } = {}) {
  const reads: ReadMessagesOptions[] = [];
  let gate: Promise<void> | undefined;
  let fail: Error | undefined;
  const stream: MessageStream = {
    name: 's',
    firstSeq: 1,
    lastSeq: n,
    idOf: (seq) => `x-${seq}`,
    async read(o) {
      reads.push(o);
      if (gate) await gate;
      if (fail) throw fail;
      const out: StoredMessage[] = [];
      const step = o.direction === 'backward' ? -1 : 1;
      let bytes = 0;
      for (let s = o.fromSeq; step > 0 ? s <= (o.untilSeq ?? n) : s >= (o.untilSeq ?? 1); s += step) {
        if (s < 1 || s > n || opts.damaged?.includes(s)) continue;
        const m = msg(s, opts.bytes);
        if (out.length > 0 && o.maxBytes !== undefined && bytes + m.payloadBytes > o.maxBytes) break;
        out.push(m);
        bytes += m.payloadBytes;
        if (out.length >= (o.maxMessages ?? Number.POSITIVE_INFINITY)) break;
      }
      return out;
    },
    openPayload: () => {
      throw new Error('not here');
    },
    chunks: async () => [],
    bytesFrom: async () => 0,
    stats: () => ({ firstSeq: 1, lastSeq: n, records: n, bytes: 0 }),
  };
  let open: () => void = () => {};
  return {
    stream,
    reads,
    hold: () => {
      gate = new Promise((r) => (open = r));
    },
    release: () => {
      gate = undefined;
      open();
    },
    failWith: (err: Error | undefined) => (fail = err),
  };
}

const seqsOf = (ms: readonly StoredMessage[]) => ms.map((m) => m.seq);
const forward = { backward: false, batchMaxBytes: 1024 * 1024 };

describe('backlog reader', () => {
  it('reads each run of consecutive seqs with one read', async () => {
    const { stream, reads } = memStream(20);
    const r = new BacklogReader(forward);
    const got = await r.read(stream, [2, 3, 4, 7, 8, 12]);
    expect(seqsOf(got.messages)).toEqual([2, 3, 4, 7, 8, 12]);
    expect(got.damaged).toEqual([]);
    expect(reads.map((o) => [o.fromSeq, o.untilSeq, o.maxMessages])).toEqual([
      [2, 4, 3],
      [7, 8, 2],
      [12, 12, 1],
    ]);
  });

  it('reports the seqs the log skipped as damaged, also a run of which nothing could be read', async () => {
    const { stream } = memStream(20, { damaged: [3, 4, 9] });
    const got = await new BacklogReader(forward).read(stream, [2, 3, 4, 5, 9, 11]);
    expect(seqsOf(got.messages)).toEqual([2, 5, 11]);
    expect(got.damaged).toEqual([3, 4, 9]);
  });

  it('stops at the byte budget without calling the unread seqs damaged', async () => {
    // 64 KiB at least per read: 40 KiB messages, so one read takes one message.
    const { stream } = memStream(10, { bytes: 40 * 1024 });
    const got = await new BacklogReader({ backward: false, batchMaxBytes: 1 }).read(stream, [1, 2, 3]);
    expect(seqsOf(got.messages)).toEqual([1]);
    expect(got.damaged).toEqual([]);
  });

  it('reads backward for lifo', async () => {
    const { stream, reads } = memStream(10, { damaged: [8] });
    const got = await new BacklogReader({ ...forward, backward: true }).read(stream, [10, 9, 8, 7, 5]);
    expect(seqsOf(got.messages)).toEqual([10, 9, 7, 5]);
    expect(got.damaged).toEqual([8]);
    expect(reads.map((o) => [o.fromSeq, o.untilSeq, o.direction])).toEqual([
      [10, 7, 'backward'],
      [5, 5, 'backward'],
    ]);
  });

  it('hands out what was read ahead without reading again, each message once', async () => {
    const { stream, reads } = memStream(20);
    const r = new BacklogReader(forward);
    r.readAhead(
      ['s'],
      () => ({ stream, seqs: [5, 6, 7, 8] }),
      (err) => expect.fail(String(err)),
    );
    await r.busy;
    expect(r.busy).toBeUndefined();
    expect(reads).toHaveLength(1);
    expect(seqsOf((await r.read(stream, [5, 6])).messages)).toEqual([5, 6]);
    expect(seqsOf((await r.read(stream, [7, 8])).messages)).toEqual([7, 8]);
    expect(reads).toHaveLength(1);
    // Taken already: read from the log.
    expect(seqsOf((await r.read(stream, [5, 6])).messages)).toEqual([5, 6]);
    expect(reads).toHaveLength(2);
    // Only part of the run is there: the whole run is read from the log.
    expect(seqsOf((await r.read(stream, [8, 9])).messages)).toEqual([8, 9]);
    expect(reads).toHaveLength(3);
  });

  it('a read while a read-ahead is under way waits for it instead of reading the same records', async () => {
    const { stream, reads, hold, release } = memStream(20);
    const r = new BacklogReader(forward);
    hold();
    r.readAhead(
      ['s'],
      () => ({ stream, seqs: [1, 2, 3] }),
      (err) => expect.fail(String(err)),
    );
    const pick = r.read(stream, [1, 2, 3]);
    // A second read-ahead while one is under way is not started.
    r.readAhead(
      ['s'],
      () => expect.fail('planned twice'),
      () => {},
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).toHaveLength(1);
    release();
    expect(seqsOf((await pick).messages)).toEqual([1, 2, 3]);
    expect(reads).toHaveLength(1);
  });

  it('skips streams with nothing to read ahead, and reports a failed read-ahead', async () => {
    const { stream, failWith } = memStream(5);
    const r = new BacklogReader(forward);
    const errors: unknown[] = [];
    r.readAhead(
      ['a', 'b'],
      (name) => ({ stream, seqs: name === 'a' ? [] : [1] }),
      (err) => errors.push(err),
    );
    await r.busy;
    expect(errors).toEqual([]);
    failWith(new Error('disk gone'));
    r.readAhead(
      ['s'],
      () => ({ stream, seqs: [2] }),
      (err) => errors.push(err),
    );
    await r.busy;
    expect(errors).toMatchObject([{ message: 'disk gone' }]);
    expect(r.busy).toBeUndefined();
  });
});

describe('read-ahead batch', () => {
  it('takes a run only if all of it is there and untaken, otherwise changes nothing', () => {
    const batch = new ReadAheadBatch([msg(3), msg(4), msg(6)], false);
    const out: StoredMessage[] = [];
    expect(batch.take([4, 5, 6], 0, 1, out)).toBe(false);
    expect(batch.take([2, 3], 0, 1, out)).toBe(false);
    expect(out).toEqual([]);
    expect(batch.take([3, 4], 0, 1, out)).toBe(true);
    expect(batch.take([6], 0, 0, out)).toBe(true);
    expect(batch.take([4], 0, 0, out)).toBe(false);
    expect(seqsOf(out)).toEqual([3, 4, 6]);
  });

  it('finds seqs in descending order for lifo', () => {
    const batch = new ReadAheadBatch([msg(9), msg(8), msg(7), msg(5)], true);
    const out: StoredMessage[] = [];
    expect(batch.take([8, 7], 0, 1, out)).toBe(true);
    expect(batch.take([5], 0, 0, out)).toBe(true);
    expect(batch.take([9], 0, 0, out)).toBe(true);
    expect(seqsOf(out)).toEqual([8, 7, 5, 9]);
  });
});
