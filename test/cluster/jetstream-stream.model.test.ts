/**
 * A model of one Waystation stream shared by several nodes (src/cluster/jetstream-stream.ts) over
 * an in-memory JetStream stream that does what the real one promises: a duplicate window by
 * Nats-Msg-Id checked before the expected last sequence, which is enforced; dense JetStream seqs;
 * prefix purges. Nodes publish batches of 1–4 messages, sometimes concurrently, some PubAcks are
 * lost after the write committed, nodes refresh, read forward and backward, and purge. Checked:
 * every answered publish got the ids it was stored under, seqs are dense from 1 and never given
 * twice, nothing is stored twice, a node's lastSeq never falls behind what it stored itself (a
 * refresh racing the node's own publish once moved it back; this test finds that), and every node
 * reads back exactly what was stored. The fake's calls yield a random number of turns, so
 * publishes, refreshes and reads of one node interleave.
 */

import { JetStreamApiError } from '@nats-io/jetstream';
import { errors as natsErrors } from '@nats-io/transport-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JetStreamMessageStream, type JetStreamStreamContext } from '../../src/cluster/jetstream-stream.js';

interface Stored {
  seq: number;
  subject: string;
  headers: Map<string, string>;
  data: Uint8Array;
  time: Date;
}

class FakeJetStream {
  messages = new Map<number, Stored>();
  first = 1;
  last = 0;
  private readonly ids = new Map<string, number>();
  metadata: Record<string, string> | undefined;
  /** Publishes whose write commits but whose answer is lost. */
  loseNext = 0;

  info() {
    let bytes = 0;
    for (const m of this.messages.values()) bytes += m.data.byteLength;
    return {
      config: { metadata: this.metadata },
      state: { first_seq: this.first, last_seq: this.last, messages: this.messages.size, bytes },
    };
  }

  publish(
    subject: string,
    data: Uint8Array,
    opts: { msgID: string; headers: { get(k: string): string }; expect: { lastSequence: number } },
  ) {
    const dup = this.ids.get(opts.msgID);
    if (dup !== undefined) return { stream: 'S', seq: dup, duplicate: true };
    if (opts.expect.lastSequence !== this.last)
      throw new JetStreamApiError({ code: 400, err_code: 10071, description: 'wrong last sequence' });
    const seq = ++this.last;
    const headers = new Map<string, string>();
    for (const k of ['Ws-Seq', 'Ws-Count', 'Ws-Idem-Key', 'Ws-Fingerprint'])
      headers.set(k, opts.headers.get(k));
    this.messages.set(seq, { seq, subject, headers, data: Uint8Array.from(data), time: new Date() });
    this.ids.set(opts.msgID, seq);
    if (this.loseNext > 0) {
      this.loseNext--;
      throw new natsErrors.TimeoutError();
    }
    return { stream: 'S', seq, duplicate: false };
  }

  purge(below: number) {
    for (let s = this.first; s < below; s++) this.messages.delete(s);
    this.first = Math.max(this.first, below);
  }

  get(seq: number) {
    const m = this.messages.get(seq);
    if (!m) return null;
    return {
      seq,
      subject: m.subject,
      header: { get: (k: string) => m.headers.get(k) ?? '' },
      data: m.data,
      time: m.time,
    };
  }
}

/** Yields a few turns of the event loop, as many as the next of `delays` says (interleavings). */
function yielder(delays: readonly number[]) {
  let i = 0;
  return async () => {
    const n = delays.length === 0 ? 0 : delays[i++ % delays.length]!;
    for (let k = 0; k < n; k++) await Promise.resolve();
  };
}

function context(fake: FakeJetStream, pause: () => Promise<void>): JetStreamStreamContext {
  const jsm = {
    streams: {
      info: async () => {
        await pause();
        if (!fake.metadata)
          throw new JetStreamApiError({ code: 404, err_code: 10059, description: 'stream not found' });
        return fake.info();
      },
      add: async (cfg: { metadata: Record<string, string> }) => {
        fake.metadata ??= cfg.metadata;
        return fake.info();
      },
      getMessage: async (_: string, q: { seq: number }) => {
        await pause();
        return fake.get(q.seq);
      },
      purge: async (_: string, q: { seq: number }) => fake.purge(q.seq),
      delete: async () => true,
    },
  };
  const js = {
    publish: async (subject: string, data: Uint8Array, opts: Parameters<FakeJetStream['publish']>[2]) => {
      await pause();
      const ack = fake.publish(subject, data, opts);
      await pause();
      return ack;
    },
  };
  return {
    jsm: jsm as never,
    js: js as never,
    prefix: 'm',
    replicas: 1,
    dedupWindowMs: 60_000,
    publishTimeoutMs: 60_000,
    ackTimeoutMs: 1_000,
    retryDelayMs: 0,
  };
}

