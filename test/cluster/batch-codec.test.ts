/** The batch format (src/cluster/batch-codec.ts): one fixture drives encode, decode and the round trip. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BatchRecord,
  decodeBatch,
  encodeBatch,
  encodedBatchBytes,
} from '../../src/cluster/batch-codec.js';

const fixture: { records: BatchRecord[]; hex: string } = {
  records: [
    { meta: { key: 'k', headers: {} }, payload: Buffer.from('ab') },
    { meta: { headers: {} }, payload: Buffer.alloc(0) },
  ],
  // version 1, count 2, meta {"k":"k"} (version byte 1 + 9 bytes), payload "ab", meta {}, no payload
  hex:
    '01' +
    '00000002' +
    '0000000a' +
    `01${Buffer.from('{"k":"k"}').toString('hex')}` +
    '00000002' +
    '6162' +
    '00000003' +
    `01${Buffer.from('{}').toString('hex')}` +
    '00000000',
};

describe('batch codec', () => {
  it('encodes the fixture byte for byte and decodes it back', () => {
    const body = encodeBatch(fixture.records);
    expect(body.toString('hex')).toBe(fixture.hex);
    const back = decodeBatch(Buffer.from(fixture.hex, 'hex'));
    expect(back.map((r) => [r.meta.key, r.payload.toString()])).toEqual([
      ['k', 'ab'],
      [undefined, ''],
    ]);
  });

  it('round-trips any records, and says their size before encoding', () => {
    const record = fc.record({
      key: fc.option(fc.string(), { nil: undefined }),
      headers: fc.dictionary(fc.string({ minLength: 1 }), fc.string()),
      expiresAt: fc.option(fc.nat(), { nil: undefined }),
      payload: fc.uint8Array({ maxLength: 64 }),
    });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (rs) => {
        const records = rs.map((r) => ({
          meta: { key: r.key, headers: r.headers, expiresAt: r.expiresAt },
          payload: r.payload,
        }));
        const body = encodeBatch(records);
        const back = decodeBatch(body);
        expect(back.map((b) => [b.meta.key, b.meta.headers, b.meta.expiresAt, [...b.payload]])).toEqual(
          records.map((r) => [r.meta.key, r.meta.headers, r.meta.expiresAt, [...r.payload]]),
        );
        const metaBytes =
          body.byteLength -
          encodedBatchBytes(records.map((r) => ({ metaBytes: 0, payloadBytes: r.payload.byteLength })));
        expect(metaBytes).toBeGreaterThan(0);
      }),
    );
  });

  it('refuses a body of another format version and a truncated one', () => {
    const body = encodeBatch(fixture.records);
    expect(() => decodeBatch(Buffer.concat([Buffer.from([2]), body.subarray(1)]))).toThrow(
      /format version 2/,
    );
    expect(() => decodeBatch(body.subarray(0, body.byteLength - 3))).toThrow();
  });
});
