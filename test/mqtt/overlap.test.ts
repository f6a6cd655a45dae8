import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filtersOverlap, topicMatches } from '../../src/ingest/mqtt/topic.js';

// Every topic name of 1 to 4 levels over a small alphabet (the filters use 3 at most, so a
// witness, if any, is among them); "c" is a level no filter names.
const LEVELS = ['a', 'b', 'c', '', '$s'];
const NAMES: string[] = [];
for (let depth = 1; depth <= 4; depth++) {
  const build = (prefix: string[]): void => {
    if (prefix.length === depth) {
      const name = prefix.join('/');
      if (name.length > 0) NAMES.push(name);
      return;
    }
    for (const l of LEVELS) if (prefix.length === 0 || !l.startsWith('$')) build([...prefix, l]);
  };
  build([]);
}

/** The reference: some name matches both. */
const bruteForce = (a: string, b: string) => NAMES.some((n) => topicMatches(a, n) && topicMatches(b, n));

const filterArb = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', '', '+', '$s'), { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => {
    const l = levels.map((x, i) => (i > 0 && x === '$s' ? 'a' : x));
    return (hash ? (l.length === 3 ? [...l.slice(0, 2), '#'] : [...l, '#']) : l).join('/');
  })
  .filter((f) => f.length > 0);

describe('filtersOverlap', () => {
  it('overlaps exactly when some topic name matches both filters (brute force)', () => {
    fc.assert(
      fc.property(filterArb, filterArb, (a, b) => {
        const expected = bruteForce(a, b);
        expect(filtersOverlap(a, b)).toBe(expected);
        expect(filtersOverlap(b, a)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('decides the issue\u2019s examples', () => {
    expect(filtersOverlap('plant/#', 'plant/+/telemetry')).toBe(true);
    expect(filtersOverlap('#', 'plant/+/telemetry')).toBe(true);
    expect(filtersOverlap('plant/a/telemetry', 'plant/+/telemetry')).toBe(true);
    expect(filtersOverlap('plant/+', 'plant/+/telemetry')).toBe(false);
    expect(filtersOverlap('other/#', 'plant/+/telemetry')).toBe(false);
    expect(filtersOverlap('plant/a/#', 'plant/+/telemetry')).toBe(true);
    expect(filtersOverlap('plant/#', 'plant')).toBe(true);
    // "$" names are matched by no leading wildcard [MQTT-4.7.2-1].
    expect(filtersOverlap('#', '$SYS/#')).toBe(false);
    expect(filtersOverlap('+/x', '$SYS/x')).toBe(false);
    expect(filtersOverlap('$SYS/+', '$SYS/#')).toBe(true);
  });
});
