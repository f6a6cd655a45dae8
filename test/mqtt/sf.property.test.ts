import fc from 'fast-check';
import type { IPublishPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { Broker, type ClientConnection } from '../../src/ingest/mqtt/broker.js';
import type { Link } from '../../src/ingest/mqtt/session.js';
import { topicMatches } from '../../src/ingest/mqtt/topic.js';
import { Waystation } from '../../src/waystation.js';
import { tempDir } from '../support/tmp.js';

class FakeConnection implements ClientConnection, Link {
  readonly protocolVersion = 4 as const;
  readonly maxPacketSize = 1 << 20;
  readonly congested = false;
  readonly written: IPublishPacket[] = [];
  constructor(readonly receiveMaximum: number) {}
  get link(): Link {
    return this;
  }
  sendPublish(packet: IPublishPacket): boolean {
    this.written.push({ ...packet });
    return true;
  }
  close(): void {}
  sendPubrel(): void {}
}

type Op =
  | { kind: 'publish'; count: number }
  | { kind: 'connect'; window: number }
  | { kind: 'disconnect' }
  | { kind: 'ack'; count: number }
  | { kind: 'resubscribe' };

const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    fc.integer({ min: 1, max: 8 }).map((count) => ({ kind: 'publish' as const, count })),
    fc.integer({ min: 1, max: 5 }).map((window) => ({ kind: 'connect' as const, window })),
    fc.constant({ kind: 'disconnect' as const }),
    fc.integer({ min: 1, max: 6 }).map((count) => ({ kind: 'ack' as const, count })),
    fc.constant({ kind: 'resubscribe' as const }),
  ),
  { maxLength: 30 },
);

/** Lets the cursors read the log (real file I/O) and send until `done`, or 2 s pass; then a little more. */
async function settle(done: () => boolean): Promise<void> {
  const end = Date.now() + 2000;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
  await new Promise((r) => setTimeout(r, 5));
}

describe('store-and-forward subscriber (model test)', () => {
  it('every epoch resumes right after the last acknowledged message, in order, and nothing published is missed', async () => {
    const config = {
      storage: { fsync: 'never' as const },
      mqtt: {
        allowAnonymous: true,
        storeAndForwardTopics: [{ topic: 'm/#', stream: 'm', maxDeliveryRatePerSecond: 1_000_000 }],
      },
    };
    await fc.assert(
      fc.asyncProperty(ops, async (script) => {
        const ws = await Waystation.open(
          { ...config, dataDir: await tempDir() },
          { logger: pino({ level: 'silent' }) },
        );
        const broker = await Broker.open(ws, parseConfig(config).config.mqtt!, pino({ level: 'silent' }));
        try {
          let published = 0;
          let lastAcked = -1; // the model: the subscriber's position (payloads are 0, 1, 2, …)
          let conn: FakeConnection | undefined;
          let session: ReturnType<Broker['connect']>['session'] | undefined;
          let acked = 0; // how many of the current connection's messages were acknowledged
          let epochStart = 0; // the model: where delivery resumes on this connection
          const connect = (window: number) => {
            conn = new FakeConnection(window);
            epochStart = lastAcked + 1;
            const r = broker.connect('sub', conn, { cleanStart: false, expiryMs: 60_000, will: undefined });
            session = r.session;
            acked = 0;
            broker.resume(session, conn);
          };
          const received = () => conn!.written.map((p) => Number(String(p.payload)));
          // Subscribe once: tracked from now on (NewMessages: nothing before).
          connect(3);
          const subscribe = () =>
            broker.subscribe(session!, {
              filter: 'm/#',
              match: 'm/#',
              shareGroup: undefined,
              qos: 1,
              noLocal: false,
              retainAsPublished: false,
              retainHandling: 0,
              subscriptionId: undefined,
              storeAndForward: [],
            });
          subscribe();
          for (const o of script) {
            if (o.kind === 'publish') {
              for (let i = 0; i < o.count; i++) {
                await broker.publish(
                  {
                    topic: 'm/x',
                    payload: Buffer.from(String(published++)),
                    qos: 1,
                    retain: false,
                    properties: {},
                    expiresAt: undefined,
                  },
                  'pub',
                );
              }
            } else if (o.kind === 'connect' && !conn) {
              connect(o.window);
            } else if (o.kind === 'disconnect' && conn) {
              broker.disconnected(session!, conn, false);
              conn = undefined;
            } else if (o.kind === 'resubscribe' && conn) {
              // Clients subscribe again on every reconnect: delivery must carry on, not restart.
              subscribe();
            } else if (o.kind === 'ack' && conn) {
              const got = conn.written;
              for (let i = 0; i < o.count && acked < got.length; i++, acked++) {
                session!.acknowledged(got[acked]!.messageId!, 'puback');
                lastAcked = Number(String(got[acked]!.payload));
              }
            }
            if (conn) {
              // Right after the last acknowledged message, in order, without gaps, as far as the
              // receive window allows (or everything published).
              const c = conn;
              const expected = Math.min(published - epochStart, acked + c.receiveMaximum);
              await settle(() => c.written.length >= expected);
              expect(received()).toEqual(Array.from({ length: expected }, (_, k) => epochStart + k));
            }
          }
          // Finally the subscriber stays and acknowledges everything: it gets all that was published after it subscribed.
          if (!conn) connect(5);
          for (let guard = 0; guard < 200 && lastAcked < published - 1; guard++) {
            const c = conn!;
            await settle(() => c.written.length > acked);
            const got = conn!.written;
            while (acked < got.length) {
              session!.acknowledged(got[acked]!.messageId!, 'puback');
              lastAcked = Number(String(got[acked]!.payload));
              acked++;
            }
          }
          expect(lastAcked).toBe(published - 1);
        } finally {
          await broker.close();
          await ws.close();
        }
      }),
      { numRuns: Number(process.env.WAYSTATION_MODEL_RUNS ?? 60) },
    );
  }, 120_000);
});

