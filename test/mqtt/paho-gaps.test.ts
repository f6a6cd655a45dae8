/**
 * What the Eclipse Paho interoperability suite (client_test5.py, client_test.py) found missing
 * (issue 13): DISCONNECT 0x93 past the Receive Maximum, topic aliases from the broker, Server
 * Keep Alive, subscriptions refused by an ACL, and the will of a connection taken over.
 */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import type { ConfigError } from '../../src/errors.js';
import { MqttAuth } from '../../src/ingest/mqtt/auth.js';
import { OutgoingTopicAliases } from '../../src/ingest/mqtt/topic-aliases.js';
import { startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl, type RawClient, rawClient } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function publishes(c: RawClient): IPublishPacket[] {
  return c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish');
}

function count(c: RawClient, cmd: Packet['cmd']): number {
  return c.packets.filter((p) => p.cmd === cmd).length;
}

describe('mqtt broker: flow control (Receive Maximum)', () => {
  it('disconnects with 0x93 a v5 client with more QoS 1/2 publishes open than the announced Receive Maximum', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, receiveMaximum: 3 } });
    try {
      const c = await rawClient(mqttUrl(gw), 5);
      c.connect('greedy');
      await until(() => c.packets.length === 1, 2000, 'CONNACK');
      expect(c.packets[0]).toMatchObject({ cmd: 'connack', properties: { receiveMaximum: 3 } });
      const publish = (messageId: number, qos: 1 | 2, dup = false) =>
        c.send({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos, dup, retain: false, messageId });
      // Three QoS 2 flows open (PUBREC sent, no PUBREL yet): the quota is used up.
      for (const id of [1, 2, 3]) publish(id, 2);
      await until(() => count(c, 'pubrec') === 3, 2000, '3 PUBRECs');
      // A resend of an open one (DUP) is no new flow.
      publish(2, 2, true);
      await until(() => count(c, 'pubrec') === 4, 2000, 'the PUBREC of the resend');
      // PUBREL frees one place: one more fits.
      c.send({ cmd: 'pubrel', messageId: 1 });
      await until(() => count(c, 'pubcomp') === 1, 2000, 'PUBCOMP');
      publish(4, 2);
      await until(() => count(c, 'pubrec') === 5, 2000, 'the PUBREC of the 4th');
      await sleep(100);
      expect(c.packets.some((p) => p.cmd === 'disconnect')).toBe(false);
      // QoS 1 counts too: a fourth open publish is one too many [MQTT-3.3.4-7].
      publish(5, 1);
      await c.closed;
      expect(c.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x93 });
      expect(count(c, 'puback')).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('reads a 3.1.1 client (which has no Receive Maximum) more slowly instead: all its publishes are answered', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, receiveMaximum: 2 } });
    try {
      const c = await rawClient(mqttUrl(gw), 4);
      c.connect('eager');
      for (let id = 1; id <= 20; id++)
        c.send({
          cmd: 'publish',
          topic: 't',
          payload: Buffer.from('x'),
          qos: 1,
          dup: false,
          retain: false,
          messageId: id,
        });
      await until(() => count(c, 'puback') === 20, 3000, '20 PUBACKs');
      expect(c.socket.destroyed).toBe(false);
      c.socket.destroy();
    } finally {
      await gw.close();
    }
  });
});