type Command =
  | { kind: 'publish'; node: number; sizes: number[]; lose: boolean; refreshing: boolean }
  | { kind: 'refresh'; node: number }
  | { kind: 'read'; node: number; from: number; backward: boolean; max: number }
  | { kind: 'purge'; node: number; below: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('publish' as const),
      node: fc.nat(2),
      // Several sizes: that many publishes from the node at once.
      sizes: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
      lose: fc.boolean(),
      // A refresh of the same node running meanwhile.
      refreshing: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refresh' as const), node: fc.nat(2) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      node: fc.nat(2),
      from: fc.nat(60),
      backward: fc.boolean(),
      max: fc.integer({ min: 1, max: 20 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('purge' as const), node: fc.nat(2), below: fc.nat(60) }),
  },
);

describe('one stream shared by several nodes, over a model JetStream', () => {
  it('numbers densely, stores each publish once, answers with the stored ids and reads back what was stored', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { maxLength: 40 }),
        fc.array(fc.nat(12)),
        async (commands, delays) => {
          const fake = new FakeJetStream();
          const ctx = context(fake, yielder(delays));
          const nodes = [
            await JetStreamMessageStream.open(ctx, 'orders'),
            await JetStreamMessageStream.open(ctx, 'orders'),
            await JetStreamMessageStream.open(ctx, 'orders'),
          ];
          /** What the model says each seq holds. */
          const model = new Map<number, string>();
          let published = 0;
          let purgedBelow = 1;
          const mine = [0, 0, 0];
          for (const c of commands) {
            const node = nodes[c.node]!;
            if (c.kind === 'publish') {
              if (c.lose) fake.loseNext++;
              await Promise.all([
                c.refreshing ? node.refresh() : undefined,
                ...c.sizes.map(async (size) => {
                  const texts = Array.from({ length: size }, () => `m${published++}`);
                  const refs = await node.append(
                    texts.map((t) => ({ meta: { headers: {} }, payload: Buffer.from(t) })),
                    undefined,
                  );
                  expect(refs.map((r) => r.seq)).toEqual(refs.map((_, i) => refs[0]!.seq + i));
                  mine[c.node] = Math.max(mine[c.node]!, refs.at(-1)!.seq);
                  refs.forEach((r, i) => {
                    expect(model.has(r.seq), `seq ${r.seq} given twice`).toBe(false);
                    model.set(r.seq, texts[i]!);
                  });
                }),
              ]);
              // A node's lastSeq covers at least what it stored itself.
              expect(node.lastSeq).toBeGreaterThanOrEqual(mine[c.node]!);
            } else if (c.kind === 'refresh') {
              await node.refresh();
            } else if (c.kind === 'purge') {
              await node.purgeBelow(c.below);
              purgedBelow = node.firstSeq;
            } else {
              const got = await node.read({
                fromSeq: c.from,
                direction: c.backward ? 'backward' : 'forward',
                maxMessages: c.max,
              });
              // A node that has not refreshed since another purged may still answer from its
              // cache: a seq's content never changes, so that is still the right message.
              for (const m of got) expect(m.payload?.toString()).toBe(model.get(m.seq));
              if (node.firstSeq >= purgedBelow)
                for (const m of got) expect(m.seq).toBeGreaterThanOrEqual(node.firstSeq);
              const seqs = got.map((m) => m.seq);
              expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + (c.backward ? -i : i)));
              expect(seqs.length).toBeLessThanOrEqual(c.max);
            }
          }
          // Dense from 1, each publish stored once, every node reads the same.
          expect([...model.keys()].sort((a, b) => a - b)).toEqual(
            Array.from({ length: model.size }, (_, i) => i + 1),
          );
          let stored = 0;
          for (let s = 1; s <= fake.last; s++)
            stored += Number(fake.messages.get(s)?.headers.get('Ws-Count') ?? 0);
          for (const node of nodes) {
            await node.refresh();
            expect(node.lastSeq).toBe(model.size);
            const all = await node.read({ fromSeq: 1, maxMessages: 10_000 });
            expect(all.map((m) => m.seq)).toEqual(
              Array.from({ length: model.size - node.firstSeq + 1 }, (_, i) => node.firstSeq + i),
            );
            for (const m of all) expect(m.payload?.toString()).toBe(model.get(m.seq));
          }
          expect(stored).toBe(model.size - (nodes[0]!.firstSeq - 1));
        },
      ),
      { numRuns: 500 },
    );
  });
});
