import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/delivery/target.js';
import { ndjsonBatch } from '../../src/targets/ndjson.js';

/** What a line must say, built the plain way (JSON.stringify of the whole object). */
function expectedLine(d: Delivery, bytes: Buffer): unknown {
  const head = {
    id: d.id,
    stream: d.stream,
    seq: d.seq,
    key: d.key ?? null,
    timestamp: d.timestamp,
    headers: d.headers,
  };
  const type = d.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  const text =
    type !== undefined && (type.startsWith('text/') || type === 'application/json' || type.endsWith('+json'));
  if (text) {
    try {
      return { ...head, payload: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
    } catch {
      // base64 below
    }
  }
  return { ...head, payloadBase64: bytes.toString('base64') };
}

const contentType = fc.option(
  fc.constantFrom(
    'text/plain',
    'application/json',
    'application/ld+json; charset=utf-8',
    'Text/CSV',
    'image/png',
  ),
  { nil: undefined },
);
const payload = fc.oneof(
  fc.string({ unit: 'grapheme' }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
);
const delivery = fc
  .record({
    seq: fc.nat(),
    key: fc.option(fc.string({ unit: 'grapheme', maxLength: 20 }), { nil: undefined }),
    headers: fc.dictionary(
      fc.constantFrom('x-a', 'x-é', 'trace'),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
    ),
    contentType,
    payload,
    inMemory: fc.boolean(),
  })
  .map(
    ({ seq, key, headers, contentType, payload, inMemory }): Delivery => ({
      id: `inc-${seq}`,
      stream: 'orders',
      seq,
      key,
      headers: contentType === undefined ? headers : { ...headers, 'content-type': contentType },
      timestamp: 1_700_000_000_000 + seq,
      payloadBytes: payload.byteLength,
      payload: inMemory ? payload : undefined,
      openPayload: () => Readable.from([payload.subarray(0, 7), payload.subarray(7)]),
      attempt: 1,
    }),
  );

describe('NDJSON batch body (HTTP batch mode, file target)', () => {
  it('says line for line what JSON.stringify of each message says: text kept, the rest base64', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(delivery, { minLength: 1, maxLength: 12 }), async (batch) => {
        const body = await ndjsonBatch(batch);
        const text = body.toString('utf8');
        expect(text.endsWith('\n')).toBe(true);
        const lines = text.slice(0, -1).split('\n');
        expect(lines).toHaveLength(batch.length);
        for (const [i, d] of batch.entries()) {
          const bytes = d.payload ?? Buffer.concat(await Readable.from(d.openPayload()).toArray());
          expect(JSON.parse(lines[i]!)).toEqual(expectedLine(d, bytes));
        }
      }),
      { numRuns: 300 },
    );
  });
});