describe('mqtt broker: topic aliases to the client', () => {
  async function subscriber(url: string, clientId: string, topicAliasMaximum?: number) {
    const c = await rawClient(url, 5);
    c.send({
      cmd: 'connect',
      clientId,
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      properties: topicAliasMaximum === undefined ? {} : { topicAliasMaximum },
    });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 1 }] });
    await until(() => c.packets.some((p) => p.cmd === 'suback'), 2000, 'SUBACK');
    return c;
  }

  it('sends an alias with the first publish on a topic and the alias alone after, up to the client maximum, per connection', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const sub = await subscriber(url, 'aliased', 2);
      const pub = await connectClient(url);
      for (const topic of ['a/1', 'a/1', 'a/2', 'a/1', 'a/3', 'a/2'])
        await pub.publishAsync(topic, topic, { qos: 0 });
      await until(() => publishes(sub).length === 6, 2000, '6 publishes');
      const seen = publishes(sub).map((p) => [p.topic, p.properties?.topicAlias, String(p.payload)]);
      expect(seen).toEqual([
        ['a/1', 1, 'a/1'],
        ['', 1, 'a/1'],
        ['a/2', 2, 'a/2'],
        ['', 1, 'a/1'],
        ['a/3', undefined, 'a/3'], // beyond the client's Topic Alias Maximum [MQTT-3.1.2-26]
        ['', 2, 'a/2'],
      ]);

      // QoS 1 and 2 too, with the same alias.
      await pub.publishAsync('a/1', 'q1', { qos: 1 });
      await pub.publishAsync('a/1', 'q2', { qos: 2 });
      await until(() => publishes(sub).length === 8, 2000, 'the QoS 1 and 2 publishes');
      expect(
        publishes(sub)
          .slice(6)
          .map((p) => [p.topic, p.properties?.topicAlias, p.qos]),
      ).toEqual([
        ['', 1, 1],
        ['', 1, 1],
      ]);

      // A new connection starts without aliases [MQTT-3.3.2-7].
      sub.socket.destroy();
      const again = await subscriber(url, 'aliased', 2);
      await pub.publishAsync('a/2', 'again', { qos: 0 });
      await until(() => publishes(again).length === 1, 2000, 'the publish after reconnecting');
      expect(publishes(again)[0]).toMatchObject({ topic: 'a/2', properties: { topicAlias: 1 } });
    } finally {
      await gw.close();
    }
  });

  it('sends no alias to a client that announced no Topic Alias Maximum, or 0 [MQTT-3.1.2-27]', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const none = await subscriber(url, 'none');
      const zero = await subscriber(url, 'zero', 0);
      const pub = await connectClient(url);
      for (const qos of [0, 1, 2] as const) await pub.publishAsync('a/1', 'x', { qos });
      await until(() => publishes(none).length === 3 && publishes(zero).length === 3, 2000, 'publishes');
      for (const p of [...publishes(none), ...publishes(zero)]) {
        expect(p.topic).toBe('a/1');
        expect(p.properties?.topicAlias).toBeUndefined();
      }
    } finally {
      await gw.close();
    }
  });

  it('MQTT.js resolves the aliases to the right topics', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, { protocolVersion: 5, properties: { topicAliasMaximum: 3 } });
      const got = collect(sub);
      await sub.subscribeAsync('a/#', { qos: 1 });
      const pub = await connectClient(url);
      const topics = ['a/1', 'a/2', 'a/1', 'a/3', 'a/4', 'a/2', 'a/4', 'a/1'];
      for (const t of topics) await pub.publishAsync(t, t, { qos: 1 });
      await until(() => got.length === topics.length, 2000, 'every publish');
      expect(got.map((m) => [m.topic, String(m.payload)])).toEqual(topics.map((t) => [t, t]));
    } finally {
      await gw.close();
    }
  });

  it('withdraws an alias whose publish was not sent (larger than the client accepts)', () => {
    const aliases = new OutgoingTopicAliases(2);
    const packet = (topic: string): IPublishPacket => ({
      cmd: 'publish',
      topic,
      payload: Buffer.alloc(0),
      qos: 0,
      dup: false,
      retain: false,
    });
    const first = aliases.apply(packet('big'));
    expect(first).toMatchObject({ topic: 'big', properties: { topicAlias: 1 } });
    aliases.unsent(first);
    // The client never learnt alias 1: the next publish on the topic names it again.
    expect(aliases.apply(packet('big'))).toMatchObject({ topic: 'big', properties: { topicAlias: 1 } });
    const known = aliases.apply(packet('big'));
    expect(known).toMatchObject({ topic: '', properties: { topicAlias: 1 } });
    aliases.unsent(known); // an alias the client knows stays
    expect(aliases.apply(packet('big'))).toMatchObject({ topic: '', properties: { topicAlias: 1 } });
    const original = packet('other');
    aliases.apply(original);
    expect(original.properties).toBeUndefined(); // the session's packet is never modified
  });
});

