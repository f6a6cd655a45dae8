/**
 * The guarantee cluster mode builds on, checked against real servers: a message JetStream
 * acknowledged (PubAck from an R3 stream, servers on `sync_interval: always`) survives a SIGKILL
 * of the stream's leader in the middle of publishing. Runs under `npm run test:services`.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsCluster } from '../support/nats-cluster.js';

const services = process.env.WAYSTATION_SERVICES === '1';
const STREAM = 'WS_REPLICATED';

describe.skipIf(!services)('a replicated JetStream stream (run with npm run test:services)', () => {
  let cluster: NatsCluster | undefined;
  let nc: NatsConnection | undefined;

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    nc = await connect({
      servers: cluster.urls,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
      timeout: 5_000,
    });
  });

  afterAll(async () => {
    await nc?.close().catch(() => {});
    await cluster?.stop();
  });

  it('keeps every acknowledged message when the stream leader is SIGKILLed mid-publish', async () => {
    const c = cluster!;
    const jsm = await jetstreamManager(nc!);
    await jsm.streams.add({ name: STREAM, subjects: [`${STREAM}.>`], num_replicas: 3 });
    const js = jetstream(nc!, { timeout: 2_000 });
    const info = await jsm.streams.info(STREAM);
    const leader = info.cluster?.leader;
    expect(leader).toBeDefined();
    expect(info.cluster?.replicas?.length).toBe(2);

    const TOTAL = 600;
    const KILL_AT = 150;
    const acked = new Map<number, number>(); // message number → stream seq
    let failures = 0;
    let killed: Promise<void> | undefined;
    let next = 0;
    const deadline = Date.now() + 45_000;

    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        // A publish that failed may still have committed: retry with the same msg id, so
        // JetStream's duplicate window answers with the original seq instead of storing twice.
        for (;;) {
          if (Date.now() > deadline) throw new Error(`message ${i} not acknowledged before the deadline`);
          try {
            const ack = await js.publish(`${STREAM}.m`, `message ${i}`, { msgID: `m-${i}`, timeout: 2_000 });
            acked.set(i, ack.seq);
            break;
          } catch {
            failures++;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        if (acked.size >= KILL_AT && killed === undefined) killed = c.kill(c.indexOf(leader!));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await killed;
    expect(killed).toBeDefined();
    expect(acked.size).toBe(TOTAL);

    const after = await jsm.streams.info(STREAM);
    expect(after.cluster?.leader).toBeDefined();
    expect(after.cluster?.leader).not.toBe(leader);

    const readAll = async () => {
      const seqs = new Set<number>();
      for (const [i, seq] of acked) {
        const msg = await jsm.streams.getMessage(STREAM, { seq });
        expect(msg?.string(), `message ${i} at seq ${seq}`).toBe(`message ${i}`);
        seqs.add(seq);
      }
      expect(seqs.size).toBe(TOTAL); // no two messages share a seq: none stored twice under one
    };
    await readAll();

    // The killed server comes back and catches up; everything is still there.
    await c.restart(c.indexOf(leader!));
    await readAll();
    const final = await jsm.streams.info(STREAM);
    expect(final.state.messages).toBe(TOTAL);
    console.info(
      `nats-server ${c.version}: ${TOTAL} acknowledged, leader ${leader} killed after ${KILL_AT}, ` +
        `new leader ${after.cluster?.leader}, ${failures} failed attempts retried`,
    );
  });
});
