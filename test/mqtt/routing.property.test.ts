import fc from 'fast-check';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { Broker, type ClientConnection } from '../../src/ingest/mqtt/broker.js';
import type { Link, Session } from '../../src/ingest/mqtt/session.js';
import { topicFilterProblem, topicMatches, topicNameProblem } from '../../src/ingest/mqtt/topic.js';
import { Waystation } from '../../src/waystation.js';
import { tempDir } from '../support/tmp.js';

/** An MQTT 5 client as the broker sees it (subscription identifiers are sent), never congested. */
class FakeConnection implements ClientConnection, Link {
  readonly protocolVersion = 5 as const;
  readonly receiveMaximum = 65_535;
  readonly maxPacketSize = 1 << 20;
  readonly congested = false;
  readonly written: IPublishPacket[] = [];
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

const CLIENTS = 4;
const level = fc.constantFrom('a', 'b', '', '$x');
const topic = fc
  .array(level, { minLength: 1, maxLength: 2 })
  .map((levels) => levels.join('/'))
  .filter((t) => topicNameProblem(t) === undefined);
const anyFilter = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', '', '$x', '+'), { maxLength: 2 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'));
// A topic with some levels made "+" and maybe its tail "#": filters that often match.
const nearFilter = fc
  .tuple(topic, fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }), fc.option(fc.nat({ max: 2 })))
  .map(([t, plus, cut]) => {
    const levels = t.split('/').map((l, i) => (plus[i] ? '+' : l));
    return (cut === null ? levels : [...levels.slice(0, cut), '#']).join('/');
  });
const filter = fc.oneof(anyFilter, nearFilter).filter((f) => topicFilterProblem(f) === undefined);
const client = fc.integer({ min: 0, max: CLIENTS - 1 });
const qos = fc.constantFrom<QoS>(0, 1, 2);

type Op =
  | { kind: 'connect'; client: number; cleanStart: boolean; persistent: boolean }
  | { kind: 'disconnect'; client: number }
  | {
      kind: 'subscribe';
      client: number;
      match: string;
      /** The filter of a shared subscription: one of a few, so groups have several members. */
      sharedMatch: string;
      group: string | undefined;
      qos: QoS;
      noLocal: boolean;
    }
  | { kind: 'unsubscribe'; client: number; nth: number }
  | { kind: 'publish'; client: number; topic: string; qos: QoS };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('connect' as const),
      client,
      cleanStart: fc.boolean(),
      persistent: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), client }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('subscribe' as const),
      client,
      match: filter,
      sharedMatch: fc.constantFrom('#', '+/a', 'a/#', 'a'),
      group: fc.option(fc.constantFrom('g', 'h'), { nil: undefined, freq: 2 }),
      qos,
      noLocal: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unsubscribe' as const), client, nth: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('publish' as const), client, topic, qos }) },
);

interface ModelSub {
  match: string;
  group: string | undefined;
  qos: QoS;
  noLocal: boolean;
  id: number;
}

/** The model of one client ID: its session's subscriptions (by filter), if it has a session. */
interface Client {
  session: Session | undefined;
  conn: FakeConnection | undefined;
  subs: Map<string, ModelSub>;
}

const idsOf = (p: IPublishPacket): number[] => {
  const ids = p.properties?.subscriptionIdentifier;
  return ids === undefined ? [] : Array.isArray(ids) ? ids : [ids];
};

