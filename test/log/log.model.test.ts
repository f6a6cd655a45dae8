/**
 * Model test: random command sequences run against the real log (on the in-memory, fault-
 * injecting file layer) and against a plain array. After every command the two must agree on
 * what is readable, in both directions, byte for byte. A crash tears the file system at a random
 * byte and restarts: every acknowledged record must survive, an unacknowledged append survives
 * whole or not at all, and nothing else appears.
 */
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StorageFullError, StorageIOError } from '../../src/errors.js';
import { Log, type LogOptions, type LogRecord } from '../../src/log/index.js';
import { MemFileSystem } from '../support/mem-fs.js';

interface ModelRecord {
  seq: number;
  payload: Buffer;
  meta: Buffer;
}

interface World {
  fs: MemFileSystem;
  log: Log;
  model: ModelRecord[];
  startSeq: number;
  nextSeq: number;
  random: () => number;
}

const DIR = '/data/stream';

function options(fs: MemFileSystem): LogOptions {
  return {
    fileSystem: fs,
    segmentBytes: 4096,
    blobThreshold: 300,
    writeTimeoutMs: 60_000,
    maxOpenSegments: 3,
  };
}

const payloadArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 120 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 301, maxLength: 2000 }) },
);
const batchArb = fc.array(fc.record({ payload: payloadArb, meta: fc.uint8Array({ maxLength: 20 }) }), {
  minLength: 1,
  maxLength: 4,
});

