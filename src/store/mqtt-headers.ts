/**
 * The message headers the MQTT broker interprets when it sends a stored message to the
 * subscribers of a store-and-forward topic (src/ingest/mqtt/message.ts maps them onto the
 * PUBLISH packet and its MQTT 5 properties), and what values it can send. Pure functions.
 *
 * Intake (`Waystation.publishBatch`: HTTP single and batch publishes, the library, MQTT) refuses
 * a message whose headers could not be sent, naming the header and the allowed values; the
 * broker checks again before sending (data written by older versions) and skips what fails.
 * It lives in the store layer so both the library and the broker import it.
 *
 * - `mqtt-topic`: a topic name [MQTT-4.7]: not empty, no wildcards, at most 65535 bytes.
 * - `mqtt-qos`: `0`, `1` or `2`.
 * - `mqtt-payload-format`: `0` (bytes) or `1` (UTF-8; an in-memory payload must then be UTF-8).
 * - `mqtt-response-topic`: a topic name [MQTT-3.3.2-14].
 * - `mqtt-correlation-data`: standard base64 with padding, at most 65535 bytes decoded.
 * - every header name and value (`content-type`, user properties): an MQTT UTF-8 string, i.e.
 *   no U+0000 [MQTT-1.5.4-2], no lone surrogate [MQTT-1.5.4-1], at most 65535 bytes.
 */
import { isUtf8 } from 'node:buffer';
import { InvalidHeaderError } from '../errors.js';

export const MqttHeader = {
  topic: 'mqtt-topic',
  qos: 'mqtt-qos',
  contentType: 'content-type',
  responseTopic: 'mqtt-response-topic',
  correlationData: 'mqtt-correlation-data',
  payloadFormat: 'mqtt-payload-format',
} as const;

const MAX_STRING_BYTES = 65535;
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is what MQTT forbids
const NUL_OR_LONE_SURROGATE = /\u0000|\p{Cs}/u;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Why a string cannot be an MQTT UTF-8 encoded string (§1.5.4), or undefined. */
export function mqttStringProblem(s: string): string | undefined {
  const bad = NUL_OR_LONE_SURROGATE.exec(s);
  if (bad) {
    return bad[0] === '\u0000'
      ? 'it must not contain U+0000 [MQTT-1.5.4-2]'
      : 'it must not contain a lone surrogate (ill-formed UTF-16) [MQTT-1.5.4-1]';
  }
  if (s.length > MAX_STRING_BYTES / 3 && Buffer.byteLength(s) > MAX_STRING_BYTES)
    return 'it is at most 65535 bytes of UTF-8';
  return undefined;
}

/** Why a topic name is invalid (MQTT §4.7), or undefined when it is valid. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'a topic name must not be empty [MQTT-4.7.3-1]';
  if (Buffer.byteLength(topic) > MAX_STRING_BYTES) return 'a topic name is at most 65535 bytes';
  if (topic.includes('+') || topic.includes('#'))
    return 'a topic name must not contain the wildcards "+" or "#" [MQTT-4.7.1-1]';
  if (topic.includes('\u0000')) return 'a topic name must not contain U+0000 [MQTT-4.7.3-2]';
  if (NUL_OR_LONE_SURROGATE.test(topic))
    return 'a topic name must not contain a lone surrogate (ill-formed UTF-16) [MQTT-1.5.4-1]';
  return undefined;
}

export interface HeaderProblem {
  header: string;
  value: string;
  /** What is wrong and what is allowed. */
  problem: string;
}

/**
 * The first header the broker could not send as it is, or undefined. `payload`, when in
 * memory, is checked against `mqtt-payload-format: 1`.
 */
export function mqttHeaderProblem(
  headers: Readonly<Record<string, string>>,
  payload?: Uint8Array | AsyncIterable<Uint8Array>,
): HeaderProblem | undefined {
  // for...in with hasOwn, not Object.entries: this runs for every message published (no array a call).
  for (const header in headers) {
    if (!Object.hasOwn(headers, header)) continue;
    const value = headers[header]!;
    const problem = valueProblem(header, value, payload) ?? nameProblem(header);
    if (problem !== undefined) return { header, value, problem };
  }
  return undefined;
}

/** Throws InvalidHeaderError (400) for the first header mqttHeaderProblem finds. */
export function assertMqttHeaders(
  headers: Readonly<Record<string, string>>,
  payload?: Uint8Array | AsyncIterable<Uint8Array>,
): void {
  const found = mqttHeaderProblem(headers, payload);
  if (found) throw new InvalidHeaderError(found.header, quoted(found.value), found.problem);
}

function nameProblem(header: string): string | undefined {
  const p = mqttStringProblem(header);
  return p && `the header name cannot be sent to MQTT subscribers: ${p}`;
}

function valueProblem(
  header: string,
  value: string,
  payload: Uint8Array | AsyncIterable<Uint8Array> | undefined,
): string | undefined {
  switch (header) {
    case MqttHeader.qos:
      return value === '0' || value === '1' || value === '2' ? undefined : 'the MQTT QoS must be 0, 1 or 2';
    case MqttHeader.topic: {
      const p = topicNameProblem(value);
      return p && `the MQTT topic must be a topic name: ${p}`;
    }
    case MqttHeader.responseTopic: {
      const p = topicNameProblem(value);
      return p && `the MQTT 5 Response Topic must be a topic name [MQTT-3.3.2-14]: ${p}`;
    }
    case MqttHeader.payloadFormat:
      if (value !== '0' && value !== '1')
        return 'the MQTT 5 Payload Format Indicator must be 0 (bytes) or 1 (UTF-8)';
      if (value === '1' && payload instanceof Uint8Array && !isUtf8(payload))
        return 'the payload is not valid UTF-8, as Payload Format Indicator 1 declares [MQTT-3.3.2-4]';
      return undefined;
    case MqttHeader.correlationData:
      if (!BASE64.test(value)) return 'the MQTT 5 Correlation Data must be standard base64 with padding';
      // Canonical base64 of 65535 bytes is 87380 characters.
      if (value.length > 87380) return 'the MQTT 5 Correlation Data is at most 65535 bytes';
      return undefined;
    default: {
      const p = mqttStringProblem(value);
      return p && `the value cannot be sent to MQTT subscribers: ${p}`;
    }
  }
}

/** A value for an error message: quoted, escaped, shortened. */
function quoted(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
