import type { Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl, type RawClient, rawClient } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const C3_28 = [0xc3, 0x28]; // "Ã" cut short: ill-formed
const SURROGATE = [0xed, 0xa0, 0x80]; // U+D800 encoded
const OVERLONG = [0xc0, 0xaf]; // "/" in two bytes

/** Packets after CONNECT whose `~~` (or `~~~`) becomes ill-formed bytes. */
const afterConnect: { name: string; packet: Packet; v5only?: boolean }[] = [
  {
    name: 'PUBLISH topic',
    packet: {
      cmd: 'publish',
      topic: 'plant/line1/~~',
      payload: 'x',
      qos: 1,
      messageId: 1,
      retain: false,
      dup: false,
    },
  },
  {
    name: 'SUBSCRIBE filter',
    packet: { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'plant/~~/#', qos: 1 }] },
  },
  { name: 'UNSUBSCRIBE filter', packet: { cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['plant/~~'] } },
  {
    name: 'user property value',
    v5only: true,
    packet: {
      cmd: 'publish',
      topic: 'plant/line1/t',
      payload: 'x',
      qos: 1,
      messageId: 4,
      retain: false,
      dup: false,
      properties: { userProperties: { unit: 'deg~~' } },
    },
  },
  {
    name: 'user property name',
    v5only: true,
    packet: {
      cmd: 'publish',
      topic: 'plant/line1/t',
      payload: 'x',
      qos: 1,
      messageId: 5,
      retain: false,
      dup: false,
      properties: { userProperties: { 'u~~': 'C' } },
    },
  },
  {
    name: 'content type',
    v5only: true,
    packet: {
      cmd: 'publish',
      topic: 'plant/line1/t',
      payload: 'x',
      qos: 1,
      messageId: 6,
      retain: false,
      dup: false,
      properties: { contentType: 'text/~~' },
    },
  },
  {
    name: 'response topic',
    v5only: true,
    packet: {
      cmd: 'publish',
      topic: 'plant/line1/t',
      payload: 'x',
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
      properties: { responseTopic: 'reply/~~' },
    },
  },
  {
    name: 'DISCONNECT reason string',
    v5only: true,
    packet: { cmd: 'disconnect', reasonCode: 0, properties: { reasonString: 'bye~~' } },
  },
];

const connects: { name: string; packet: (v: 4 | 5) => Packet }[] = [
  {
    name: 'client ID',
    packet: (v) => ({ cmd: 'connect', protocolVersion: v, clientId: 'dev~~', clean: true, keepalive: 0 }),
  },
  {
    name: 'username',
    packet: (v) => ({
      cmd: 'connect',
      protocolVersion: v,
      clientId: 'u',
      username: 'line~~',
      password: Buffer.from('pw'),
      clean: true,
      keepalive: 0,
    }),
  },
  {
    name: 'will topic',
    packet: (v) => ({
      cmd: 'connect',
      protocolVersion: v,
      clientId: 'w',
      clean: true,
      keepalive: 0,
      will: { topic: 'status/~~', payload: Buffer.from('gone'), qos: 0, retain: false },
    }),
  },
];

async function connected(url: string, v: 4 | 5, clientId: string): Promise<RawClient> {
  const c = await rawClient(url, v);
  c.connect(clientId);
  await until(() => c.packets.length === 1, 2000, 'CONNACK');
  return c;
}

describe('mqtt broker: UTF-8 strings [MQTT-1.5.4]', () => {
  it('closes the connection on ill-formed UTF-8 in any string field of any packet (v5: 0x81 first); nothing is stored or acknowledged', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [{ topic: 'plant/#', stream: 'plant' }] },
    });
    try {
      const url = mqttUrl(gw);
      const bystander = await connectClient(url, { clientId: 'bystander', protocolVersion: 5 });
      const seen = collect(bystander);
      await bystander.subscribeAsync('#', { qos: 1 });
      for (const v of [5, 4] as const) {
        for (const { name, packet, v5only } of afterConnect) {
          if (v5only && v === 4) continue;
          for (const bytes of [C3_28, OVERLONG, SURROGATE]) {
            const c = await connected(url, v, `c-${v}`);
            const marker = '~'.repeat(bytes.length);
            const p = JSON.parse(JSON.stringify(packet).replaceAll('~~', marker), (k, val) =>
              k === 'payload' ? Buffer.from(String(val)) : val,
            ) as Packet;
            c.sendPatched(p, marker, bytes);
            await c.closed;
            const label = `v${v} ${name} ${Buffer.from(bytes).toString('hex')}`;
            const answers = c.packets.slice(1).map((x) => x.cmd);
            if (v === 5)
              expect(c.packets.slice(1), label).toMatchObject([{ cmd: 'disconnect', reasonCode: 0x81 }]);
            else expect(answers, label).toEqual([]);
          }
        }
        for (const { name, packet } of connects) {
          const c = await rawClient(url, v);
          c.sendPatched(packet(v), '~~', C3_28);
          await c.closed;
          if (v === 5) expect(c.packets, name).toMatchObject([{ cmd: 'connack', reasonCode: 0x81 }]);
          else expect(c.packets, name).toEqual([]);
        }
      }
      const { firstSeq, lastSeq } = gw.ws.streamBounds('plant');
      expect(lastSeq - firstSeq + 1).toBe(0);
      expect(seen).toEqual([]);
    } finally {
      await gw.close();
    }
  }, 30_000);

  it('closes the connection on U+0000 in a string [MQTT-1.5.4-2], and accepts well-formed strings, U+FFFD included', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [{ topic: 'plant/#', stream: 'plant' }] },
    });
    try {
      const url = mqttUrl(gw);
      for (const v of [5, 4] as const) {
        const c = await connected(url, v, `nul-${v}`);
        c.send({
          cmd: 'publish',
          topic: 'plant/a\u0000b',
          payload: 'x',
          qos: 1,
          messageId: 1,
          retain: false,
          dup: false,
        });
        await c.closed;
        if (v === 5) expect(c.packets.slice(1)).toMatchObject([{ cmd: 'disconnect', reasonCode: 0x81 }]);
        else expect(c.packets.slice(1)).toEqual([]);
      }
      const v5 = await connected(url, 5, 'nul-prop');
      v5.send({
        cmd: 'publish',
        topic: 'plant/x',
        payload: 'x',
        qos: 1,
        messageId: 1,
        retain: false,
        dup: false,
        properties: { userProperties: { unit: 'a\u0000' } },
      });
      await v5.closed;
      expect(v5.packets.slice(1)).toMatchObject([{ cmd: 'disconnect', reasonCode: 0x81 }]);
      expect(gw.ws.streamBounds('plant').lastSeq).toBe(gw.ws.streamBounds('plant').firstSeq - 1);

      const sub = await connectClient(url, { protocolVersion: 5, clientId: 'sub' });
      const got = collect(sub);
      await sub.subscribeAsync('plant/#', { qos: 1 });
      const pub = await connectClient(url, { protocolVersion: 5 });
      await pub.publishAsync('plant/\uFFFD/\u{1F600}/\uFEFFé', 'ok', {
        qos: 1,
        properties: { userProperties: { unité: '\uFFFD°C' }, contentType: 'text/plain; charset=utf-8' },
      });
      await until(() => got.length === 1, 5000, 'the well-formed message');
      expect(got[0]).toMatchObject({
        topic: 'plant/\uFFFD/\u{1F600}/\uFEFFé',
        properties: { userProperties: { unité: '\uFFFD°C' } },
      });
    } finally {
      await gw.close();
    }
  });
});
