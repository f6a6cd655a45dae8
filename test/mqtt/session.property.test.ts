import fc from 'fast-check';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import type { BrokerMessage } from '../../src/ingest/mqtt/message.js';
import { type Link, Session } from '../../src/ingest/mqtt/session.js';

/** A connected client as the session sees it, recording what was written to it. */
class FakeLink implements Link {
  readonly protocolVersion = 5 as const;
  congested = false;
  readonly written: IPublishPacket[] = [];
  constructor(
    readonly receiveMaximum: number,
    readonly maxPacketSize = 1 << 20,
  ) {}
  sendPublish(packet: IPublishPacket): boolean {
    if (Buffer.byteLength(packet.payload) + 64 > this.maxPacketSize) return false;
    this.written.push({ ...packet });
    return true;
  }
}

type Op =
  | { kind: 'deliver'; qos: QoS }
  | { kind: 'ack' }
  | { kind: 'disconnect' }
  | { kind: 'connect'; receiveMaximum: number }
  | { kind: 'congest'; on: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom<QoS>(0, 1, 2).map((qos) => ({ kind: 'deliver' as const, qos })) },
  { weight: 4, arbitrary: fc.constant({ kind: 'ack' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'disconnect' as const }) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 4 })
      .map((receiveMaximum) => ({ kind: 'connect' as const, receiveMaximum })),
  },
  { weight: 1, arbitrary: fc.boolean().map((on) => ({ kind: 'congest' as const, on })) },
);

const message = (n: number, qos: QoS): BrokerMessage => ({
  topic: 't',
  payload: Buffer.from(String(n)),
  qos,
  retain: false,
  properties: {},
  expiresAt: undefined,
});

describe('mqtt session (model test)', () => {
  it('never exceeds the receive window or the queue, loses nothing silently, and resends in order', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.integer({ min: 1, max: 6 }), (ops, maxQueued) => {
        const dropped: string[] = [];
        const session = new Session('c', maxQueued, { dropped: (r) => dropped.push(r), sent: () => {} });
        const links: FakeLink[] = [];
        const track = (l: FakeLink) => {
          links.push(l);
          return l;
        };
        let link: FakeLink | undefined = track(new FakeLink(2));
        session.attach(link, () => {});
        let n = 0;
        const acked = new Set<number>();
        for (const o of ops) {
          if (o.kind === 'deliver') {
            const id = n++;
            session.deliver(message(id, o.qos), o.qos, [], false);
          } else if (o.kind === 'ack' && link) {
            // The client acknowledges the oldest message it holds (PUBACK, or PUBREC+PUBCOMP),
            // which may have reached it on an earlier connection.
            const inFlight = links
              .flatMap((l) => l.written)
              .filter((p) => p.qos > 0 && !acked.has(Number(p.payload.toString())));
            const first = inFlight[0];
            if (first) {
              const id = Number(first.payload.toString());
              if (first.qos === 1) session.acknowledged(first.messageId!, 'puback');
              else {
                expect(session.received(first.messageId!)).toBe(true);
                session.acknowledged(first.messageId!, 'pubcomp');
              }
              acked.add(id);
            }
          } else if (o.kind === 'disconnect' && link) {
            session.detach();
            link = undefined;
          } else if (o.kind === 'connect' && !link) {
            link = track(new FakeLink(o.receiveMaximum));
            session.attach(link, () => {});
            // What was in flight comes first, flagged DUP, in its original order [MQTT-4.4.0-1].
            const dups = link.written.filter((p) => p.dup).map((p) => Number(p.payload.toString()));
            expect(dups).toEqual([...dups].sort((a, b) => a - b));
            expect(link.written.slice(0, dups.length).every((p) => p.dup)).toBe(true);
          } else if (o.kind === 'congest' && link) {
            link.congested = o.on;
            if (!o.on) session.drain();
          }
          if (link) {
            const open = link.written.filter((p) => p.qos > 0 && !acked.has(Number(p.payload.toString())));
            const distinct = new Set(open.map((p) => p.messageId));
            expect(distinct.size).toBe(open.length); // packet ids unique among those in flight
            expect(session.inflightCount).toBeLessThanOrEqual(link.receiveMaximum);
          }
          expect(session.queued).toBeLessThanOrEqual(maxQueued);
        }
        // Then the client comes back with a wide window and acknowledges everything it gets.
        if (!link) {
          link = track(new FakeLink(100));
          session.attach(link, () => {});
        }
        link.congested = false;
        session.drain();
        for (let guard = 0; guard < 1000; guard++) {
          const next = link.written.find((p) => p.qos > 0 && !acked.has(Number(p.payload.toString())));
          if (!next) break;
          const id = Number(next.payload.toString());
          if (next.qos === 2) session.received(next.messageId!);
          session.acknowledged(next.messageId!, next.qos === 1 ? 'puback' : 'pubcomp');
          acked.add(id);
        }
        expect(session.inflightCount).toBe(0);
        expect(session.queued).toBe(0);
        // No silent loss: each message was acknowledged (QoS ≥ 1), written (QoS 0) or counted as dropped.
        const written0 = new Set(
          links.flatMap((l) => l.written.filter((p) => p.qos === 0).map((p) => String(p.payload))),
        );
        expect(acked.size + written0.size + dropped.length).toBe(n);
      }),
      { numRuns: Number(process.env.WAYSTATION_MODEL_RUNS ?? 500) },
    );
  });
});
