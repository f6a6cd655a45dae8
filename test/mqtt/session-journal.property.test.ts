import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { QoS } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import type { BrokerMessage } from '../../src/ingest/mqtt/message.js';
import {
  type SavedSession,
  type SavedSubscription,
  SessionJournal,
} from '../../src/ingest/mqtt/session-journal.js';
import { Log } from '../../src/log/index.js';
import { tempDir } from '../support/tmp.js';

const CLIENTS = ['a', 'b', 'c'] as const;
type Client = (typeof CLIENTS)[number];

type Op =
  | { kind: 'save'; client: Client; expiryMs: number; filters: string[] }
  | { kind: 'disconnect'; client: Client; at: number }
  | { kind: 'end'; client: Client }
  | { kind: 'message'; to: Client[]; qos: QoS; n: number }
  | { kind: 'done'; client: Client; pick: number }
  | { kind: 'reopen' };

const client = fc.constantFrom(...CLIENTS);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('save' as const),
      client,
      expiryMs: fc.integer({ min: 1, max: 1e6 }),
      filters: fc.uniqueArray(fc.constantFrom('x/#', 'x/+', '$share/g/x/y', 'y'), { maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('disconnect' as const),
      client,
      at: fc.integer({ min: 0, max: 1e12 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), client }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('message' as const),
      to: fc.uniqueArray(client, { minLength: 1, maxLength: 3 }),
      qos: fc.constantFrom<QoS>(1, 2),
      n: fc.nat(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('done' as const), client, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

interface ModelSession {
  expiryMs: number;
  disconnectedAt: number | undefined;
  subscriptions: SavedSubscription[];
  /** Unfinished messages by payload, in order. */
  pending: { id: number; payload: string; qos: QoS }[];
}

function subscription(filter: string, i: number): SavedSubscription {
  return {
    filter,
    qos: (i % 3) as QoS,
    noLocal: i % 2 === 0 && !filter.startsWith('$share'),
    retainAsPublished: i % 2 === 1,
    retainHandling: i % 3,
    subscriptionId: i === 0 ? undefined : i,
  };
}

function view(sessions: readonly SavedSession[]) {
  return Object.fromEntries(
    [...sessions]
      .sort((x, y) => x.clientId.localeCompare(y.clientId))
      .map((s) => [
        s.clientId,
        {
          expiryMs: s.expiryMs,
          disconnectedAt: s.disconnectedAt,
          subscriptions: s.subscriptions,
          pending: s.messages.map((m) => ({ payload: m.message.payload.toString(), qos: m.qos })),
        },
      ]),
  );
}

function modelView(model: Map<Client, ModelSession>) {
  return Object.fromEntries(
    [...model]
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([c, s]) => [
        c,
        {
          expiryMs: s.expiryMs,
          disconnectedAt: s.disconnectedAt,
          subscriptions: s.subscriptions,
          pending: s.pending.map(({ payload, qos }) => ({ payload, qos })),
        },
      ]),
  );
}

describe('mqtt session journal (issue 13): reopened, it holds what a simple model holds', () => {
  it('subscriptions, expiry, disconnect times and unfinished messages survive reopening and compaction', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 3, max: 40 }),
        async (ops, compactAfter) => {
          const dir = await mkdtemp(join(tmpdir(), 'ws-journal-'));
          const errors: unknown[] = [];
          const open = () =>
            SessionJournal.open(
              dir,
              { fsync: 'never', segmentBytes: 4096, blobThreshold: 2048 },
              (e) => errors.push(e),
              compactAfter,
            );
          let { journal } = await open();
          const model = new Map<Client, ModelSession>();
          try {
            for (const o of ops) {
              switch (o.kind) {
                case 'save': {
                  const subs = o.filters.map(subscription);
                  journal.saveSession(o.client, o.expiryMs, subs);
                  const known = model.get(o.client);
                  model.set(o.client, {
                    expiryMs: o.expiryMs,
                    disconnectedAt: undefined,
                    subscriptions: subs,
                    pending: known?.pending ?? [],
                  });
                  break;
                }
                case 'disconnect': {
                  journal.disconnected(o.client, o.at, 5000);
                  const s = model.get(o.client);
                  if (s) Object.assign(s, { disconnectedAt: o.at, expiryMs: 5000 });
                  break;
                }
                case 'end':
                  journal.ended(o.client);
                  model.delete(o.client);
                  break;
                case 'message': {
                  const payload = `m${o.n}`.padEnd(o.n % 5 === 0 ? 3000 : 300, '.');
                  const message: BrokerMessage = {
                    topic: 'x/y',
                    payload: Buffer.from(payload),
                    qos: o.qos,
                    retain: false,
                    properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2, 3]) },
                    expiresAt: undefined,
                  };
                  const to = o.to.filter((c) => model.has(c));
                  if (to.length === 0) break;
                  const { id, durable } = journal.addMessage(
                    message,
                    to.map((c) => ({ clientId: c, qos: o.qos, subscriptionIds: [], retain: false })),
                  );
                  for (const c of to) model.get(c)!.pending.push({ id, payload, qos: o.qos });
                  await durable;
                  break;
                }
                case 'done': {
                  const s = model.get(o.client);
                  if (!s || s.pending.length === 0) break;
                  const [m] = s.pending.splice(o.pick % s.pending.length, 1);
                  journal.done(o.client, m!.id);
                  break;
                }
                case 'reopen': {
                  await journal.close();
                  const reopened = await open();
                  journal = reopened.journal;
                  expect(view(reopened.sessions)).toEqual(modelView(model));
                  // Ids of unfinished messages are the ones `done` takes after a reopen.
                  for (const s of reopened.sessions) {
                    const m = model.get(s.clientId as Client)!;
                    m.pending = s.messages.map((x, i) => ({ ...m.pending[i]!, id: x.id }));
                  }
                  break;
                }
              }
            }
            await journal.close();
            const last = await open();
            journal = last.journal;
            expect(view(last.sessions)).toEqual(modelView(model));
            // Correlation Data (binary) round-trips.
            for (const s of last.sessions)
              for (const m of s.messages)
                expect(m.message.properties.correlationData).toEqual(Buffer.from([1, 2, 3]));
            expect(errors).toEqual([]);
          } finally {
            await journal.close();
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);

  it('a compaction does not call for the next one with its own rewrite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ws-journal-'));
    try {
      const { journal } = await SessionJournal.open(
        dir,
        { fsync: 'never' },
        (e) => {
          throw e;
        },
        10,
      );
      // 100 disconnected sessions: a compaction rewrites 200 records, as many as its threshold.
      for (let i = 0; i < 100; i++) {
        journal.saveSession(`c${i}`, 60_000, [subscription('x/#', 1)]);
        journal.disconnected(`c${i}`, 1000, 60_000);
      }
      await new Promise((r) => setTimeout(r, 200));
      // Traffic after the compaction: each record would start another one if the rewrite counted.
      for (let i = 0; i < 5; i++) {
        journal.disconnected('c0', 2000 + i, 60_000);
        await new Promise((r) => setTimeout(r, 50));
      }
      await journal.close();
      const log = await Log.open(dir);
      // 205 records and one rewrite of 200; compactions feeding each other would have written 1 000 more.
      expect(log.stats().lastSeq).toBeLessThan(700);
      await log.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps a session with thousands of subscriptions, a fan-out to thousands of sessions, and compacts past a session that never returns', async () => {
    const dir = await tempDir('ws-journal-');
    const errors: unknown[] = [];
    const open = () =>
      SessionJournal.open(dir, { fsync: 'never', segmentBytes: 64 * 1024 }, (e) => errors.push(e), 100);
    let { journal } = await open();
    // Far beyond the log's 64 KiB of record metadata.
    const many = Array.from({ length: 3000 }, (_, i) => subscription(`plant/line-${i}/sensor/+/value`, 1));
    journal.saveSession('many-subs', 60_000, many);
    const fans = Array.from({ length: 3000 }, (_, i) => `fan-out-client-${i}`);
    for (const c of fans) journal.saveSession(c, 60_000, [subscription('x/#', 1)]);
    const message = (text: string): BrokerMessage => ({
      topic: 'x/y',
      payload: Buffer.from(text),
      qos: 1,
      retain: false,
      properties: {},
      expiresAt: undefined,
    });
    const fanned = journal.addMessage(
      message('to all'),
      fans.map((c) => ({ clientId: c, qos: 1, subscriptionIds: [], retain: false })),
    );
    await fanned.durable;
    for (const c of fans) journal.done(c, fanned.id);
    // One message 'away' never acknowledges, then 3000 that 'online' does.
    journal.saveSession('away', 60_000, [subscription('x/#', 1)]);
    journal.saveSession('online', 60_000, [subscription('x/#', 1)]);
    await journal.addMessage(message('kept'), [
      { clientId: 'away', qos: 1, subscriptionIds: [], retain: false },
    ]).durable;
    for (let i = 0; i < 3000; i++) {
      const { id, durable } = journal.addMessage(message(`m${i}`), [
        { clientId: 'online', qos: 1, subscriptionIds: [], retain: false },
      ]);
      await durable;
      journal.done('online', id);
    }
    await journal.close();
    const reopened = await open();
    journal = reopened.journal;
    const byId = new Map(reopened.sessions.map((x) => [x.clientId, x]));
    expect(byId.get('many-subs')?.subscriptions).toHaveLength(3000);
    expect(byId.get('away')?.messages.map((m) => m.message.payload.toString())).toEqual(['kept']);
    expect(byId.get('online')?.messages).toEqual([]);
    expect(byId.get(fans[0]!)?.messages).toEqual([]);
    expect(errors).toEqual([]);
    await journal.close();
    // Compaction copied the one unfinished message forward: the acknowledged ones are gone.
    const log = await Log.open(dir);
    expect(log.stats().records).toBeLessThan(4000);
    await log.close();
  }, 60_000);
});
