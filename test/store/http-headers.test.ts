import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addHttpHeaders, httpHeaderName, httpHeaderValue } from '../../src/store/http-headers.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

describe('message headers as HTTP fields', () => {
  it('leaves what HTTP can carry alone and percent-encodes the rest as UTF-8', () => {
    expect(httpHeaderName('X-Trace')).toBe('x-trace');
    expect(httpHeaderName('My Prop(1)·')).toBe('my%20prop%281%29%c2%b7');
    expect(httpHeaderValue('application/json; q=50%')).toBe('application/json; q=50%');
    expect(httpHeaderValue('ü€\r\n')).toBe('%C3%BC%E2%82%AC%0D%0A');
    expect(addHttpHeaders({}, { Host: 'evil', 'keep-alive': '1', '': 'x', a: 'b' })).toEqual({ a: 'b' });
    expect(addHttpHeaders({}, { host: 'h' }, 'waystation-header-')).toEqual({
      'waystation-header-host': 'h',
    });
  });

  it('always yields a valid field name and value, and decodes back to a name and value without %', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.string({ unit: 'grapheme' }),
        (name, value) => {
          const n = httpHeaderName(name);
          const v = httpHeaderValue(value);
          expect(n).toMatch(TOKEN);
          expect(v).toMatch(FIELD_VALUE);
          if (!name.includes('%')) expect(decodeURIComponent(n)).toBe(name.toLowerCase());
          if (!value.includes('%')) expect(decodeURIComponent(v)).toBe(value);
        },
      ),
    );
  });
});