type Command =
  | { kind: 'append'; batches: { payload: Uint8Array; meta: Uint8Array }[][] }
  | { kind: 'read'; from: number; backward: boolean; maxRecords: number; maxBytes: number }
  | { kind: 'deleteBelow'; offset: number }
  | { kind: 'reopen' }
  | { kind: 'crash'; budget: number; batch: { payload: Uint8Array; meta: Uint8Array }[]; zero: boolean }
  | { kind: 'diskFull'; room: number; batch: { payload: Uint8Array; meta: Uint8Array }[] }
  | { kind: 'ioError'; op: 'write' | 'sync'; batch: { payload: Uint8Array; meta: Uint8Array }[] };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      batches: fc.array(batchArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      from: fc.integer({ min: -3, max: 200 }),
      backward: fc.boolean(),
      maxRecords: fc.integer({ min: 1, max: 50 }),
      maxBytes: fc.integer({ min: 1, max: 5000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('deleteBelow' as const),
      offset: fc.integer({ min: 0, max: 60 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('crash' as const),
      budget: fc.integer({ min: 0, max: 700 }),
      batch: batchArb,
      zero: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('diskFull' as const),
      room: fc.integer({ min: 0, max: 600 }),
      batch: batchArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('ioError' as const),
      op: fc.constantFrom('write' as const, 'sync' as const),
      batch: batchArb,
    }),
  },
);

async function payloadOf(log: Log, record: LogRecord): Promise<Buffer> {
  return record.payload ?? buffer(log.openPayload(record));
}

async function checkAgainstModel(w: World): Promise<void> {
  const stats = w.log.stats();
  const live = w.model.filter((r) => r.seq >= w.startSeq);
  expect(stats.lastSeq).toBe(w.nextSeq - 1);
  expect(stats.firstSeq).toBe(Math.max(w.startSeq, stats.firstSeq));
  const all = await w.log.read({ fromSeq: 0, maxRecords: 100_000, maxBytes: Number.MAX_SAFE_INTEGER });
  expect(all.map((r) => r.seq)).toEqual(live.map((r) => r.seq));
  for (const [i, r] of all.entries()) {
    expect(r.meta.equals(live[i]!.meta)).toBe(true);
    expect((await payloadOf(w.log, r)).equals(live[i]!.payload)).toBe(true);
  }
}

function appendToModel(w: World, firstSeq: number, batch: { payload: Uint8Array; meta: Uint8Array }[]): void {
  expect(firstSeq).toBe(w.nextSeq);
  batch.forEach((b, i) => {
    w.model.push({ seq: firstSeq + i, payload: Buffer.from(b.payload), meta: Buffer.from(b.meta) });
  });
  w.nextSeq = firstSeq + batch.length;
}

async function run(w: World, cmd: Command): Promise<void> {
  switch (cmd.kind) {
    case 'append': {
      const results = await Promise.all(cmd.batches.map((batch) => w.log.append(batch)));
      const order = results
        .map((r, i) => ({ r, batch: cmd.batches[i]! }))
        .sort((a, b) => a.r.firstSeq - b.r.firstSeq);
      // Concurrent appends of inline payloads commit in call order; staged (blob) ones once staged.
      const inline = cmd.batches.every((b) => b.every((x) => x.payload.byteLength <= 300));
      if (inline) expect(order.map((o) => o.batch)).toEqual(cmd.batches);
      for (const { r, batch } of order) appendToModel(w, r.firstSeq, batch);
      break;
    }
    case 'read': {
      const records = await w.log.read({
        fromSeq: cmd.from,
        direction: cmd.backward ? 'backward' : 'forward',
        maxRecords: cmd.maxRecords,
        maxBytes: cmd.maxBytes,
      });
      const live = w.model.filter((r) => r.seq >= w.startSeq);
      const ordered = cmd.backward
        ? live.filter((r) => r.seq <= cmd.from).reverse()
        : live.filter((r) => r.seq >= cmd.from);
      // With a bounded budget the log may stop early, but returns at least one and never skips.
      const expected = ordered.slice(0, cmd.maxRecords);
      expect(records.length).toBeGreaterThanOrEqual(Math.min(1, expected.length));
      expect(records.map((r) => r.seq)).toEqual(expected.slice(0, records.length).map((r) => r.seq));
      break;
    }
    case 'deleteBelow': {
      const target = w.startSeq + cmd.offset;
      await w.log.deleteBelow(target);
      w.startSeq = Math.max(w.startSeq, Math.min(target, w.nextSeq));
      break;
    }
    case 'reopen': {
      await w.log.close();
      w.log = await Log.open(DIR, options(w.fs));
      break;
    }
    case 'crash': {
      w.fs.crashAfterBytes(cmd.budget);
      let acked = false;
      let firstSeq = 0;
      try {
        firstSeq = (await w.log.append(cmd.batch)).firstSeq;
        acked = true;
      } catch {
        // Torn mid-write: not acknowledged.
      }
      w.fs.crash();
      w.fs = w.fs.recoverAfterCrash(w.random, cmd.zero);
      w.log = await Log.open(DIR, options(w.fs));
      const last = w.log.stats().lastSeq;
      if (acked) {
        appendToModel(w, firstSeq, cmd.batch);
        expect(last).toBe(w.nextSeq - 1);
      } else if (last >= w.nextSeq) {
        // The unacknowledged append survived: whole, never in part.
        expect(last).toBe(w.nextSeq + cmd.batch.length - 1);
        appendToModel(w, w.nextSeq, cmd.batch);
      } else {
        expect(last).toBe(w.nextSeq - 1);
      }
      break;
    }
    case 'diskFull': {
      w.fs.capacity = w.fs.usedBytes() + cmd.room;
      try {
        appendToModel(w, (await w.log.append(cmd.batch)).firstSeq, cmd.batch);
      } catch (err) {
        expect(err).toBeInstanceOf(StorageFullError);
        expect((err as StorageFullError).unstored).toHaveLength(cmd.batch.length);
      }
      await checkAgainstModel(w);
      w.fs.capacity = Number.POSITIVE_INFINITY;
      appendToModel(w, (await w.log.append(cmd.batch)).firstSeq, cmd.batch);
      break;
    }
    case 'ioError': {
      w.fs.failNext(cmd.op, 'EIO');
      await expect(w.log.append(cmd.batch)).rejects.toBeInstanceOf(StorageIOError);
      await checkAgainstModel(w);
      break;
    }
  }
  await checkAgainstModel(w);
}

describe('log model', () => {
  it('agrees with an in-memory model under appends, reads, deletes, reopens, crashes and disk faults', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commandArb, { minLength: 1, maxLength: 40 }),
        fc.integer(),
        async (commands, seed) => {
          let state = seed >>> 0;
          const random = () => {
            state = (state * 1664525 + 1013904223) >>> 0;
            return state / 2 ** 32;
          };
          const fs = new MemFileSystem();
          const w: World = {
            fs,
            log: await Log.open(DIR, options(fs)),
            model: [],
            startSeq: 1,
            nextSeq: 1,
            random,
          };
          for (const cmd of commands) await run(w, cmd);
          if (!w.fs.crashed) await w.log.close();
        },
      ),
      { numRuns: Number(process.env.WAYSTATION_MODEL_RUNS ?? 150) },
    );
  });
});