describe('mqtt live routing (model test through the broker)', () => {
  it('sends each connected client one copy at the highest QoS with every matching identifier, and one copy per shared group, as sessions come and go', async () => {
    const config = { storage: { fsync: 'never' as const }, mqtt: { allowAnonymous: true } };
    const mqtt = parseConfig(config).config.mqtt!;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 60 }), async (ops) => {
        const ws = await Waystation.open(
          { ...config, dataDir: await tempDir() },
          { logger: pino({ level: 'silent' }) },
        );
        const broker = await Broker.open(ws, mqtt, pino({ level: 'silent' }));
        try {
          const clients: Client[] = Array.from({ length: CLIENTS }, () => ({
            session: undefined,
            conn: undefined,
            subs: new Map(),
          }));
          let nextId = 1;
          let published = 0;
          // Everyone connected first (half of them persistent), so most publishes have receivers.
          const start: Op[] = clients.map((_, i) => ({
            kind: 'connect',
            client: i,
            cleanStart: true,
            persistent: i % 2 === 0,
          }));
          for (const o of [...start, ...ops]) {
            const c = clients[o.client]!;
            if (o.kind === 'connect') {
              // A connected client connecting again is a takeover.
              const conn = new FakeConnection();
              const { session } = broker.connect(`c${o.client}`, conn, {
                cleanStart: o.cleanStart,
                expiryMs: o.persistent ? 60_000 : 0,
                will: undefined,
              });
              broker.resume(session, conn);
              if (o.cleanStart || !c.session) c.subs.clear();
              c.session = session;
              c.conn = conn;
            } else if (o.kind === 'disconnect') {
              if (!c.conn) continue;
              const persistent = c.session!.expiryMs > 0;
              broker.disconnected(c.session!, c.conn, false);
              c.conn = undefined;
              if (!persistent) {
                c.session = undefined;
                c.subs.clear();
              }
            } else if (o.kind === 'subscribe') {
              if (!c.conn) continue;
              const match = o.group === undefined ? o.match : o.sharedMatch;
              const sub: ModelSub = { match, group: o.group, qos: o.qos, noLocal: o.noLocal, id: nextId++ };
              const f = o.group === undefined ? match : `$share/${o.group}/${match}`;
              c.subs.set(f, sub);
              broker.subscribe(c.session!, {
                filter: f,
                match,
                shareGroup: o.group,
                qos: o.qos,
                noLocal: o.group === undefined && o.noLocal,
                retainAsPublished: false,
                retainHandling: 2,
                subscriptionId: sub.id,
                storeAndForward: [],
              });
            } else if (o.kind === 'unsubscribe') {
              if (!c.conn || c.subs.size === 0) continue;
              const f = [...c.subs.keys()][o.nth % c.subs.size]!;
              c.subs.delete(f);
              expect(broker.unsubscribe(c.session!, f)).toBe(true);
            } else {
              const n = published++;
              const before = clients.map((x) => x.conn?.written.length ?? 0);
              await broker.publish(
                {
                  topic: o.topic,
                  payload: Buffer.from(String(n)),
                  qos: o.qos,
                  retain: false,
                  properties: {},
                  expiresAt: undefined,
                },
                `c${o.client}`,
              );
              const groups = new Map<string, { connected: boolean; id: number; qos: QoS }[]>();
              clients.forEach((x, i) => {
                const got = x.conn?.written.slice(before[i]) ?? [];
                // The ordinary copy carries every matching ordinary identifier [MQTT-3.3.4-2].
                const ordinary = [...x.subs.values()].filter(
                  (s) =>
                    s.group === undefined && topicMatches(s.match, o.topic) && !(s.noLocal && i === o.client),
                );
                for (const s of x.subs.values()) {
                  if (s.group === undefined || !topicMatches(s.match, o.topic)) continue;
                  const key = `${s.group}\u0000${s.match}`;
                  const member = { connected: x.conn !== undefined, id: s.id, qos: s.qos };
                  groups.set(key, [...(groups.get(key) ?? []), member]);
                }
                if (!x.conn) return;
                const sharedIds = new Set(
                  [...x.subs.values()].filter((s) => s.group !== undefined).map((s) => s.id),
                );
                const copies = got.filter((p) => !idsOf(p).some((id) => sharedIds.has(id)));
                if (ordinary.length === 0) expect(copies).toEqual([]);
                else {
                  expect(copies).toHaveLength(1);
                  expect(String(copies[0]!.payload)).toBe(String(n));
                  expect(copies[0]!.qos).toBe(Math.max(...ordinary.map((s) => Math.min(s.qos, o.qos))));
                  expect(idsOf(copies[0]!).sort()).toEqual(ordinary.map((s) => s.id).sort());
                }
              });
              // Each shared group: one member, a connected one if it has any [MQTT 5.0 §4.8.2].
              const sent = clients.flatMap((x, i) => x.conn?.written.slice(before[i]) ?? []);
              for (const members of groups.values()) {
                const hits = sent.filter((p) => members.some((m) => idsOf(p).includes(m.id)));
                expect(hits).toHaveLength(members.some((m) => m.connected) ? 1 : 0);
                for (const p of hits) {
                  const m = members.find((x) => idsOf(p).includes(x.id))!;
                  expect(idsOf(p)).toEqual([m.id]);
                  expect(p.qos).toBe(Math.min(m.qos, o.qos));
                }
              }
            }
            // Nothing of an ended or replaced session stays in the subscription index.
            const held = clients.reduce((n, x) => n + x.subs.size, 0);
            expect(broker.stats().subscriptions).toBe(held);
          }
        } finally {
          await broker.close();
          await ws.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
