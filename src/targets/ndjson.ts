/**
 * The NDJSON a batch becomes in HTTP batch mode and in the file target, one line per message:
 * `{"id","stream","seq","key","timestamp","headers","payload"|"payloadBase64"}`. Text payloads
 * (valid UTF-8 with a text or JSON content type) are kept readable; anything else is base64.
 * Payloads held in side files are read as a stream, one chunk at a time.
 *
 * The body is written straight into one Buffer: the base64 of a payload needs no JSON escaping
 * and goes in as Latin-1 (one byte a character), so the bulk of each line is neither scanned by
 * JSON.stringify nor encoded again from one large string.
 */
import { TextDecoder } from 'node:util';
import type { Delivery } from '../delivery/target.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const BASE64_TAIL = '"}\n';
const TEXT_TAIL = '}\n';

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

/** A line in two parts: JSON up to the payload (UTF-8), and the payload as it goes in the line. */
interface Line {
  head: string;
  headBytes: number;
  /** base64 (written as Latin-1, then `"}`), or a JSON string literal (UTF-8, then `}`). */
  payload: string;
  payloadBytes: number;
  base64: boolean;
}

/**
 * The line's fields up to the payload, without the closing brace: what JSON.stringify gives for
 * `{id, stream, seq, key, timestamp, headers}`, built without the object and its generic walk
 * (this runs once a message on the drain's hot path; the property test compares the two).
 */
function fieldsOf(d: Delivery): string {
  const key = d.key === undefined ? 'null' : JSON.stringify(d.key);
  let headers = '{}';
  for (const _ in d.headers) {
    headers = JSON.stringify(d.headers);
    break;
  }
  return `{"id":${JSON.stringify(d.id)},"stream":${JSON.stringify(d.stream)},"seq":${d.seq},"key":${key},"timestamp":${d.timestamp},"headers":${headers}`;
}

function line(d: Delivery, bytes: Buffer): Line {
  const open = fieldsOf(d);
  if (isTextType(d.headers['content-type'])) {
    let text: string | undefined;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      // Not valid UTF-8 after all: base64 below.
    }
    if (text !== undefined) {
      const head = `${open},"payload":`;
      const payload = JSON.stringify(text);
      return {
        head,
        headBytes: Buffer.byteLength(head),
        payload,
        payloadBytes: Buffer.byteLength(payload),
        base64: false,
      };
    }
  }
  const head = `${open},"payloadBase64":"`;
  const payload = bytes.toString('base64');
  return { head, headBytes: Buffer.byteLength(head), payload, payloadBytes: payload.length, base64: true };
}

/** The batch as NDJSON, every line ending in a newline. */
export async function ndjsonBatch(batch: readonly Delivery[]): Promise<Buffer> {
  const lines: Line[] = [];
  let total = 0;
  for (const d of batch) {
    const l = line(d, d.payload ?? (await payloadOf(d)));
    lines.push(l);
    total += l.headBytes + l.payloadBytes + (l.base64 ? BASE64_TAIL.length : TEXT_TAIL.length);
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const l of lines) {
    at += out.write(l.head, at, 'utf8');
    if (l.base64) {
      at += out.write(l.payload, at, 'latin1');
      at += out.write(BASE64_TAIL, at, 'latin1');
    } else {
      at += out.write(l.payload, at, 'utf8');
      at += out.write(TEXT_TAIL, at, 'latin1');
    }
  }
  return out;
}
