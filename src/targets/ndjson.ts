/**
 * The NDJSON line a message becomes in HTTP batch mode and in the file target:
 * `{"id","stream","seq","key","timestamp","headers","payload"|"payloadBase64"}`. Text payloads
 * (valid UTF-8 with a text or JSON content type) are kept readable; anything else is base64.
 * Payloads held in side files are read as a stream, one chunk at a time.
 */
import { TextDecoder } from 'node:util';
import type { Delivery } from '../delivery/target.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function isTextType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type.startsWith('text/') || type === 'application/json' || type.endsWith('+json');
}

async function payloadOf(d: Delivery): Promise<Buffer> {
  if (d.payload) return d.payload;
  const chunks: Buffer[] = [];
  for await (const chunk of d.openPayload()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** One NDJSON line, newline included. */
export async function ndjsonLine(d: Delivery): Promise<string> {
  const bytes = await payloadOf(d);
  const head = {
    id: d.id,
    stream: d.stream,
    seq: d.seq,
    key: d.key ?? null,
    timestamp: d.timestamp,
    headers: d.headers,
  };
  if (isTextType(d.headers['content-type'])) {
    try {
      return `${JSON.stringify({ ...head, payload: strictUtf8.decode(bytes) })}\n`;
    } catch {
      // Not valid UTF-8 after all: fall through to base64.
    }
  }
  return `${JSON.stringify({ ...head, payloadBase64: bytes.toString('base64') })}\n`;
}
