import fc from 'fast-check';
import type { QoS } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { Session, type Subscription } from '../../src/ingest/mqtt/session.js';
import { SubscriptionIndex } from '../../src/ingest/mqtt/subscription-index.js';
import { topicFilterProblem, topicMatches, topicNameProblem } from '../../src/ingest/mqtt/topic.js';

const CLIENTS = 4;
const counters = { dropped: () => {}, sent: () => {} };
const newSession = (client: number) => new Session(`c${client}`, 10, counters);

// Few level names, so filters and topics meet often; "$x" first makes a "$" topic.
const topicLevel = fc.constantFrom('a', 'b', '', '$x');
const topic = fc
  .array(topicLevel, { minLength: 1, maxLength: 4 })
  .map((levels) => levels.join('/'))
  .filter((t) => topicNameProblem(t) === undefined);
const filter = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', '', '$x', '+'), { minLength: 0, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => topicFilterProblem(f) === undefined);

type Op =
  | { kind: 'subscribe'; client: number; match: string; group: string | undefined; qos: QoS }
  | { kind: 'unsubscribe'; client: number; nth: number }
  | { kind: 'end'; client: number }
  | { kind: 'check'; topic: string };

const client = fc.integer({ min: 0, max: CLIENTS - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('subscribe' as const),
      client,
      match: filter,
      group: fc.option(fc.constantFrom('g', 'h'), { nil: undefined, freq: 2 }),
      qos: fc.constantFrom<QoS>(0, 1, 2),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('unsubscribe' as const), client, nth: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), client }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('check' as const), topic }) },
);

function subscription(match: string, group: string | undefined, qos: QoS): Subscription {
  return {
    filter: group === undefined ? match : `$share/${group}/${match}`,
    match,
    shareGroup: group,
    qos,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
    subscriptionId: undefined,
    storeAndForward: [],
  };
}

/** What the index finds for `topic`: ordinary matches as "client|filter", shared groups as member lists. */
function fromIndex(index: SubscriptionIndex, sessions: Session[], name: string) {
  const ordinary: string[] = [];
  const groups: Record<string, string[]> = {};
  index.match(name, {
    subscriber: (session, sub) => {
      // Only current subscriptions of current sessions: nothing removed lingers in the tree.
      expect(sessions[Number(session.clientId.slice(1))]).toBe(session);
      expect(session.subscriptions.get(sub.filter)).toBe(sub);
      ordinary.push(`${session.clientId}|${sub.filter}`);
    },
    group: (group) => {
      expect(group.members.size).toBeGreaterThan(0);
      const members = [...group.members].map(([session, sub]) => {
        expect(session.subscriptions.get(sub.filter)).toBe(sub);
        return { key: `${sub.shareGroup}\u0000${sub.match}`, client: session.clientId };
      });
      const key = members[0]!.key;
      expect(groups[key]).toBeUndefined();
      expect(members.every((m) => m.key === key)).toBe(true);
      groups[key] = members.map((m) => m.client).sort();
    },
  });
  return { ordinary: ordinary.sort(), groups };
}

/** The same, by testing every subscription of every session with the plain matcher. */
function fromScan(sessions: Session[], name: string) {
  const ordinary: string[] = [];
  const groups: Record<string, string[]> = {};
  for (const session of sessions)
    for (const sub of session.subscriptions.values()) {
      if (!topicMatches(sub.match, name)) continue;
      if (sub.shareGroup === undefined) {
        ordinary.push(`${session.clientId}|${sub.filter}`);
        continue;
      }
      const key = `${sub.shareGroup}\u0000${sub.match}`;
      groups[key] = [...(groups[key] ?? []), session.clientId];
    }
  for (const members of Object.values(groups)) members.sort();
  return { ordinary: ordinary.sort(), groups };
}

describe('mqtt subscription index (model test against the plain matcher)', () => {
  it('finds exactly the subscriptions a scan of every session finds, and prunes to nothing', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.array(topic, { maxLength: 8 }), (ops, finalTopics) => {
        const index = new SubscriptionIndex();
        const sessions = Array.from({ length: CLIENTS }, (_, i) => newSession(i));
        for (const o of ops) {
          if (o.kind === 'subscribe') {
            const session = sessions[o.client]!;
            const sub = subscription(o.match, o.group, o.qos);
            const old = session.subscriptions.get(sub.filter);
            // As the broker does: a repeated SUBSCRIBE updates the subscription in place.
            if (old) Object.assign(old, sub);
            else {
              session.subscriptions.set(sub.filter, sub);
              index.add(session, sub);
            }
          } else if (o.kind === 'unsubscribe') {
            const session = sessions[o.client]!;
            const subs = [...session.subscriptions.values()];
            if (subs.length === 0) continue;
            const sub = subs[o.nth % subs.length]!;
            session.subscriptions.delete(sub.filter);
            index.remove(session, sub);
          } else if (o.kind === 'end') {
            // Session end, expiry, or a takeover with Clean Start: a new session object follows.
            index.removeSession(sessions[o.client]!);
            sessions[o.client]!.discard();
            sessions[o.client] = newSession(o.client);
          } else {
            expect(fromIndex(index, sessions, o.topic)).toEqual(fromScan(sessions, o.topic));
          }
          expect(index.size).toBe(sessions.reduce((n, s) => n + s.subscriptions.size, 0));
        }
        for (const t of finalTopics) expect(fromIndex(index, sessions, t)).toEqual(fromScan(sessions, t));
        for (const s of sessions) index.removeSession(s);
        expect(index.empty).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('does not match "$" topics through a leading wildcard, but "$x/#" matches "$x" [MQTT-4.7.2-1]', () => {
    const index = new SubscriptionIndex();
    const session = newSession(0);
    for (const f of ['#', '+/y', '$x/#', '$share/g/#']) {
      const [group, match] = f.startsWith('$share/') ? ['g', '#'] : [undefined, f];
      const sub = subscription(match, group, 1);
      session.subscriptions.set(sub.filter, sub);
      index.add(session, sub);
    }
    const found = (name: string) => fromIndex(index, [session], name);
    expect(found('$x/y')).toEqual({ ordinary: ['c0|$x/#'], groups: {} });
    expect(found('$x')).toEqual({ ordinary: ['c0|$x/#'], groups: {} });
    expect(found('a/y')).toEqual({ ordinary: ['c0|#', 'c0|+/y'], groups: { 'g\u0000#': ['c0'] } });
  });

  it('matches a topic of 20 000 levels without running out of stack', () => {
    const index = new SubscriptionIndex();
    const session = newSession(0);
    const deep = Array.from({ length: 20_000 }, () => 'a').join('/');
    const sub = subscription(deep, undefined, 0);
    session.subscriptions.set(sub.filter, sub);
    index.add(session, sub);
    expect(fromIndex(index, [session], deep).ordinary).toHaveLength(1);
    index.removeSession(session);
    expect(index.empty).toBe(true);
  });
});
