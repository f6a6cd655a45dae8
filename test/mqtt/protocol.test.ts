import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl, rawClient } from '../support/mqtt.js';
import { until } from '../support/wait.js';

describe('mqtt broker: protocol robustness', () => {
  it('answers a QoS 1 publish with the four-byte PUBACK in 3.1.1 and 5, and a refusal with its reason code', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, anonymous: { publish: ['ok/#'] } },
    });
    try {
      const url = mqttUrl(gw);
      for (const version of [4, 5] as const) {
        const c = await rawClient(url, version);
        const raw: Buffer[] = [];
        c.socket.on('data', (b: Buffer) => raw.push(b));
        c.connect(`ack-${version}`);
        await until(() => c.packets.length === 1, 2000, 'CONNACK');
        raw.length = 0;
        c.send({
          cmd: 'publish',
          topic: 'ok/1',
          payload: 'x',
          qos: 1,
          retain: false,
          dup: false,
          messageId: 513,
        });
        await until(() => c.packets.length === 2, 2000, 'PUBACK');
        expect(Buffer.concat(raw)).toEqual(Buffer.from([0x40, 0x02, 0x02, 0x01]));
        expect(c.packets[1]).toMatchObject({ cmd: 'puback', messageId: 513 });
        if (version === 5) {
          c.send({
            cmd: 'publish',
            topic: 'no/1',
            payload: 'x',
            qos: 1,
            retain: false,
            dup: false,
            messageId: 7,
          });
          await until(() => c.packets.length === 3, 2000, 'the refusing PUBACK');
          expect(c.packets[2]).toMatchObject({ cmd: 'puback', messageId: 7, reasonCode: 0x87 });
        }
        c.socket.destroy();
      }
    } finally {
      await gw.close();
    }
  });

  it('closes a connection on malformed bytes, an oversized packet or a non-CONNECT first packet, and others carry on', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, maxPacketSize: '64KiB' } });
    try {
      const url = mqttUrl(gw);
      const bystander = await connectClient(url, { clientId: 'bystander' });
      const got = collect(bystander);
      await bystander.subscribeAsync('ok', { qos: 1 });

      const noConnect = await rawClient(url);
      noConnect.send({ cmd: 'pingreq' });
      await noConnect.closed;

      const malformed = await rawClient(url);
      malformed.connect('m1');
      await until(() => malformed.packets.length === 1, 2000, 'CONNACK');
      malformed.socket.write(Buffer.from([0x30, 0x02, 0xff, 0xff])); // topic length beyond the packet
      await malformed.closed;
      expect(malformed.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x81 });

      const big = await rawClient(url);
      big.connect('big');
      await until(() => big.packets.length === 1, 2000, 'CONNACK');
      // Only the fixed header of a 1 MiB PUBLISH: refused before the body is buffered.
      big.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x40]));
      await big.closed;
      expect(big.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x95 });

      const pub = await connectClient(url);
      await pub.publishAsync('ok', 'still here', { qos: 1 });
      await until(() => got.length === 1, 2000, 'the bystander message');
    } finally {
      await gw.close();
    }
  });

  it('survives random bytes (fuzzed parser path) and keeps serving', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, maxPacketSize: '64KiB' } });
    try {
      const url = mqttUrl(gw);
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 1, maxLength: 300 }),
          fc.boolean(),
          async (bytes, afterConnect) => {
            const c = await rawClient(url);
            if (afterConnect) c.connect(`fuzz-${randomBytes(4).toString('hex')}`);
            c.socket.write(bytes);
            // Either the broker closes the connection or it is still waiting for more bytes.
            await Promise.race([c.closed, new Promise((r) => setTimeout(r, 30))]);
            c.socket.destroy();
          },
        ),
        { numRuns: Number(process.env.WAYSTATION_PROPERTY_RUNS ?? 150), seed: envSeed() },
      );
      const c = await connectClient(url);
      const got = collect(c);
      await c.subscribeAsync('after/fuzz', { qos: 1 });
      await c.publishAsync('after/fuzz', 'fine', { qos: 1 });
      await until(() => got.length === 1, 2000, 'a message after the fuzzing');
    } finally {
      await gw.close();
    }
  });

  it('publishes a will when a client vanishes, with the v5 will delay, and not after a clean DISCONNECT', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const watcher = await connectClient(url);
      const got = collect(watcher);
      await watcher.subscribeAsync('status/#', { qos: 1 });
      const will = { topic: 'status/a', payload: Buffer.from('gone'), qos: 1 as const, retain: false };
      const a = await connectClient(url, { clientId: 'a', will });
      (a.stream as Socket).destroy();
      await until(() => got.length === 1, 3000, 'the will of a');
      const b = await connectClient(url, { clientId: 'b', will: { ...will, topic: 'status/b' } });
      await b.endAsync();
      const c = await connectClient(url, {
        clientId: 'c',
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 10 },
        will: { ...will, topic: 'status/c', properties: { willDelayInterval: 1 } },
      });
      const started = Date.now();
      (c.stream as Socket).destroy();
      await until(() => got.length === 2, 4000, 'the delayed will of c');
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(got.map((m) => m.topic)).toEqual(['status/a', 'status/c']);
    } finally {
      await gw.close();
    }
  });

  it('resends unacknowledged QoS 1 messages with DUP to a returning persistent session, queues while offline, and takes over a client ID', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, maxQueuedMessages: 3 } });
    try {
      const url = mqttUrl(gw);
      const raw = await rawClient(url, 4);
      raw.send({ cmd: 'connect', clientId: 'slow', protocolVersion: 4, clean: false, keepalive: 0 });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q', qos: 1 }] });
      await until(() => raw.packets.some((p) => p.cmd === 'suback'), 2000, 'SUBACK');
      const pub = await connectClient(url);
      await pub.publishAsync('q', 'first', { qos: 1 });
      await until(() => raw.packets.some((p) => p.cmd === 'publish'), 2000, 'the first PUBLISH');
      raw.socket.destroy(); // never acknowledged
      await until(() => gw.mqtt!.broker.stats().connections === 1, 2000, 'the broker to see the disconnect');
      for (const m of ['a', 'b', 'c', 'd']) await pub.publishAsync('q', m, { qos: 1 });
      const again = await rawClient(url, 4);
      again.send({ cmd: 'connect', clientId: 'slow', protocolVersion: 4, clean: false, keepalive: 0 });
      await until(
        () => again.packets.filter((p) => p.cmd === 'publish').length === 4,
        2000,
        'resent + queued',
      );
      const publishes = again.packets.filter((p) => p.cmd === 'publish');
      expect(again.packets[0]).toMatchObject({ cmd: 'connack', sessionPresent: true });
      expect(publishes.map((p) => [String(p.payload), p.dup])).toEqual([
        ['first', true],
        ['a', false],
        ['b', false],
        ['c', false],
      ]);
      const stats = gw.mqtt!.broker.stats();
      expect(stats.dropped['queue-full']).toBe(1);
      const taker = await rawClient(url, 4);
      taker.send({ cmd: 'connect', clientId: 'slow', protocolVersion: 4, clean: true, keepalive: 0 });
      await again.closed;
      await until(() => taker.packets.length === 1, 2000, 'CONNACK');
      expect(taker.packets[0]).toMatchObject({ cmd: 'connack', sessionPresent: false });
    } finally {
      await gw.close();
    }
  });

  it('shared subscriptions split messages; message expiry drops stale queued messages; topic aliases work', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const w1 = await connectClient(url, { protocolVersion: 5 });
      const w2 = await connectClient(url, { protocolVersion: 5 });
      const g1 = collect(w1);
      const g2 = collect(w2);
      await w1.subscribeAsync('$share/workers/jobs', { qos: 1 });
      await w2.subscribeAsync('$share/workers/jobs', { qos: 1 });
      const pub = await connectClient(url, { protocolVersion: 5 });
      for (let i = 0; i < 10; i++) await pub.publishAsync('jobs', String(i), { qos: 1 });
      await until(() => g1.length + g2.length === 10, 2000, '10 jobs');
      expect(g1.length).toBe(5);
      expect(g2.length).toBe(5);

      const off = await connectClient(url, {
        protocolVersion: 5,
        clientId: 'off',
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      });
      await off.subscribeAsync('exp', { qos: 1 });
      await off.endAsync();
      await pub.publishAsync('exp', 'stale', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publishAsync('exp', 'fresh', { qos: 1, properties: { messageExpiryInterval: 60 } });
      await new Promise((r) => setTimeout(r, 1100));
      const back = await connectClient(url, {
        protocolVersion: 5,
        clientId: 'off',
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      });
      const got = collect(back);
      await until(() => got.length === 1, 2000, 'the fresh message');
      expect(got[0]!.payload.toString()).toBe('fresh');
      expect(got[0]!.properties?.messageExpiryInterval).toBeLessThanOrEqual(60);

      const raw = await rawClient(url, 5);
      raw.connect('alias');
      raw.send({
        cmd: 'publish',
        topic: 'jobs',
        qos: 1,
        messageId: 7,
        dup: false,
        retain: false,
        payload: 'A',
        properties: { topicAlias: 3 },
      });
      raw.send({
        cmd: 'publish',
        topic: '',
        qos: 1,
        messageId: 8,
        dup: false,
        retain: false,
        payload: 'B',
        properties: { topicAlias: 3 },
      });
      await until(() => g1.length + g2.length === 12, 2000, 'two aliased publishes');
      raw.send({
        cmd: 'publish',
        topic: '',
        qos: 0,
        dup: false,
        retain: false,
        payload: 'C',
        properties: { topicAlias: 4 },
      });
      await raw.closed;
      expect(raw.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x82 });
    } finally {
      await gw.close();
    }
  });

  it('keep-alive closes a silent client (and publishes its will), sessions expire, Receive Maximum bounds what is in flight', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const watcher = await connectClient(url);
      const wills = collect(watcher);
      await watcher.subscribeAsync('gone/#', { qos: 1 });
      const silent = await rawClient(url, 5);
      silent.send({
        cmd: 'connect',
        clientId: 'silent',
        protocolVersion: 5,
        clean: true,
        keepalive: 1,
        will: { topic: 'gone/silent', payload: Buffer.from('bye'), qos: 1, retain: false },
      });
      const started = Date.now();
      await silent.closed;
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(silent.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8d });
      await until(() => wills.length === 1, 2000, 'the will of the silent client');

      const short = await connectClient(url, {
        protocolVersion: 5,
        clientId: 'short',
        clean: false,
        properties: { sessionExpiryInterval: 1 },
      });
      await short.subscribeAsync('x', { qos: 1 });
      await short.endAsync();
      await new Promise((r) => setTimeout(r, 1300));
      const back = await rawClient(url, 5);
      back.send({
        cmd: 'connect',
        clientId: 'short',
        protocolVersion: 5,
        clean: false,
        keepalive: 0,
        properties: { sessionExpiryInterval: 60 },
      });
      await until(() => back.packets.length === 1, 2000, 'CONNACK');
      expect(back.packets[0]).toMatchObject({ cmd: 'connack', sessionPresent: false });

      const narrow = await rawClient(url, 5);
      narrow.send({
        cmd: 'connect',
        clientId: 'narrow',
        protocolVersion: 5,
        clean: true,
        keepalive: 0,
        properties: { receiveMaximum: 2 },
      });
      narrow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flow', qos: 1 }] });
      await until(() => narrow.packets.some((p) => p.cmd === 'suback'), 2000, 'SUBACK');
      const pub = await connectClient(url);
      for (let i = 0; i < 5; i++) await pub.publishAsync('flow', String(i), { qos: 1 });
      const publishes = () =>
        narrow.packets.filter((p) => p.cmd === 'publish') as { messageId?: number; payload: Buffer }[];
      await until(() => publishes().length === 2, 2000, 'two in flight');
      await new Promise((r) => setTimeout(r, 200));
      expect(publishes().length).toBe(2);
      narrow.send({ cmd: 'puback', messageId: publishes()[0]!.messageId! });
      await until(() => publishes().length === 3, 2000, 'the third after one PUBACK');
      expect(publishes().map((p) => String(p.payload))).toEqual(['0', '1', '2']);
    } finally {
      await gw.close();
    }
  });

  it("a QoS 2 publish resent while the first is being stored gets the first one's answer, also a refusal", async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [{ topic: 'q2/#', stream: 'q2' }] },
      targets: { sink: { type: 'null' } },
      routes: {
        out: { streams: ['q2'], target: 'sink', retention: { maxMessages: 1 }, onFull: 'reject-new' },
      },
    });
    try {
      await fetch(`${gw.url}/v1/routes/out/store`, { method: 'POST' });
      await fetch(`${gw.url}/v1/streams/q2/messages`, { method: 'POST', body: 'fills the route' });
      const raw = await rawClient(mqttUrl(gw), 5);
      raw.connect('q2');
      const publish = (dup: boolean) =>
        raw.send({ cmd: 'publish', topic: 'q2/a', qos: 2, messageId: 9, dup, retain: false, payload: 'x' });
      publish(false);
      publish(true);
      await until(() => raw.packets.filter((p) => p.cmd === 'pubrec').length === 2, 2000, 'two PUBRECs');
      expect(
        raw.packets.filter((p) => p.cmd === 'pubrec').map((p) => (p as { reasonCode?: number }).reasonCode),
      ).toEqual([0x97, 0x97]);
      expect(gw.ws.streams().find((s) => s.name === 'q2')!.messages).toBe(1);
      // A QoS 0 publish that cannot be stored has nobody to tell: it is counted.
      raw.send({ cmd: 'publish', topic: 'q2/a', qos: 0, dup: false, retain: false, payload: 'y' });
      await until(() => gw.mqtt!.broker.stats().dropped['not-stored'] === 1, 2000, 'the count');
    } finally {
      await gw.close();
    }
  });
});

function envSeed(): number | undefined {
  const s = process.env.WAYSTATION_PROPERTY_SEED;
  return s === undefined ? undefined : Number(s);
}