describe('mqtt broker: Server Keep Alive (mqtt.maxKeepAlive)', () => {
  async function connack(url: string, keepalive: number) {
    const c = await rawClient(url, 5);
    c.send({ cmd: 'connect', clientId: `ka-${keepalive}`, protocolVersion: 5, clean: true, keepalive });
    await until(() => c.packets.length === 1, 2000, 'CONNACK');
    c.socket.destroy();
    return c.packets[0] as Packet & { properties?: { serverKeepAlive?: number } };
  }

  it('tells a v5 client asking for more, or for none, to use at most maxKeepAlive', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, maxKeepAlive: '60s' } });
    try {
      const url = mqttUrl(gw);
      expect((await connack(url, 120)).properties?.serverKeepAlive).toBe(60);
      expect((await connack(url, 0)).properties?.serverKeepAlive).toBe(60);
      expect((await connack(url, 30)).properties?.serverKeepAlive).toBeUndefined();
      expect((await connack(url, 60)).properties?.serverKeepAlive).toBeUndefined();
    } finally {
      await gw.close();
    }
  });

  it('holds a v5 client to the Server Keep Alive and leaves a 3.1.1 client its own (it cannot be told)', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true, maxKeepAlive: '1s' } });
    try {
      const url = mqttUrl(gw);
      const v5 = await rawClient(url, 5);
      v5.send({ cmd: 'connect', clientId: 'v5', protocolVersion: 5, clean: true, keepalive: 0 });
      const v3 = await rawClient(url, 4);
      v3.send({ cmd: 'connect', clientId: 'v3', protocolVersion: 4, clean: true, keepalive: 0 });
      await v5.closed;
      expect(v5.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8d });
      await sleep(500);
      expect(v3.socket.destroyed).toBe(false);
      v3.send({ cmd: 'pingreq' });
      await until(() => v3.packets.some((p) => p.cmd === 'pingresp'), 2000, 'PINGRESP');
      v3.socket.destroy();
    } finally {
      await gw.close();
    }
  });

  it('refuses a maxKeepAlive that is not whole seconds (a bare 60 is 60 ms)', () => {
    const problem = (maxKeepAlive: unknown) => {
      try {
        parseConfig({ mqtt: { allowAnonymous: true, maxKeepAlive } });
        return undefined;
      } catch (err) {
        return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n');
      }
    };
    expect(problem(60)).toMatch(/^mqtt\.maxKeepAlive: .*write e\.g\. "60s"/);
    expect(problem('1500ms')).toMatch(/^mqtt\.maxKeepAlive/);
    expect(problem('65536s')).toMatch(/^mqtt\.maxKeepAlive/);
    expect(problem('60s')).toBeUndefined();
    expect(problem(60_000)).toBeUndefined();
    expect(problem(0)).toBeUndefined();
  });
});

