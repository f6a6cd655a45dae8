import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { restartGateway, startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl } from '../support/mqtt.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

const topic = (over: Record<string, unknown> = {}) => ({
  topic: 'plant/+/temp',
  stream: 'temps',
  ...over,
});

describe('mqtt store-and-forward topics', () => {
  it('delivers everything a subscriber missed while offline, once, in order, at the configured rate', async () => {
    const N = 10_000;
    const rate = 5000;
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic({ maxDeliveryRatePerSecond: rate })] },
    });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, {
        clientId: 'dash',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      await sub.subscribeAsync('plant/+/temp', { qos: 1 });
      await sub.endAsync();
      const pub = await connectClient(url, { clientId: 'sensor' });
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) sends.push(pub.publishAsync(`plant/${i % 3}/temp`, String(i), { qos: 1 }));
      await Promise.all(sends);
      const started = Date.now();
      const again = await connectClient(url, {
        clientId: 'dash',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      const got = collect(again);
      await until(() => got.length >= N, 30_000, `${N} stored messages`);
      const elapsed = Date.now() - started;
      await new Promise((r) => setTimeout(r, 200));
      expect(got.length).toBe(N);
      expect(got.map((m) => Number(m.payload.toString()))).toEqual([...Array(N).keys()]);
      expect(got[5]!.topic).toBe('plant/2/temp');
      // The token bucket starts with one token: N messages need at least (N - 1) / rate seconds.
      expect(elapsed).toBeGreaterThanOrEqual(((N - 1) / rate) * 1000 * 0.95);
      // Then live: a new message arrives without waiting for the throttle.
      await pub.publishAsync('plant/9/temp', 'live', { qos: 1 });
      await until(() => got.length === N + 1, 5000, 'the live message');
    } finally {
      await gw.close();
    }
  }, 60_000);

  it('resumes after the last acknowledged message across a broker restart', async () => {
    const { gw, dir } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic()] },
    });
    const url = mqttUrl(gw);
    const sub = await connectClient(url, { clientId: 'dash', clean: false });
    const got = collect(sub);
    await sub.subscribeAsync('plant/+/temp', { qos: 1 });
    const pub = await connectClient(url, { clientId: 'sensor' });
    for (let i = 0; i < 20; i++) await pub.publishAsync('plant/a/temp', String(i), { qos: 1 });
    await until(() => got.length === 20, 5000, 'first 20');
    await sub.endAsync();
    for (let i = 20; i < 40; i++) await pub.publishAsync('plant/a/temp', String(i), { qos: 1 });
    await gw.close();
    const gw2 = await restartGateway(dir);
    try {
      // A 3.1.1 persistent session: the client does not subscribe again.
      const again = await connectClient(mqttUrl(gw2), { clientId: 'dash', clean: false });
      const more = collect(again);
      await until(() => more.length === 20, 5000, 'the 20 published while offline');
      expect(more.map((m) => Number(m.payload.toString()))).toEqual([...Array(20).keys()].map((i) => i + 20));
    } finally {
      await gw2.close();
    }
  });

  it('new subscribers: NewMessages, StoredMessages capped, all, or none', async () => {
    const { gw } = await startGateway({
      mqtt: {
        allowAnonymous: true,
        storeAndForwardTopics: [
          { topic: 'n/new', stream: 'n-new' },
          {
            topic: 'n/five',
            stream: 'n-five',
            newSubscriberDeliveryMode: 'StoredMessages',
            newSubscriberMaxStoredMessages: 5,
          },
          {
            topic: 'n/all',
            stream: 'n-all',
            newSubscriberDeliveryMode: 'StoredMessages',
            newSubscriberMaxStoredMessages: 'all',
          },
          {
            topic: 'n/none',
            stream: 'n-none',
            newSubscriberDeliveryMode: 'StoredMessages',
            newSubscriberMaxStoredMessages: 0,
          },
        ],
      },
    });
    try {
      const url = mqttUrl(gw);
      const pub = await connectClient(url);
      for (const t of ['n/new', 'n/five', 'n/all', 'n/none'])
        for (let i = 0; i < 12; i++) await pub.publishAsync(t, String(i), { qos: 1 });
      const sub = await connectClient(url, { clientId: 'newcomer' });
      const got = collect(sub);
      await sub.subscribeAsync(['n/new', 'n/five', 'n/all', 'n/none'], { qos: 1 });
      await until(() => got.length === 17, 5000, '5 + 12 stored messages');
      for (const t of ['n/new', 'n/five', 'n/all', 'n/none']) await pub.publishAsync(t, 'live', { qos: 1 });
      await until(() => got.length === 21, 5000, 'the live messages');
      const of = (t: string) => got.filter((m) => m.topic === t).map((m) => m.payload.toString());
      expect(of('n/new')).toEqual(['live']);
      expect(of('n/five')).toEqual(['7', '8', '9', '10', '11', 'live']);
      expect(of('n/all')).toEqual([...[...Array(12).keys()].map(String), 'live']);
      expect(of('n/none')).toEqual(['live']);
    } finally {
      await gw.close();
    }
  });

  it('is an ordinary stream: HTTP publishes reach MQTT subscribers, and runtime topics can be created and removed', async () => {
    const { gw, dir } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const created = await fetch(`${gw.url}/v1/mqtt/topics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          topic: 'cmd/#',
          stream: 'commands',
          newSubscriberDeliveryMode: 'StoredMessages',
        }),
      });
      expect(created.status).toBe(201);
      const dup = await fetch(`${gw.url}/v1/mqtt/topics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'cmd/#', stream: 'other' }),
      });
      expect(dup.status).toBe(409);
      const posted = await fetch(`${gw.url}/v1/streams/commands/messages`, {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          'waystation-header-mqtt-topic': 'cmd/pump/1',
          'waystation-header-x-origin': 'erp',
        },
        body: Buffer.from([0, 1, 2, 255]),
      });
      expect(posted.status).toBe(202);
      const sub = await connectClient(mqttUrl(gw), { clientId: 'pump', protocolVersion: 5 });
      const got = collect(sub);
      await sub.subscribeAsync('cmd/#', { qos: 1 });
      await until(() => got.length === 1, 5000, 'the HTTP-published message');
      expect(got[0]!.topic).toBe('cmd/pump/1');
      expect([...got[0]!.payload]).toEqual([0, 1, 2, 255]);
      expect(got[0]!.properties?.userProperties).toMatchObject({ 'x-origin': 'erp' });
      const listed = (await (await fetch(`${gw.url}/v1/mqtt/topics`)).json()) as {
        topics: { topic: string; subscribers: { clientId: string }[] }[];
      };
      expect(listed.topics.map((t) => [t.topic, t.subscribers.map((s) => s.clientId)])).toEqual([
        ['cmd/#', ['pump']],
      ]);
      const removed = await fetch(`${gw.url}/v1/mqtt/topics/${encodeURIComponent('cmd/#')}`, {
        method: 'DELETE',
      });
      expect(removed.status).toBe(204);
      expect(await readdir(join(dir, 'data', 'streams'))).not.toContain('commands');
      expect(await readdir(join(dir, 'data', 'mqtt', 'subscribers'))).toEqual([]);
      const gone = await fetch(`${gw.url}/v1/streams/commands/messages`, { method: 'POST', body: 'x' });
      expect(gone.status).toBe(404);
      // The subscription lives on as an ordinary one.
      await (await connectClient(mqttUrl(gw))).publishAsync('cmd/pump/2', 'live', { qos: 1 });
      await until(() => got.length === 2, 5000, 'the live message after removal');
    } finally {
      await gw.close();
    }
  });

  it('refuses a publish the stream cannot take: v5 reason 0x97, 3.1.1 disconnect', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic()] },
      targets: { sink: { type: 'null' } },
      routes: {
        out: {
          streams: ['temps'],
          target: 'sink',
          retention: { maxMessages: 2 },
          onFull: 'reject-new',
        },
      },
    });
    try {
      const url = mqttUrl(gw);
      await fetch(`${gw.url}/v1/routes/out/store`, { method: 'POST' });
      const v5 = await connectClient(url, { protocolVersion: 5 });
      await v5.publishAsync('plant/a/temp', '1', { qos: 1 });
      await v5.publishAsync('plant/a/temp', '2', { qos: 1 });
      await expect(v5.publishAsync('plant/a/temp', '3', { qos: 1 })).rejects.toThrow(/Quota exceeded|151/i);
      const v3 = await connectClient(url, { protocolVersion: 4 });
      const closed = new Promise<void>((r) => v3.once('close', () => r()));
      v3.publish('plant/a/temp', '4', { qos: 1 });
      await closed;
    } finally {
      await gw.close();
    }
  });
  it('is forwarded by routes like any stream, and kept for new subscribers after the route delivered it', async () => {
    const target = new ScriptedTarget();
    const { gw } = await startGateway(
      {
        mqtt: {
          allowAnonymous: true,
          storeAndForwardTopics: [
            topic({ newSubscriberDeliveryMode: 'StoredMessages', newSubscriberMaxStoredMessages: 'all' }),
          ],
        },
        targets: { erp: { type: 'null' } },
        routes: { out: { streams: ['temps'], target: 'erp' } },
      },
      { erp: target },
    );
    try {
      const pub = await connectClient(mqttUrl(gw), { protocolVersion: 5 });
      await pub.publishAsync('plant/7/temp', '21.5', {
        qos: 1,
        properties: { contentType: 'text/plain', userProperties: { unit: 'C' } },
      });
      await until(() => target.delivered.length === 1, 5000, 'the route delivery');
      expect(target.delivered[0]!.headers).toEqual({
        'mqtt-topic': 'plant/7/temp',
        'mqtt-qos': '1',
        'content-type': 'text/plain',
        unit: 'C',
      });
      // The log's collection runs every second; the topic's retention (forever) holds the message.
      await new Promise((r) => setTimeout(r, 1500));
      const sub = await connectClient(mqttUrl(gw), { protocolVersion: 5, clientId: 'late' });
      const got = collect(sub);
      await sub.subscribeAsync('plant/+/temp', { qos: 1 });
      await until(() => got.length === 1, 5000, 'the stored message');
      expect(got[0]).toMatchObject({
        topic: 'plant/7/temp',
        properties: { contentType: 'text/plain', userProperties: { unit: 'C' } },
      });
    } finally {
      await gw.close();
    }
  });
  it('a client that subscribes again on every reconnect gets each stored message once', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic()] } });
    try {
      const url = mqttUrl(gw);
      const first = await connectClient(url, { clientId: 'resub', clean: false });
      await first.subscribeAsync('plant/+/temp', { qos: 1 });
      await first.endAsync();
      const pub = await connectClient(url);
      for (let i = 0; i < 50; i++) await pub.publishAsync('plant/1/temp', String(i), { qos: 1 });
      // resubscribe: true makes MQTT.js send SUBSCRIBE again although the session is present.
      const again = await connectClient(url, { clientId: 'resub', clean: false, resubscribe: true });
      const got = collect(again);
      await again.subscribeAsync('plant/+/temp', { qos: 1 });
      await until(() => got.length >= 50, 5000, '50 stored messages');
      await new Promise((r) => setTimeout(r, 300));
      expect(got.map((m) => Number(m.payload.toString()))).toEqual([...Array(50).keys()]);
    } finally {
      await gw.close();
    }
  });
  it('skips (and counts) a stored message larger than an MQTT packet may be, without blocking the subscriber', async () => {
    const { gw } = await startGateway({
      storage: { blobThreshold: '16KiB' },
      mqtt: {
        allowAnonymous: true,
        maxPacketSize: '64KiB',
        storeAndForwardTopics: [
          {
            topic: 'big/#',
            stream: 'big',
            newSubscriberDeliveryMode: 'StoredMessages',
            newSubscriberMaxStoredMessages: 'all',
          },
        ],
      },
    });
    try {
      for (const body of [Buffer.alloc(200 * 1024, 1), Buffer.from('small')]) {
        const res = await fetch(`${gw.url}/v1/streams/big/messages`, { method: 'POST', body });
        expect(res.status).toBe(202);
      }
      const sub = await connectClient(mqttUrl(gw), { clientId: 'bigsub' });
      const got = collect(sub);
      await sub.subscribeAsync('big/#', { qos: 1 });
      await until(() => got.length === 1, 5000, 'the small message');
      expect(got[0]!.payload.toString()).toBe('small');
      expect(gw.mqtt!.broker.stats().dropped['too-large']).toBe(1);
      await until(
        () => gw.mqtt!.broker.listTopics()[0]!.subscribers[0]!.lastAcknowledgedSeq === 2,
        2000,
        'the position past both',
      );
    } finally {
      await gw.close();
    }
  });
  it('publishes stored together are acknowledged exactly when stored, also when a limit refuses some', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic()] },
      targets: { sink: { type: 'null' } },
      routes: {
        out: { streams: ['temps'], target: 'sink', retention: { maxMessages: 150 }, onFull: 'reject-new' },
      },
    });
    try {
      await fetch(`${gw.url}/v1/routes/out/store`, { method: 'POST' });
      const clients = await Promise.all(
        [1, 2, 3].map(() => connectClient(mqttUrl(gw), { protocolVersion: 5 })),
      );
      const outcomes = await Promise.all(
        clients.flatMap((c, k) =>
          Array.from({ length: 100 }, (_, i) =>
            c.publishAsync('plant/1/temp', `${k}-${i}`, { qos: 1 }).then(
              () => 'acked',
              (err: Error) => (/Quota exceeded/i.test(err.message) ? 'refused' : err.message),
            ),
          ),
        ),
      );
      const acked = outcomes.filter((o) => o === 'acked').length;
      expect(outcomes.filter((o) => o !== 'acked' && o !== 'refused')).toEqual([]);
      expect(acked).toBeGreaterThan(0);
      expect(acked).toBeLessThanOrEqual(150);
      expect(gw.ws.streams().find((s) => s.name === 'temps')!.messages).toBe(acked);
    } finally {
      await gw.close();
    }
  });
  it('refuses to remove a runtime topic whose stream a route reads, and keeps serving it', async () => {
    const { gw, dir } = await startGateway({ mqtt: { allowAnonymous: true } });
    const created = await fetch(`${gw.url}/v1/mqtt/topics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'rt/#', stream: 'rt' }),
    });
    expect(created.status).toBe(201);
    await gw.close();
    // The operator then routes the topic's stream somewhere.
    await writeFile(
      join(dir, 'waystation.yaml'),
      stringify({
        dataDir: './data',
        mqtt: { allowAnonymous: true },
        targets: { sink: { type: 'null' } },
        routes: { out: { streams: ['rt'], target: 'sink' } },
      }),
    );
    const gw2 = await restartGateway(dir);
    try {
      const sub = await connectClient(mqttUrl(gw2), { clientId: 'rt-sub' });
      const got = collect(sub);
      await sub.subscribeAsync('rt/#', { qos: 1 });
      const refused = await fetch(`${gw2.url}/v1/mqtt/topics/rt`, { method: 'DELETE' });
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('WS_ERR_STREAM_IN_USE');
      await (await connectClient(mqttUrl(gw2))).publishAsync('rt/a', 'still tracked', { qos: 1 });
      await until(() => got.length === 1, 5000, 'delivery through the topic');
      expect(gw2.mqtt!.broker.listTopics()[0]!.subscribers.map((s) => s.clientId)).toEqual(['rt-sub']);
    } finally {
      await gw2.close();
    }
  });
  it('a subscriber tracked on the topic gets one copy, also with an overlapping ordinary subscription', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, storeAndForwardTopics: [topic()] } });
    try {
      const sub = await connectClient(mqttUrl(gw), { clientId: 'both' });
      const got = collect(sub);
      await sub.subscribeAsync('plant/+/temp', { qos: 1 });
      await sub.subscribeAsync('#', { qos: 1 });
      const pub = await connectClient(mqttUrl(gw));
      await pub.publishAsync('plant/1/temp', 'once', { qos: 1 });
      await pub.publishAsync('other', 'live only', { qos: 1 });
      await until(() => got.length >= 2, 5000, 'both messages');
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((m) => m.payload.toString()).sort()).toEqual(['live only', 'once']);
    } finally {
      await gw.close();
    }
  });
});
