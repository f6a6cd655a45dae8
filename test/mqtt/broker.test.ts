import { describe, expect, it } from 'vitest';
import { hashSecret } from '../../src/ingest/secret-hash.js';
import { restartGateway, startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl } from '../support/mqtt.js';
import { until } from '../support/wait.js';

describe('mqtt broker: core MQTT', () => {
  it('routes QoS 0/1/2 between clients, 3.1.1 and 5', async () => {
    const { gw } = await startGateway({ mqtt: { allowAnonymous: true } });
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, { protocolVersion: 5, clientId: 'sub' });
      const got = collect(sub);
      await sub.subscribeAsync('a/+/c', { qos: 2 });
      const pub = await connectClient(url, { protocolVersion: 4, clientId: 'pub' });
      await pub.publishAsync('a/b/c', 'q0', { qos: 0 });
      await pub.publishAsync('a/b/c', 'q1', { qos: 1 });
      await pub.publishAsync('a/b/c', 'q2', { qos: 2 });
      await pub.publishAsync('a/x', 'no', { qos: 1 });
      await until(() => got.length === 3, 5000, '3 messages');
      expect(got.map((m) => [m.payload.toString(), m.qos])).toEqual([
        ['q0', 0],
        ['q1', 1],
        ['q2', 2],
      ]);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/^waystation_mqtt_connections 2$/m);
      expect(metrics).toMatch(/^waystation_mqtt_messages_received_total 4$/m);
      expect(metrics).toMatch(/^waystation_mqtt_messages_sent_total 3$/m);
    } finally {
      await gw.close();
    }
  });

  it('keeps retained messages across a restart and clears them with an empty payload', async () => {
    const { gw, dir } = await startGateway({ mqtt: { allowAnonymous: true } });
    const pub = await connectClient(mqttUrl(gw));
    await pub.publishAsync('r/1', 'one', { qos: 1, retain: true });
    await pub.publishAsync('r/2', 'two', { qos: 1, retain: true });
    await pub.publishAsync('r/2', '', { qos: 1, retain: true });
    await gw.close();
    const gw2 = await restartGateway(dir);
    try {
      const sub = await connectClient(mqttUrl(gw2), { protocolVersion: 5 });
      const got = collect(sub);
      await sub.subscribeAsync('r/#', { qos: 1 });
      await until(() => got.length === 1, 5000, 'the retained message');
      await new Promise((r) => setTimeout(r, 100));
      expect(got.map((m) => [m.topic, m.payload.toString(), m.retain])).toEqual([['r/1', 'one', true]]);
    } finally {
      await gw2.close();
    }
  });

  it('refuses bad credentials and enforces ACLs with v5 reason codes', async () => {
    const { gw } = await startGateway({
      mqtt: {
        users: [
          { username: 'dev', passwordHash: hashSecret('pw'), publish: ['dev/#'], subscribe: ['dev/+/in'] },
        ],
      },
    });
    try {
      const url = mqttUrl(gw);
      await expect(
        connectClient(url, { protocolVersion: 5, username: 'dev', password: 'nope' }),
      ).rejects.toThrow(/Bad User Name or Password|bad user/i);
      await expect(connectClient(url, { protocolVersion: 5 })).rejects.toThrow(/Not authorized/i);
      const c = await connectClient(url, { protocolVersion: 5, username: 'dev', password: 'pw' });
      const granted = await c.subscribeAsync('dev/1/in', { qos: 1 });
      expect(granted.map((g) => g.qos)).toEqual([1]);
      await expect(c.subscribeAsync('dev/#')).rejects.toThrow(/Not authorized/);
      await expect(c.publishAsync('other/x', 'x', { qos: 1 })).rejects.toThrow(/Not authorized|135/i);
      await c.publishAsync('dev/x', 'x', { qos: 1 });
    } finally {
      await gw.close();
    }
  });
});
