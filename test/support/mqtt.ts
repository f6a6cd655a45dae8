import { connect, type Socket } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
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

/** A raw TCP client speaking MQTT through mqtt-packet, for what MQTT.js will not send. */
export async function rawClient(
  url: string,
  protocolVersion: 4 | 5 = 5,
  options: { localAddress?: string } = {},
) {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect({ port: Number(port), host: hostname, localAddress: options.localAddress });
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j));
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion });
  parser.on('packet', (p: Packet) => packets.push(p));
  socket.on('data', (b) => parser.parse(b));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    packets,
    closed,
    send: (p: Packet) => socket.write(mqttPacket.generate(p, { protocolVersion })),
    /** Sends `p` with the first occurrence of the ASCII `marker` replaced by `bytes` (same length). */
    sendPatched: (p: Packet, marker: string, bytes: readonly number[]) =>
      socket.write(patch(mqttPacket.generate(p, { protocolVersion }), marker, bytes)),
    connect: (clientId: string) =>
      socket.write(
        mqttPacket.generate(
          { cmd: 'connect', clientId, protocolVersion, clean: true, keepalive: 0 },
          { protocolVersion },
        ),
      ),
  };
}

export type RawClient = Awaited<ReturnType<typeof rawClient>>;

/** `bytes` in place of `marker` in an encoded packet: raw bytes no string can produce (ill-formed UTF-8). */
export function patch(packet: Buffer, marker: string, bytes: readonly number[]): Buffer {
  const at = packet.indexOf(Buffer.from(marker, 'latin1'));
  if (at === -1 || marker.length !== bytes.length)
    throw new Error(`no ${marker} of ${bytes.length} bytes to patch`);
  const out = Buffer.from(packet);
  out.set(bytes, at);
  return out;
}

/**
 * Publishes numbered QoS 1 messages to `topic(n)` in batches of 50 in flight, as a real producer
 * would, until `stop()` is called or a publish fails (the broker was killed); `acked` is a live
 * list of the numbers the broker acknowledged.
 */
export function publishUntilStopped(
  client: MqttClient,
  topic: (n: number) => string,
): { acked: number[]; stop: () => void } {
  const acked: number[] = [];
  let stopped = false;
  void (async () => {
    for (let i = 0; !stopped; i++) {
      const batch = Array.from({ length: 50 }, (_, k) => i * 50 + k);
      await Promise.all(
        batch.map((n) => client.publishAsync(topic(n), String(n), { qos: 1 }).then(() => acked.push(n))),
      ).catch(() => {
        stopped = true;
      });
    }
  })();
  return {
    acked,
    stop: () => {
      stopped = true;
    },
  };
}
