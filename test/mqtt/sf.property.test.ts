import fc from 'fast-check';
import type { IPublishPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import { Broker, type ClientConnection } from '../../src/ingest/mqtt/broker.js';
import type { Link } from '../../src/ingest/mqtt/session.js';
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
