import mqtt, { type MqttClient } from 'mqtt';
import { describeTargetContract } from './contract.js';

const subscribers = new Map<string, { client: MqttClient; received: string[] }>();

describeTargetContract({
  name: 'mqtt',
  server: { name: 'Mosquitto', host: '127.0.0.1', port: 1883 },
  target: (port, ns) => ({
    type: 'mqtt',
    url: `mqtt://127.0.0.1:${port}`,
    topic: `${ns}/{stream}`,
    qos: 1,
    timeout: '2s',
  }),
  async setup(ns) {
    const client = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
    const received: string[] = [];
    client.on('message', (_topic, payload) => received.push(payload.toString()));
    await client.subscribeAsync(`${ns}/#`, { qos: 1 });
    subscribers.set(ns, { client, received });
  },
  async readBack(ns) {
    return [...subscribers.get(ns)!.received];
  },
  async cleanup(ns) {
    await subscribers.get(ns)?.client.endAsync();
    subscribers.delete(ns);
  },
  // QoS 1 is at-least-once.
  exactlyOnce: false,
  settleMs: 300,
});
