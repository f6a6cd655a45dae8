import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addHttpHeaders,
  decodeHttpHeader,
  ENCODED_HEADERS,
  encodedHeaderNames,
  httpHeaderName,
  httpHeaderValue,
} from '../../src/store/http-headers.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

describe('message headers as HTTP fields', () => {
  it('leaves what HTTP can carry alone and percent-encodes the rest as UTF-8', () => {
    expect(httpHeaderName('X-Trace')).toBe('x-trace');
    expect(httpHeaderName('My Prop(1)·')).toBe('my%20prop%281%29%c2%b7');
    // `%` in a name is encoded too, so `a b` and `a%20b` stay two fields.
    expect(httpHeaderName('a%20b')).toBe('a%2520b');
    // Latin-1 and a lone % go as they are (Node and undici send them as one byte each)...
    expect(httpHeaderValue('café; q=50%')).toBe('café; q=50%');
    // ...but once a value needs encoding, its % are encoded as well, so it decodes back.
    expect(httpHeaderValue('50% of 5 €\r\n')).toBe('50%25 of 5 %E2%82%AC%0D%0A');
    expect(addHttpHeaders({}, { Host: 'evil', 'keep-alive': '1', '': 'x', a: 'b' })).toEqual({ a: 'b' });
    expect(addHttpHeaders({}, { host: 'h' }, 'waystation-header-')).toEqual({
      'waystation-header-host': 'h',
    });
    const encoded: string[] = [];
    const out = addHttpHeaders({}, JSON.parse('{"__proto__":"p","ok":"fine","b c":"€"}'), 'x-', encoded);
    expect(Object.keys(out)).toEqual(['x-__proto__', 'x-ok', 'x-b%20c']);
    expect(encoded).toEqual(['x-b%20c']);
    const plain = addHttpHeaders({}, JSON.parse('{"__proto__":"p"}'));
    expect(Object.getOwnPropertyDescriptor(plain, '__proto__')?.value).toBe('p');
  });

  it('always yields a valid field name and value that decode back to the message header', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.string({ unit: 'grapheme' }),
        (name, value) => {
          const n = httpHeaderName(name);
          const v = httpHeaderValue(value);
          expect(n).toMatch(TOKEN);
          expect(v).toMatch(FIELD_VALUE);
          expect(decodeURIComponent(n)).toBe(name.toLowerCase());
          if (v !== value) expect(decodeURIComponent(v)).toBe(value);
        },
      ),
    );
  });

  it('round-trips any headers through the wire as a waystation target sends them and the intake reads them', () => {
    const PREFIX = 'waystation-header-';
    const text = fc.string({ unit: 'grapheme', maxLength: 12 });
    fc.assert(
      fc.property(
        fc.dictionary(
          text.filter((k) => k !== ''),
          text,
          { maxKeys: 6 },
        ),
        (headers) => {
          const encoded: string[] = [];
          const sent = addHttpHeaders({}, headers, PREFIX, encoded);
          if (encoded.length > 0) sent[ENCODED_HEADERS] = encoded.join(',');
          // The wire: names lower case, values trimmed of spaces and tabs at the ends (RFC 9110 §5.5).
          const listed = encodedHeaderNames(sent[ENCODED_HEADERS]);
          const back: Record<string, string> = {};
          for (const [field, raw] of Object.entries(sent)) {
            if (!field.startsWith(PREFIX)) continue;
            const value = raw.replace(/^[ \t]+|[ \t]+$/g, '');
            expect(value).toMatch(FIELD_VALUE);
            const name = field.slice(PREFIX.length);
            const [k, v] = listed.has(field)
              ? [decodeHttpHeader(name, field), decodeHttpHeader(value, field)]
              : [name, value];
            Object.defineProperty(back, k, {
              value: v,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          }
          const want: Record<string, string> = {};
          for (const [k, v] of Object.entries(headers))
            Object.defineProperty(want, k.toLowerCase(), {
              value: v,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          expect(back).toEqual(want);
        },
      ),
    );
  });

  it("keeps a message header named like the sender's own list out of the fields it sends", () => {
    const encoded: string[] = [];
    expect(addHttpHeaders({}, { [ENCODED_HEADERS]: 'content-type', a: '50%' }, '', encoded)).toEqual({
      a: '50%',
    });
    expect(encoded).toEqual([]);
    // An encoded name encodes its value too: the receiver decodes the field whole.
    expect(addHttpHeaders({}, { 'my prop': '50%' }, '', encoded)).toEqual({ 'my%20prop': '50%25' });
    expect(httpHeaderValue(' padded\t')).toBe('%20padded%09');
  });
});
