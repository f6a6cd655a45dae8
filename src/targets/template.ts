/**
 * Names built per message for the destinations that need one (MQTT topic, AMQP routing key,
 * NATS subject, Redis stream, downstream Waystation stream): `{stream}`, `{key}`, `{seq}`,
 * `{id}` and `{header.<name>}`; a missing key or header expands to `_`.
 */
import type { Delivery } from '../delivery/target.js';

export type Template = (d: Delivery) => string;

export function compileTemplate(template: string): Template {
  const parts = template.split(/(\{[^}]+\})/).filter((p) => p !== '');
  const fns = parts.map((part): Template => {
    if (!part.startsWith('{')) return () => part;
    const name = part.slice(1, -1);
    if (name === 'stream') return (d) => d.stream;
    if (name === 'key') return (d) => d.key ?? '_';
    if (name === 'seq') return (d) => String(d.seq);
    if (name === 'id') return (d) => d.id;
    if (name.startsWith('header.')) {
      const header = name.slice('header.'.length).toLowerCase();
      return (d) => d.headers[header] ?? '_';
    }
    throw new Error(
      `unknown placeholder {${name}} in "${template}"; use {stream}, {key}, {seq}, {id} or {header.<name>}`,
    );
  });
  // Most templates are one part (`{stream}` or a fixed name): no array and join per message.
  if (fns.length === 1) return fns[0]!;
  if (fns.length === 0) return () => '';
  return (d) => {
    let out = '';
    for (const f of fns) out += f(d);
    return out;
  };
}

/** The payload as one buffer (targets whose protocols need the whole message). */
export async function payloadBytes(d: Delivery): Promise<Buffer> {
  if (d.payload) return d.payload;
  const chunks: Buffer[] = [];
  for await (const chunk of d.openPayload()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Hides credentials in a URL before it appears in a reason, a log line or a status. */
export function redactUrl(text: string): string {
  return text.replace(/(\w+:\/\/)([^:@/\s]+):([^@/\s]+)@/g, '$1$2:***@');
}
