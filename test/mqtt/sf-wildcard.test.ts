import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem, readAtomicJson, writeAtomicJson } from '../../src/log/index.js';
import { restartGateway, startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const telemetry = (over: Record<string, unknown> = {}) => ({
  topic: 'plant/+/telemetry',
  stream: 'telemetry',
  ...over,
});
const persistent = (clientId: string) => ({
  clientId,
  clean: false,
  protocolVersion: 5 as const,
  properties: { sessionExpiryInterval: 600 },
});
const payloads = (got: { payload: Buffer }[]) => got.map((m) => m.payload.toString());

describe('mqtt store-and-forward: subscriptions that overlap the topic (issue 13)', () => {
  it('an offline plant/# subscriber gets all 3,000 stored messages after reconnecting, throttled, in order, once', async () => {
    const N = 3000;
    const rate = 3000;
    const { gw } = await startGateway({
      mqtt: {
        allowAnonymous: true,
        maxQueuedMessages: 1000,
        storeAndForwardTopics: [telemetry({ maxDeliveryRatePerSecond: rate })],
      },
    });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, persistent('wild'));
      await sub.subscribeAsync('plant/#', { qos: 1 });
      await sub.endAsync();
      const pub = await connectClient(url, { clientId: 'sensor' });
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++)
        sends.push(pub.publishAsync(`plant/${i % 3}/telemetry`, String(i), { qos: 1 }));
      // Not in the store-and-forward topic: queued live, as on any broker.
      sends.push(pub.publishAsync('plant/1/status', 'up', { qos: 1 }));
      await Promise.all(sends);
      const started = Date.now();
      const again = await connectClient(url, persistent('wild'));
      const got = collect(again);
      await until(() => got.length >= N + 1, 20_000, `${N} stored messages and the live one`);
      const elapsed = Date.now() - started;
      await new Promise((r) => setTimeout(r, 200));
      const stored = got.filter((m) => m.topic.endsWith('/telemetry'));
      expect(stored.map((m) => Number(m.payload.toString()))).toEqual([...Array(N).keys()]);
      expect(got.filter((m) => m.topic === 'plant/1/status').map((m) => m.payload.toString())).toEqual([
        'up',
      ]);
      expect(got.length).toBe(N + 1);
      expect(elapsed).toBeGreaterThanOrEqual(((N - 1) / rate) * 1000 * 0.95);
      expect(gw.mqtt!.broker.stats().dropped['queue-full']).toBe(0);
      const [info] = gw.mqtt!.broker.listTopics();
      expect(info!.subscribers.map((s) => s.clientId)).toEqual(['wild']);
    } finally {
      await gw.close();
    }
  }, 40_000);

  it('a "#" subscriber is tracked on every store-and-forward topic, and a narrower filter gets only its matches', async () => {
    const { gw } = await startGateway({
      mqtt: {
        allowAnonymous: true,
        storeAndForwardTopics: [telemetry(), { topic: 'fleet/#', stream: 'fleet' }],
      },
    });
    try {
      const url = mqttUrl(gw);
      const all = await connectClient(url, persistent('all'));
      await all.subscribeAsync('#', { qos: 1 });
      await all.endAsync();
      const narrow = await connectClient(url, persistent('narrow'));
      await narrow.subscribeAsync('plant/a/telemetry', { qos: 1 });
      await narrow.endAsync();
      const pub = await connectClient(url);
      for (let i = 0; i < 30; i++)
        await pub.publishAsync(`plant/${'abc'[i % 3]}/telemetry`, String(i), { qos: 1 });
      for (let i = 0; i < 5; i++) await pub.publishAsync(`fleet/truck${i}`, `f${i}`, { qos: 1 });
      const allAgain = await connectClient(url, persistent('all'));
      const allGot = collect(allAgain);
      const narrowAgain = await connectClient(url, persistent('narrow'));
      const narrowGot = collect(narrowAgain);
      await until(() => allGot.length >= 35 && narrowGot.length >= 10, 5000, 'the stored messages');
      await new Promise((r) => setTimeout(r, 200));
      expect(payloads(allGot.filter((m) => m.topic.startsWith('plant/')))).toEqual(
        [...Array(30).keys()].map(String),
      );
      expect(payloads(allGot.filter((m) => m.topic.startsWith('fleet/')))).toEqual([
        'f0',
        'f1',
        'f2',
        'f3',
        'f4',
      ]);
      expect(allGot.length).toBe(35);
      expect(narrowGot.map((m) => m.topic)).toEqual(Array(10).fill('plant/a/telemetry'));
      expect(payloads(narrowGot)).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24, 27].map(String));
      // The narrow subscriber's position passed the messages not for it: it is not behind.
      await until(
        () =>
          gw
            .mqtt!.broker.listTopics()
            .find((t) => t.topic === 'plant/+/telemetry')!
            .subscribers.find((s) => s.clientId === 'narrow')!.behind === 0,
        2000,
        'the narrow subscriber at the end of the stream',
      );
    } finally {
      await gw.close();
    }
  });

  it('a client with two overlapping subscriptions gets one copy, at the higher QoS, with both identifiers', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [telemetry()] },
    });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, persistent('two'));
      const got = collect(sub);
      await sub.subscribeAsync('plant/#', { qos: 0, properties: { subscriptionIdentifier: 1 } });
      await sub.subscribeAsync('plant/+/telemetry', { qos: 1, properties: { subscriptionIdentifier: 2 } });
      const pub = await connectClient(url);
      await pub.publishAsync('plant/1/telemetry', 'once', { qos: 1 });
      await pub.publishAsync('plant/1/status', 'live', { qos: 1 });
      await until(() => got.length >= 2, 5000, 'both messages');
      await new Promise((r) => setTimeout(r, 200));
      expect(payloads(got).sort()).toEqual(['live', 'once']);
      const once = got.find((m) => m.payload.toString() === 'once')!;
      expect(once.qos).toBe(1);
      expect(once.properties?.subscriptionIdentifier).toEqual([1, 2]);
      // Unsubscribing one of them keeps the tracking (and the position); the last one ends it.
      await sub.unsubscribeAsync('plant/+/telemetry');
      await pub.publishAsync('plant/2/telemetry', 'still', { qos: 1 });
      await until(() => got.length === 3, 5000, 'through plant/# alone');
      expect(got[2]!.qos).toBe(0);
      expect(gw.mqtt!.broker.listTopics()[0]!.subscribers.map((s) => s.clientId)).toEqual(['two']);
      await sub.unsubscribeAsync('plant/#');
      expect(gw.mqtt!.broker.listTopics()[0]!.subscribers).toEqual([]);
    } finally {
      await gw.close();
    }
  });

  it('a restart restores the wildcard subscription and resumes after its last acknowledgement', async () => {
    const { gw, dir } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [telemetry()] },
    });
    const url = mqttUrl(gw);
    const sub = await connectClient(url, { clientId: 'dash', clean: false });
    const got = collect(sub);
    await sub.subscribeAsync('plant/#', { qos: 1 });
    const pub = await connectClient(url);
    for (let i = 0; i < 10; i++) await pub.publishAsync('plant/a/telemetry', String(i), { qos: 1 });
    await until(() => got.length === 10, 5000, 'first 10');
    await sub.endAsync();
    for (let i = 10; i < 20; i++) await pub.publishAsync('plant/b/telemetry', String(i), { qos: 1 });
    await gw.close();
    const gw2 = await restartGateway(dir);
    try {
      // A 3.1.1 persistent session: the client does not subscribe again.
      const again = await connectClient(mqttUrl(gw2), { clientId: 'dash', clean: false });
      const more = collect(again);
      await until(() => more.length === 10, 5000, 'the 10 published while offline');
      expect(payloads(more)).toEqual([...Array(10).keys()].map((i) => String(i + 10)));
      // The restored subscription is plant/#: live messages outside the topic arrive too.
      await (await connectClient(mqttUrl(gw2))).publishAsync('plant/b/status', 'live', { qos: 1 });
      await until(() => more.length === 11, 5000, 'a live message on plant/#');
    } finally {
      await gw2.close();
    }
  });

  it('shared subscriptions stay live only: one member per message, not tracked', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [telemetry()] },
    });
    try {
      const url = mqttUrl(gw);
      const a = await connectClient(url, { clientId: 'ga', protocolVersion: 5 });
      const b = await connectClient(url, { clientId: 'gb', protocolVersion: 5 });
      const gotA = collect(a);
      const gotB = collect(b);
      await a.subscribeAsync('$share/g/plant/#', { qos: 1 });
      await b.subscribeAsync('$share/g/plant/#', { qos: 1 });
      // b is also tracked through an ordinary subscription: that copy comes from the stream.
      await b.subscribeAsync('plant/+/telemetry', { qos: 1 });
      const pub = await connectClient(url);
      for (let i = 0; i < 6; i++) await pub.publishAsync('plant/1/telemetry', String(i), { qos: 1 });
      await until(() => gotA.length + gotB.length >= 12, 5000, 'the group copies and the tracked ones');
      await new Promise((r) => setTimeout(r, 200));
      expect(gotA.length + gotB.length).toBe(12);
      expect(gw.mqtt!.broker.listTopics()[0]!.subscribers.map((s) => s.clientId)).toEqual(['gb']);
    } finally {
      await gw.close();
    }
  });

  it('a topic created at runtime tracks the sessions whose subscriptions overlap it', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, persistent('early'));
      await sub.subscribeAsync('rt/#', { qos: 1 });
      const created = await fetch(`${gw.url}/v1/mqtt/topics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'rt/+/x', stream: 'rt', maxDeliveryRatePerSecond: 100_000 }),
      });
      expect(created.status).toBe(201);
      await sub.endAsync();
      const pub = await connectClient(url);
      for (let i = 0; i < 1500; i++) await pub.publishAsync('rt/a/x', String(i), { qos: 0 });
      await until(() => gw.ws.streamBounds('rt').lastSeq === 1500, 5000, 'stored');
      const again = await connectClient(url, persistent('early'));
      const got = collect(again);
      await until(() => got.length >= 1500, 10_000, 'all 1500 from the stream');
      expect(payloads(got)).toEqual([...Array(1500).keys()].map(String));
    } finally {
      await gw.close();
    }
  });

  it('reads subscriber files of earlier versions (no filters): the topic filter itself is restored', async () => {
    const { gw, dir } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [telemetry()] },
    });
    const pub = await connectClient(mqttUrl(gw));
    for (let i = 0; i < 6; i++) await pub.publishAsync('plant/a/telemetry', String(i), { qos: 1 });
    await gw.close();
    const file = join(dir, 'data', 'mqtt', 'subscribers', 'telemetry.json');
    // As an earlier version wrote it: positions only.
    await writeAtomicJson(nodeFileSystem, file, { old: { lastAcked: 3, qos: 1, missed: 0 } });
    const gw2 = await restartGateway(dir);
    try {
      const again = await connectClient(mqttUrl(gw2), { clientId: 'old', clean: false });
      const got = collect(again);
      await until(() => got.length === 3, 5000, 'the messages after seq 3');
      expect(payloads(got)).toEqual(['3', '4', '5']);
      // The client sends its last PUBACK after handing the message over: wait for the broker to have it.
      await until(
        async () => {
          const res = await fetch(`${gw2.url}/v1/mqtt/topics`);
          const { topics } = (await res.json()) as {
            topics: { subscribers: { clientId: string; lastAcknowledgedSeq: number }[] }[];
          };
          return topics[0]?.subscribers.find((s) => s.clientId === 'old')?.lastAcknowledgedSeq === 6;
        },
        5000,
        'the PUBACK of seq 6',
      );
      await gw2.close();
      // Written back with the filters, the fields earlier versions read kept.
      const saved = (await readAtomicJson(nodeFileSystem, file)) as Record<string, Record<string, unknown>>;
      expect(saved.old).toMatchObject({
        lastAcked: 6,
        qos: 1,
        missed: 0,
        filters: { 'plant/+/telemetry': 1 },
      });
    } finally {
      await gw2.close();
    }
  });

  it('new wildcard subscribers start per newSubscriberDeliveryMode, counted in the stream', async () => {
    const { gw } = await startGateway({
      mqtt: {
        allowAnonymous: true,
        storeAndForwardTopics: [
          telemetry({ newSubscriberDeliveryMode: 'StoredMessages', newSubscriberMaxStoredMessages: 5 }),
        ],
      },
    });
    try {
      const url = mqttUrl(gw);
      const pub = await connectClient(url);
      for (let i = 0; i < 12; i++)
        await pub.publishAsync(`plant/${'ab'[i % 2]}/telemetry`, String(i), { qos: 1 });
      const wide = await connectClient(url, { clientId: 'wide' });
      const wideGot = collect(wide);
      await wide.subscribeAsync('#', { qos: 1 });
      const narrow = await connectClient(url, { clientId: 'narrow' });
      const narrowGot = collect(narrow);
      await narrow.subscribeAsync('plant/a/telemetry', { qos: 1 });
      await until(() => wideGot.length >= 5 && narrowGot.length >= 2, 5000, 'the last 5 stored');
      await new Promise((r) => setTimeout(r, 200));
      expect(payloads(wideGot)).toEqual(['7', '8', '9', '10', '11']);
      expect(payloads(narrowGot)).toEqual(['8', '10']);
    } finally {
      await gw.close();
    }
  });
});
