import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterEach } from 'vitest';
import type { Gateway } from '../../src/gateway.js';

const clients: MqttClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
});

export function mqttUrl(gw: Gateway): string {
  if (!gw.mqtt) throw new Error('the gateway has no mqtt section');
  return gw.mqtt.addresses.tcp;
}

/** An MQTT.js client, connected (rejects on a refused CONNACK); ended after the test. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(client);
  // Messages can arrive in the same read as the CONNACK: collect from the start.
  received.set(client, listen(client));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
  return client;
}

export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  properties: Record<string, unknown> | undefined;
}

const received = new WeakMap<MqttClient, Received[]>();

/** The messages a client from connectClient has received so far (a live array). */
export function collect(client: MqttClient): Received[] {
  return received.get(client) ?? listen(client);
}

function listen(client: MqttClient): Received[] {
  const out: Received[] = [];
  client.on('message', (topic, payload, packet) =>
    out.push({ topic, payload, qos: packet.qos, retain: packet.retain, properties: packet.properties }),
  );
  return out;
}