describe('mqtt broker: subscriptions refused by the ACL (mqtt.anonymous, denySubscribe)', () => {
  const mqttConfig = {
    allowAnonymous: true,
    anonymous: { denySubscribe: ['test/nosubscribe', 'secret/#'], publish: ['#'] },
  };

  it('answers 0x87 (v5) and 0x80 (3.1.1) for a filter within a denied one, and grants the others', async () => {
    const { gw } = await startGateway({ mqtt: mqttConfig });
    try {
      const url = mqttUrl(gw);
      for (const protocolVersion of [5, 4] as const) {
        const c = await rawClient(url, protocolVersion);
        c.connect(`sub-${protocolVersion}`);
        c.send({
          cmd: 'subscribe',
          messageId: 7,
          subscriptions: [
            { topic: 'test/nosubscribe', qos: 2 },
            { topic: 'secret/+/x', qos: 1 },
            { topic: '$share/g/secret/a', qos: 1 },
            { topic: 'test/other', qos: 1 },
            { topic: '#', qos: 0 },
          ],
        });
        await until(() => c.packets.some((p) => p.cmd === 'suback'), 2000, 'SUBACK');
        const refused = protocolVersion === 5 ? 0x87 : 0x80;
        expect(c.packets.find((p) => p.cmd === 'suback')).toMatchObject({
          messageId: 7,
          granted: [refused, refused, refused, 1, 0],
        });
        c.socket.destroy();
      }
    } finally {
      await gw.close();
    }
  });

  it('answers 0x80 to MQTT 5 clients too with deniedSubscriptionReason: unspecified', async () => {
    const { gw } = await startGateway({ mqtt: { ...mqttConfig, deniedSubscriptionReason: 'unspecified' } });
    try {
      const c = await rawClient(mqttUrl(gw), 5);
      c.connect('sub-unspecified');
      c.send({
        cmd: 'subscribe',
        messageId: 3,
        subscriptions: [
          { topic: 'test/nosubscribe', qos: 1 },
          { topic: 'test/other', qos: 1 },
        ],
      });
      await until(() => c.packets.some((p) => p.cmd === 'suback'), 2000, 'SUBACK');
      expect(c.packets.find((p) => p.cmd === 'suback')).toMatchObject({ messageId: 3, granted: [0x80, 1] });
      c.socket.destroy();
    } finally {
      await gw.close();
    }
  });

  it('never delivers a denied topic through a broader subscription, live or retained', async () => {
    const { gw } = await startGateway({ mqtt: mqttConfig });
    try {
      const url = mqttUrl(gw);
      const pub = await connectClient(url);
      await pub.publishAsync('test/nosubscribe', 'retained secret', { qos: 1, retain: true });
      await pub.publishAsync('ok/retained', 'retained', { qos: 1, retain: true });
      const sub = await connectClient(url, { protocolVersion: 5 });
      const got = collect(sub);
      await sub.subscribeAsync('#', { qos: 1 });
      await pub.publishAsync('secret/a', 'live secret', { qos: 1 });
      await pub.publishAsync('ok/live', 'live', { qos: 1 });
      await until(() => got.length === 2, 2000, 'the allowed messages');
      await sleep(100);
      expect(got.map((m) => m.topic).sort()).toEqual(['ok/live', 'ok/retained']);
    } finally {
      await gw.close();
    }
  });

  it('limits what anonymous clients may publish, and refuses a bad filter in the ACL at start', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, anonymous: { publish: ['open/#'] } },
    });
    try {
      const c = await rawClient(mqttUrl(gw), 5);
      c.connect('limited');
      c.send({
        cmd: 'publish',
        topic: 'closed',
        payload: Buffer.from('x'),
        qos: 1,
        dup: false,
        retain: false,
        messageId: 1,
      });
      c.send({
        cmd: 'publish',
        topic: 'open/a',
        payload: Buffer.from('x'),
        qos: 1,
        dup: false,
        retain: false,
        messageId: 2,
      });
      await until(() => count(c, 'puback') === 2, 2000, 'PUBACKs');
      expect(c.packets.filter((p) => p.cmd === 'puback').map((p) => p.reasonCode)).toEqual([0x87, 0]);
      c.socket.destroy();
    } finally {
      await gw.close();
    }
    await expect(
      startGateway({ mqtt: { allowAnonymous: true, anonymous: { denySubscribe: ['a/#/b'] } } }),
    ).rejects.toThrow(/mqtt\.anonymous\.denySubscribe\[0\]/);
  });

  it("applies a user's denySubscribe like the anonymous one", () => {
    const user = {
      username: 'u',
      passwordHash: 'unused',
      publish: ['#'],
      subscribe: ['plant/#'],
      denySubscribe: ['plant/secret/#'],
    };
    const principal = { kind: 'user' as const, user };
    expect(MqttAuth.maySubscribe(principal, 'plant/+/temp')).toBe(true);
    expect(MqttAuth.maySubscribe(principal, 'plant/secret/x')).toBe(false);
    expect(MqttAuth.maySubscribe(principal, 'plant/#')).toBe(true); // broader: granted, withheld at delivery
    expect(MqttAuth.deniedTopics(principal)).toEqual(['plant/secret/#']);
    expect(MqttAuth.deniedTopics({ kind: 'anonymous', acl: undefined })).toBeUndefined();
  });
});

