/**
 * The storage contract (src/store/backend.ts): what every backend the engine runs on must do,
 * written once and run by each implementation — the embedded log store now, the JetStream
 * cluster backend next (issue 10). Each test opens a fresh place, and reopens it where the
 * contract is about surviving a restart.
 */
import { describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/store/backend.js';
import type { DeadLetter } from '../../src/store/dead-letters.js';

export interface StoreLayout {
  streams: readonly string[];
  routes: readonly { name: string; streams: readonly string[] }[];
  dedupWindowMs?: number;
}

export interface StoreFactory {
  /** A new, empty place for a store (a directory, a stream prefix…). */
  place(): Promise<string>;
  /** Opens the store at `place`; opening the same place again is a restart. */
  open(place: string, layout: StoreLayout): Promise<MessageStore>;
  /** Payloads of at least this many bytes take the backend's large-payload path. */
  largePayloadBytes: number;
}

const layout: StoreLayout = {
  streams: ['orders', 'other'],
  routes: [
    { name: 'crm', streams: ['orders'] },
    { name: 'both', streams: ['orders', 'other'] },
  ],
};

const bytes = (text: string) => new TextEncoder().encode(text);

async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, i + size);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`storage contract: ${name}`, () => {
    const withStore = async (
      fn: (store: MessageStore, reopen: () => Promise<MessageStore>) => Promise<void>,
      l: StoreLayout = layout,
    ) => {
      const place = await factory.place();
      let store = await factory.open(place, l);
      const reopen = async () => {
        await store.close();
        store = await factory.open(place, l);
        return store;
      };
      try {
        await fn(store, reopen);
      } finally {
        await store.close();
      }
    };

    it('gives a stream dense ascending seqs from 1 and reads back every field in order', async () => {
      await withStore(async (store) => {
        const refs = await store.publish('orders', [
          { payload: bytes('a'), key: 'k1', headers: { 'content-type': 'text/plain' } },
          { payload: bytes('b'), expiresAt: 4_000_000_000_000 },
        ]);
        const more = await store.publish('orders', [{ payload: bytes('c') }]);
        expect([...refs, ...more].map((r) => [r.stream, r.seq])).toEqual([
          ['orders', 1],
          ['orders', 2],
          ['orders', 3],
        ]);
        expect(new Set([...refs, ...more].map((r) => r.id)).size).toBe(3);
        const s = store.stream('orders');
        expect([s.firstSeq, s.lastSeq]).toEqual([1, 3]);
        const read = await s.read({ fromSeq: 1 });
        expect(read.map((m) => [m.seq, m.id, m.payload?.toString(), m.key])).toEqual([
          [1, refs[0]!.id, 'a', 'k1'],
          [2, refs[1]!.id, 'b', undefined],
          [3, more[0]!.id, 'c', undefined],
        ]);
        expect(read[0]!.headers).toEqual({ 'content-type': 'text/plain' });
        expect(read[1]!.expiresAt).toBe(4_000_000_000_000);
        expect(read.every((m, i) => i === 0 || m.timestamp >= read[i - 1]!.timestamp)).toBe(true);
        expect((await s.read({ fromSeq: 2, maxMessages: 1 })).map((m) => m.seq)).toEqual([2]);
        expect((await s.read({ fromSeq: 3, direction: 'backward' })).map((m) => m.seq)).toEqual([3, 2, 1]);
        expect(s.stats()).toMatchObject({ firstSeq: 1, lastSeq: 3, records: 3 });
        expect(store.stream('other').lastSeq).toBe(0);
      });
    });

    it('keeps everything acknowledged across a restart, and locates messages by id', async () => {
      await withStore(async (_store, reopen) => {
        const refs = await _store.publish('orders', [{ payload: bytes('x') }, { payload: bytes('y') }]);
        const store = await reopen();
        expect((await store.stream('orders').read({ fromSeq: 1 })).map((m) => m.payload?.toString())).toEqual(
          ['x', 'y'],
        );
        const { stream, seq } = store.locate(refs[1]!.id);
        expect([stream.name, seq]).toEqual(['orders', 2]);
        expect((await store.readMessage('orders', 2))?.id).toBe(refs[1]!.id);
        expect(() => store.locate('not-an-id')).toThrow(
          expect.objectContaining({ code: 'WS_ERR_MESSAGE_UNKNOWN' }),
        );
        const next = await store.publish('orders', [{ payload: bytes('z') }]);
        expect(next[0]!.seq).toBe(3);
      });
    });

    it('stores a batch all or nothing: a payload that fails mid-stream stores none of it', async () => {
      await withStore(async (store) => {
        async function* failing(): AsyncGenerator<Uint8Array> {
          yield new Uint8Array(factory.largePayloadBytes);
          throw new Error('producer went away');
        }
        await expect(
          store.publish('orders', [{ payload: bytes('first') }, { payload: failing() }]),
        ).rejects.toThrow();
        expect(store.stream('orders').lastSeq).toBe(0);
        const ok = await store.publish('orders', [{ payload: bytes('after') }]);
        expect(ok[0]!.seq).toBe(1);
      });
    });

    it('streams a large payload in and out unchanged', async () => {
      await withStore(async (store) => {
        const data = new Uint8Array(factory.largePayloadBytes * 3 + 17).map((_, i) => (i * 7) % 251);
        await store.publish('orders', [{ payload: chunked(data, 65_536) }]);
        const [m] = await store.stream('orders').read({ fromSeq: 1 });
        expect(m!.payloadBytes).toBe(data.byteLength);
        expect((await readAll(store.stream('orders').openPayload(m!))).equals(Buffer.from(data))).toBe(true);
      });
    });

    it('refuses an unknown stream with WS_ERR_STREAM_UNKNOWN and stores nothing', async () => {
      await withStore(async (store) => {
        await expect(store.publish('nosuch', [{ payload: bytes('x') }])).rejects.toMatchObject({
          code: 'WS_ERR_STREAM_UNKNOWN',
        });
        expect(() => store.stream('nosuch')).toThrow(
          expect.objectContaining({ code: 'WS_ERR_STREAM_UNKNOWN' }),
        );
      });
    });

    it('answers a retried idempotent publish with the first ids, refuses a different one, also after a restart', async () => {
      await withStore(async (first, reopen) => {
        const req = [{ payload: bytes('a') }, { payload: bytes('b') }];
        const refs = await first.publish('orders', req, { idempotencyKey: 'k' });
        expect(await first.publish('orders', req, { idempotencyKey: 'k' })).toEqual(refs);
        await expect(
          first.publish('orders', [{ payload: bytes('c') }], { idempotencyKey: 'k' }),
        ).rejects.toMatchObject({
          code: 'WS_ERR_IDEMPOTENCY_KEY_REUSED',
        });
        // A key is per stream.
        expect((await first.publish('other', req, { idempotencyKey: 'k' }))[0]!.stream).toBe('other');
        const store = await reopen();
        expect(await store.publish('orders', req, { idempotencyKey: 'k' })).toEqual(refs);
        await expect(
          store.publish('orders', [{ payload: bytes('c') }], { idempotencyKey: 'k' }),
        ).rejects.toMatchObject({
          code: 'WS_ERR_IDEMPOTENCY_KEY_REUSED',
        });
        expect(store.stream('orders').lastSeq).toBe(2);
      });
    });

    it('stores concurrent publishes with one idempotency key once', async () => {
      await withStore(async (store) => {
        const req = [{ payload: bytes('a') }];
        const answers = await Promise.all([
          store.publish('orders', req, { idempotencyKey: 'same' }),
          store.publish('orders', req, { idempotencyKey: 'same' }),
          store.publish('orders', req, { idempotencyKey: 'same' }),
        ]);
        expect(answers[1]).toEqual(answers[0]);
        expect(answers[2]).toEqual(answers[0]);
        expect(store.stream('orders').lastSeq).toBe(1);
      });
    });

    it('publishes each message under its own key in order; a used key, also earlier in the call, stores nothing again', async () => {
      await withStore(async (store, reopen) => {
        const first = await store.publishEach('orders', [
          { payload: bytes('a'), idempotencyKey: 'x-1' },
          { payload: bytes('b'), idempotencyKey: 'x-2' },
          { payload: bytes('b'), idempotencyKey: 'x-2' },
        ]);
        expect(first.duplicate).toEqual([false, false, true]);
        expect(first.refs.map((r) => r.seq)).toEqual([1, 2, 2]);
        const again = await store.publishEach('orders', [
          { payload: bytes('a'), idempotencyKey: 'x-1' },
          { payload: bytes('c'), idempotencyKey: 'x-3' },
        ]);
        expect(again.duplicate).toEqual([true, false]);
        expect(again.refs.map((r) => r.id)).toEqual([first.refs[0]!.id, again.refs[1]!.id]);
        expect(again.refs[1]!.seq).toBe(3);
        // A key publishEach used answers an ordinary idempotent publish of the same message too.
        expect(await store.publish('orders', [{ payload: bytes('c') }], { idempotencyKey: 'x-3' })).toEqual([
          again.refs[1],
        ]);
        const messages = await store.stream('orders').read({ fromSeq: 1 });
        expect(messages.map((m) => Buffer.from(m.payload!).toString())).toEqual(['a', 'b', 'c']);
        const after = await reopen();
        const retried = await after.publishEach('orders', [{ payload: bytes('b'), idempotencyKey: 'x-2' }]);
        expect(retried).toEqual({ refs: [first.refs[1]], duplicate: [true] });
        await expect(
          after.publishEach('orders', [{ payload: bytes('other'), idempotencyKey: 'x-1' }]),
        ).rejects.toMatchObject({ code: 'WS_ERR_IDEMPOTENCY_KEY_REUSED' });
        expect(after.stream('orders').lastSeq).toBe(3);
      });
    });

    it('publishEach refuses a key doubled in one call for different messages, storing nothing', async () => {
      await withStore(async (store) => {
        await expect(
          store.publishEach('orders', [
            { payload: bytes('new'), idempotencyKey: 'n' },
            { payload: bytes('x'), idempotencyKey: 'd' },
            { payload: bytes('y'), idempotencyKey: 'd' },
          ]),
        ).rejects.toMatchObject({ code: 'WS_ERR_IDEMPOTENCY_KEY_REUSED' });
        expect(store.stream('orders').lastSeq).toBe(0);
      });
    });

    it('publishEach waits for a key another publish is still storing: if that one fails, the key is its own', async () => {
      await withStore(async (store) => {
        const refused = store.publish('orders', [{ payload: bytes('a') }], {
          idempotencyKey: 'k1',
          admit: async () => {
            await new Promise((r) => setTimeout(r, 50));
            throw new Error('refused');
          },
        });
        const each = store.publishEach('orders', [
          { payload: bytes('a'), idempotencyKey: 'k1' },
          { payload: bytes('b'), idempotencyKey: 'k2' },
        ]);
        await expect(refused).rejects.toThrow('refused');
        const answer = await each;
        expect(answer.duplicate).toEqual([false, false]);
        expect(answer.refs.map((r) => r.seq)).toEqual([1, 2]);
      });
    });

    it('asks admission before storing and stores nothing it refuses', async () => {
      await withStore(async (store) => {
        const seen: [string, number, number][] = [];
        let released = 0;
        await store.publish('orders', [{ payload: bytes('abc') }, { payload: bytes('de') }], {
          admit: (s, n, b) => {
            seen.push([s, n, b]);
            return () => released++;
          },
        });
        expect(seen).toEqual([['orders', 2, 5]]);
        expect(released).toBe(1);
        await expect(
          store.publish('orders', [{ payload: bytes('x') }], {
            admit: () => {
              throw new Error('full');
            },
          }),
        ).rejects.toThrow('full');
        expect(store.stream('orders').lastSeq).toBe(2);
      });
    });

    it('keeps saved route progress, route state and counters across a restart', async () => {
      await withStore(async (first, reopen) => {
        await first.publish(
          'orders',
          [1, 2, 3, 4].map((n) => ({ payload: bytes(`${n}`) })),
        );
        const p = first.routeProgress('crm');
        p.stream('orders').mark(1, 'delivered');
        p.stream('orders').markRange(2, 3, 'expired');
        p.route = { state: 'held', since: 1234, lastError: 'down', probeFailures: 2 };
        p.counters.forwarded = 1;
        p.counters.expired = 2;
        await p.save(new Map([['orders', [4]]]));
        const store = await reopen();
        const q = store.routeProgress('crm');
        expect([1, 2, 3, 4].map((s) => q.stream('orders').stateOf(s))).toEqual([
          'delivered',
          'expired',
          'expired',
          'pending',
        ]);
        expect(q.route).toMatchObject({ state: 'held', since: 1234, lastError: 'down' });
        expect(q.counters).toMatchObject({ forwarded: 1, expired: 2 });
        expect([...store.routeProgress('both').streams.keys()].sort()).toEqual(['orders', 'other']);
        expect(() => store.routeProgress('nosuch')).toThrow(
          expect.objectContaining({ code: 'WS_ERR_ROUTE_UNKNOWN' }),
        );
      });
    });

    it('keeps dead letters across a restart until they are removed', async () => {
      await withStore(async (first, reopen) => {
        const [ref] = await first.publish('orders', [{ payload: bytes('bad'), key: 'k' }]);
        const letter: DeadLetter = {
          id: ref!.id,
          stream: 'orders',
          seq: 1,
          key: 'k',
          reason: 'error',
          attempts: 3,
          lastError: 'HTTP 400',
          at: 1000,
        };
        await first.deadLetters('crm').add([letter]);
        const store = await reopen();
        const dead = store.deadLetters('crm');
        expect(dead.list()).toEqual([expect.objectContaining({ id: ref!.id, reason: 'error', attempts: 3 })]);
        expect(dead.has('orders', 1)).toBe(true);
        expect(dead.byId(ref!.id)?.seq).toBe(1);
        expect([...dead.keysOf('orders')]).toEqual(['k']);
        expect(dead.minSeq('orders')).toBe(1);
        expect(store.deadLetters('both').list()).toEqual([]);
        await dead.remove(dead.list());
        expect((await reopen()).deadLetters('crm').list()).toEqual([]);
      });
    });

    it('never collects a message a route still needs or a dead letter references', async () => {
      await withStore(async (store) => {
        const payloads = Array.from({ length: 50 }, (_, i) => ({ payload: new Uint8Array(2048).fill(i) }));
        for (let i = 0; i < 50; i += 10) await store.publish('orders', payloads.slice(i, i + 10));
        // crm has everything below 40 delivered; both has everything below 20 delivered and 25 dead.
        store.routeProgress('crm').stream('orders').markRange(1, 40, 'delivered');
        store.routeProgress('both').stream('orders').markRange(1, 20, 'delivered');
        store.routeProgress('both').stream('orders').mark(25, 'dead');
        await store.deadLetters('both').add([
          {
            id: store.stream('orders').idOf(25),
            stream: 'orders',
            seq: 25,
            key: undefined,
            reason: 'error',
            attempts: 1,
            lastError: 'HTTP 400',
            at: 1,
          },
        ]);
        await store.collectGarbage();
        const s = store.stream('orders');
        expect(s.firstSeq).toBeLessThanOrEqual(21);
        const kept = await s.read({ fromSeq: Math.max(s.firstSeq, 21) });
        expect(kept.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => 21 + i));
        expect(s.lastSeq).toBe(50);
      });
    });

    it('describes the stream in chunks that cover its seqs in order with their time bounds', async () => {
      await withStore(async (store) => {
        for (let i = 0; i < 20; i++) await store.publish('orders', [{ payload: new Uint8Array(1500) }]);
        const chunks = await store.stream('orders').chunks();
        expect(chunks.length).toBeGreaterThan(0);
        expect(chunks[0]!.baseSeq).toBeLessThanOrEqual(store.stream('orders').firstSeq);
        expect(chunks.at(-1)!.lastSeq).toBe(20);
        for (let i = 1; i < chunks.length; i++) {
          expect(chunks[i]!.baseSeq).toBe(chunks[i - 1]!.lastSeq + 1);
          expect(chunks[i]!.minTimestamp).toBeGreaterThanOrEqual(chunks[i - 1]!.maxTimestamp);
        }
        expect(await store.stream('orders').bytesFrom(1)).toBeGreaterThanOrEqual(20 * 1500);
        expect(await store.stream('orders').bytesFrom(11)).toBeLessThan(
          await store.stream('orders').bytesFrom(1),
        );
        expect(store.usedBytes()).toBeGreaterThanOrEqual(20 * 1500);
      });
    });

    it('adds and removes streams outside the configuration; a stream a route reads cannot be removed', async () => {
      await withStore(async (store) => {
        const s = await store.addStream('extra');
        expect(s.name).toBe('extra');
        await store.publish('extra', [{ payload: bytes('e') }]);
        expect(
          store
            .streams()
            .map((x) => x.name)
            .sort(),
        ).toEqual(['extra', 'orders', 'other']);
        await store.removeStream('extra');
        expect(
          store
            .streams()
            .map((x) => x.name)
            .sort(),
        ).toEqual(['orders', 'other']);
        await expect(store.removeStream('orders')).rejects.toMatchObject({ code: 'WS_ERR_STREAM_IN_USE' });
      });
    });

    it('refuses publishes once intake stopped', async () => {
      await withStore(async (store) => {
        store.stopIntake();
        await expect(store.publish('orders', [{ payload: bytes('late') }])).rejects.toMatchObject({
          code: 'WS_ERR_SHUTTING_DOWN',
        });
      });
    });
  });
}
