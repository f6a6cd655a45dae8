import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMeta, encodeMeta, type MessageMeta } from '../../src/store/message.js';

describe('message meta', () => {
  it('decodes to what was encoded, any key, headers, expiry and idempotency key', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 30 });
    fc.assert(
      fc.property(
        fc.record(
          {
            key: text,
            headers: fc.dictionary(text, text, { maxKeys: 5 }),
            expiresAt: fc.integer({ min: 0, max: 2 ** 52 }),
            idempotencyKey: text,
            fingerprint: fc.string({ maxLength: 22 }),
          },
          { requiredKeys: ['headers'] },
        ),
        (meta: MessageMeta) => {
          const bytes = encodeMeta(meta);
          expect(bytes[0]).toBe(1);
          const back = decodeMeta(bytes);
          expect(back.headers).toEqual(meta.headers);
          expect(back.key).toBe(meta.key);
          expect(back.expiresAt).toBe(meta.expiresAt);
          expect(back.idempotencyKey).toBe(meta.idempotencyKey);
          expect(back.fingerprint).toBe(meta.fingerprint);
        },
      ),
    );
  });
});