// --- random filters (issue 13) ------------------------------------------------------------

const SF_FILTER = 'm/+/t';
/** The reference for which of these filters overlap SF_FILTER (some name matches both), by hand. */
const FILTERS: Record<string, boolean> = {
  'm/#': true,
  '#': true,
  'm/a/t': true,
  'm/+/t': true,
  'm/b/#': true,
  '+/a/+': true,
  'n/#': false,
  'm/+/u': false,
  '+/+': false,
};
const TOPICS = ['m/a/t', 'm/b/t', 'm/a/u', 'n/a/t', 'm/b'];

type FilterOp =
  | { kind: 'publish'; topic: string; count: number }
  | { kind: 'subscribe'; client: number; filter: string; qos: 0 | 1 }
  | { kind: 'unsubscribe'; client: number; filter: string }
  | { kind: 'connect'; client: number }
  | { kind: 'disconnect'; client: number };

const filterOps: fc.Arbitrary<FilterOp[]> = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant('publish' as const),
      topic: fc.constantFrom(...TOPICS),
      count: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({
      kind: fc.constant('subscribe' as const),
      client: fc.integer({ min: 0, max: 1 }),
      filter: fc.constantFrom(...Object.keys(FILTERS)),
      qos: fc.constantFrom(0 as const, 1 as const),
    }),
    fc.record({
      kind: fc.constant('unsubscribe' as const),
      client: fc.integer({ min: 0, max: 1 }),
      filter: fc.constantFrom(...Object.keys(FILTERS)),
    }),
    fc.record({ kind: fc.constant('connect' as const), client: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ kind: fc.constant('disconnect' as const), client: fc.integer({ min: 0, max: 1 }) }),
  ),
  { maxLength: 25 },
);

/** The reference model of one client. */
interface ModelClient {
  filters: Map<string, 0 | 1>;
  /** Tracked on SF_FILTER, and how many stored messages its position has passed. */
  tracked: boolean;
  pos: number;
  connected: boolean;
  expectedStored: { id: number; qos: number }[];
  expectedLive: number[];
  queuedLive: number[];
}