describe('mqtt broker: the will of a connection taken over [MQTT-3.1.4-3]', () => {
  const will = (topic: string, willDelayInterval?: number) => ({
    topic,
    payload: Buffer.from(`will of ${topic}`),
    qos: 1 as const,
    retain: false,
    properties: willDelayInterval === undefined ? {} : { willDelayInterval },
  });

  async function takeOver(
    url: string,
    clientId: string,
    first: { will: ReturnType<typeof will>; sessionExpiryInterval: number; protocolVersion?: 4 | 5 },
    second: { clean: boolean },
  ) {
    const protocolVersion = first.protocolVersion ?? 5;
    const old = await rawClient(url, protocolVersion);
    old.send({
      cmd: 'connect',
      clientId,
      protocolVersion,
      clean: protocolVersion === 4 ? first.sessionExpiryInterval === 0 : true,
      keepalive: 0,
      will: protocolVersion === 4 ? { ...first.will, properties: undefined } : first.will,
      properties: protocolVersion === 5 ? { sessionExpiryInterval: first.sessionExpiryInterval } : undefined,
    });
    await until(() => old.packets.length === 1, 2000, 'CONNACK of the first connection');
    const taker = await rawClient(url, protocolVersion);
    taker.send({
      cmd: 'connect',
      clientId,
      protocolVersion,
      clean: second.clean,
      keepalive: 0,
      properties: protocolVersion === 5 ? { sessionExpiryInterval: 60 } : undefined,
    });
    await old.closed;
    await until(() => taker.packets.length === 1, 2000, 'CONNACK of the taker');
    return { old, taker };
  }

  it('publishes it when due at once or when the session ends, not when the session goes on within the will delay', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const watcher = await connectClient(url);
      const got = collect(watcher);
      await watcher.subscribeAsync('will/#', { qos: 1 });
      const topics = () => got.map((m) => m.topic).sort();

      // Will Delay 0: the closed connection's will is due at once.
      const a = await takeOver(
        url,
        'a',
        { will: will('will/a'), sessionExpiryInterval: 60 },
        { clean: false },
      );
      expect(a.old.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8e });
      // A delayed will whose session ends with the takeover: Clean Start on the new connection…
      await takeOver(url, 'b', { will: will('will/b', 30), sessionExpiryInterval: 60 }, { clean: true });
      // …or Session Expiry 0 on the old one.
      await takeOver(url, 'c', { will: will('will/c', 30), sessionExpiryInterval: 0 }, { clean: false });
      // 3.1.1 has no will delay: published on takeover.
      await takeOver(
        url,
        'd',
        { will: will('will/d'), sessionExpiryInterval: 60, protocolVersion: 4 },
        { clean: false },
      );
      await until(() => got.length === 4, 2000, 'four wills');
      expect(topics()).toEqual(['will/a', 'will/b', 'will/c', 'will/d']);

      // A delayed will, the session going on: the new connection came within the delay [MQTT-3.1.3-9].
      const e = await takeOver(
        url,
        'e',
        { will: will('will/e', 1), sessionExpiryInterval: 60 },
        { clean: false },
      );
      await sleep(1500);
      expect(topics()).toEqual(['will/a', 'will/b', 'will/c', 'will/d']);
      // The taker had no will: its own going away publishes nothing.
      e.taker.socket.destroy();
      await sleep(200);
      expect(got).toHaveLength(4);
    } finally {
      await gw.close();
    }
  });

  it('publishes a pending delayed will at once when the client comes back with Clean Start (its session ends)', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const watcher = await connectClient(url);
      const got = collect(watcher);
      await watcher.subscribeAsync('will/#', { qos: 1 });
      for (const clean of [false, true]) {
        const clientId = `back-${clean}`;
        const c = await connectClient(url, {
          clientId,
          protocolVersion: 5,
          clean: true,
          properties: { sessionExpiryInterval: 60 },
          will: will(`will/${clientId}`, 30),
        });
        c.stream.destroy();
        await sleep(100);
        await connectClient(url, {
          clientId,
          protocolVersion: 5,
          clean,
          properties: { sessionExpiryInterval: 60 },
        });
      }
      await until(() => got.length === 1, 2000, 'the will of the clean comeback');
      await sleep(200);
      expect(got.map((m) => m.topic)).toEqual(['will/back-true']);
    } finally {
      await gw.close();
    }
  });
});
