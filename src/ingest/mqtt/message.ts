/**
 * An application message inside the broker, and how it maps to a stream message's headers
 * (SPEC §1: the topic, QoS and MQTT 5 properties are kept). User properties become plain
 * headers so that HTTP targets see them, and plain headers of HTTP-published messages become
 * user properties when MQTT subscribers receive them.
 */
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { MqttHeader } from '../../store/mqtt-headers.js';

export type PublishProperties = NonNullable<IPublishPacket['properties']>;

export interface BrokerMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** MQTT 5 properties as published (without topic alias and subscription identifiers). */
  properties: PublishProperties;
  /** Absolute expiry (ms since the epoch) from the Message Expiry Interval. */
  expiresAt: number | undefined;
}

/** The headers the broker interprets; their valid values: src/store/mqtt-headers.ts. */
export const Header = MqttHeader;

const RESERVED = new Set<string>([...Object.values(Header), 'idempotency-key']);

export function toHeaders(m: BrokerMessage): Record<string, string> {
  const h: Record<string, string> = { [Header.topic]: m.topic, [Header.qos]: String(m.qos) };
  const p = m.properties;
  if (p.contentType !== undefined) h[Header.contentType] = p.contentType;
  if (p.responseTopic !== undefined) h[Header.responseTopic] = p.responseTopic;
  if (p.correlationData !== undefined) h[Header.correlationData] = p.correlationData.toString('base64');
  if (p.payloadFormatIndicator) h[Header.payloadFormat] = '1';
  for (const [k, v] of Object.entries(p.userProperties ?? {})) {
    const name = k.toLowerCase();
    if (RESERVED.has(name)) continue;
    h[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return h;
}

/** The MQTT 5 properties a stored message's headers describe. */
export function propertiesFromHeaders(headers: Readonly<Record<string, string>>): PublishProperties {
  const p: PublishProperties = {};
  const user: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    switch (k) {
      case Header.topic:
      case Header.qos:
        break;
      case Header.contentType:
        p.contentType = v;
        break;
      case Header.responseTopic:
        p.responseTopic = v;
        break;
      case Header.correlationData:
        p.correlationData = Buffer.from(v, 'base64');
        break;
      case Header.payloadFormat:
        p.payloadFormatIndicator = v === '1';
        break;
      default:
        user[k] = v;
    }
  }
  if (Object.keys(user).length > 0) p.userProperties = user;
  return p;
}

/** The idempotency key a publisher sent as the MQTT 5 user property `idempotency-key`. */
export function idempotencyKeyOf(p: PublishProperties): string | undefined {
  for (const [k, v] of Object.entries(p.userProperties ?? {})) {
    if (k.toLowerCase() === 'idempotency-key') return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}