describe('store-and-forward subscriber with random filters (model test)', () => {
  it('each client gets, once and in order, exactly the stored messages its overlapping filters match, and live ones otherwise', async () => {
    const config = {
      storage: { fsync: 'never' as const },
      mqtt: {
        allowAnonymous: true,
        storeAndForwardTopics: [{ topic: SF_FILTER, stream: 'm', maxDeliveryRatePerSecond: 1_000_000 }],
      },
    };
    await fc.assert(
      fc.asyncProperty(filterOps, async (script) => {
        const ws = await Waystation.open(
          { ...config, dataDir: await tempDir() },
          { logger: pino({ level: 'silent' }) },
        );
        const broker = await Broker.open(ws, parseConfig(config).config.mqtt!, pino({ level: 'silent' }));
        try {
          const stored: { id: number; topic: string }[] = [];
          let nextId = 0;
          const model: ModelClient[] = [0, 1].map(() => ({
            filters: new Map(),
            tracked: false,
            pos: 0,
            connected: false,
            expectedStored: [],
            expectedLive: [],
            queuedLive: [],
          }));
          const real = [0, 1].map(() => ({
            conn: undefined as FakeConnection | undefined,
            session: undefined as ReturnType<Broker['connect']>['session'] | undefined,
            acked: 0,
            written: [] as IPublishPacket[],
          }));
          const connect = (c: number) => {
            const conn = new FakeConnection(100);
            const r = broker.connect(`c${c}`, conn, {
              cleanStart: false,
              expiryMs: 600_000,
              will: undefined,
            });
            real[c]!.conn = conn;
            real[c]!.session = r.session;
            real[c]!.acked = 0;
            broker.resume(r.session, conn);
            const m = model[c]!;
            m.connected = true;
            m.expectedLive.push(...m.queuedLive.splice(0));
          };
          const ackAll = () => {
            for (const r of real) {
              if (!r.conn) continue;
              while (r.acked < r.conn.written.length) {
                const p = r.conn.written[r.acked++]!;
                r.written.push(p);
                if (p.qos > 0) r.session!.acknowledged(p.messageId!, 'puback');
              }
            }
          };
          const expectedCount = (c: number) =>
            model[c]!.expectedStored.length + model[c]!.expectedLive.length;
          for (const o of script) {
            if (o.kind === 'publish') {
              for (let i = 0; i < o.count; i++) {
                const id = nextId++;
                await broker.publish(
                  {
                    topic: o.topic,
                    payload: Buffer.from(String(id)),
                    qos: 1,
                    retain: false,
                    properties: {},
                    expiresAt: undefined,
                  },
                  'pub',
                );
                if (topicMatches(SF_FILTER, o.topic)) stored.push({ id, topic: o.topic });
                else
                  for (const m of model)
                    if ([...m.filters.keys()].some((f) => topicMatches(f, o.topic)))
                      (m.connected ? m.expectedLive : m.queuedLive).push(id);
              }
            } else if (o.kind === 'connect' && !model[o.client]!.connected) {
              connect(o.client);
            } else if (o.kind === 'disconnect' && model[o.client]!.connected) {
              const r = real[o.client]!;
              broker.disconnected(r.session!, r.conn!, false);
              r.conn = undefined;
              model[o.client]!.connected = false;
            } else if (o.kind === 'subscribe' && model[o.client]!.connected) {
              const m = model[o.client]!;
              broker.subscribe(real[o.client]!.session!, {
                filter: o.filter,
                match: o.filter,
                shareGroup: undefined,
                qos: o.qos,
                noLocal: false,
                retainAsPublished: false,
                retainHandling: 2,
                subscriptionId: undefined,
                storeAndForward: [],
              });
              m.filters.set(o.filter, o.qos);
              if (FILTERS[o.filter] && !m.tracked) {
                // A new subscriber (NewMessages): from after the last stored message.
                m.tracked = true;
                m.pos = stored.length;
              }
            } else if (o.kind === 'unsubscribe' && model[o.client]!.connected) {
              const m = model[o.client]!;
              broker.unsubscribe(real[o.client]!.session!, o.filter);
              m.filters.delete(o.filter);
              // The last overlapping filter gone: tracking ends, the position is dropped.
              if (![...m.filters.keys()].some((f) => FILTERS[f])) m.tracked = false;
            }
            // The reference: a connected, tracked client reads every stored message past its position.
            for (const m of model) {
              if (!m.connected || !m.tracked) continue;
              for (; m.pos < stored.length; m.pos++) {
                const { id, topic } = stored[m.pos]!;
                const qos = [...m.filters].filter(([f]) => topicMatches(f, topic)).map(([, q]) => q);
                if (qos.length > 0) m.expectedStored.push({ id, qos: Math.max(...qos) });
              }
            }
            for (let c = 0; c < 2; c++) {
              if (!model[c]!.connected) continue;
              const end = Date.now() + 2000;
              while (
                real[c]!.written.length + (real[c]!.conn!.written.length - real[c]!.acked) <
                expectedCount(c)
              ) {
                if (Date.now() > end) break;
                ackAll();
                await new Promise((r) => setTimeout(r, 2));
              }
            }
            await new Promise((r) => setTimeout(r, 5));
            ackAll();
            for (let c = 0; c < 2; c++) {
              const got = real[c]!.written;
              const isStored = (p: IPublishPacket) => topicMatches(SF_FILTER, p.topic);
              expect(
                got.filter(isStored).map((p) => ({ id: Number(String(p.payload)), qos: p.qos })),
                `client c${c}: stored messages`,
              ).toEqual(model[c]!.expectedStored);
              expect(
                got
                  .filter((p) => !isStored(p))
                  .map((p) => Number(String(p.payload)))
                  .sort((a, b) => a - b),
                `client c${c}: live messages`,
              ).toEqual(model[c]!.expectedLive);
            }
          }
        } finally {
          await broker.close();
          await ws.close();
        }
      }),
      { numRuns: Number(process.env.WAYSTATION_MODEL_RUNS ?? 60) },
    );
  }, 120_000);
});
