import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterWithin } from '../../src/ingest/mqtt/auth.js';
import {
  parseShared,
  topicFilterProblem,
  topicMatches,
  topicNameProblem,
} from '../../src/ingest/mqtt/topic.js';

/** The model: a filter as a regular expression over topic names (MQTT 5.0 §4.7). */
function model(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && /^[+#]/.test(filter)) return false;
  const levels = filter
    .split('/')
    .map((l) => (l === '+' ? '[^/]*' : l === '#' ? '#' : l.replace(/[.*?^${}()|[\]\\]/g, '\\$&')));
  let re = levels.join('/');
  if (re.endsWith('/#')) re = `${re.slice(0, -2)}(/.*)?`;
  else if (re === '#') re = '.*';
  return new RegExp(`^${re}$`).test(topic);
}

const level = fc.constantFrom('a', 'b', '', '$x', 'sensor');
const topicArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
const filterArb = fc
  .tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'));

describe('mqtt topics', () => {
  it('matches like the spec examples', () => {
    expect(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1')).toBe(true);
    expect(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1/ranking')).toBe(true);
    expect(topicMatches('sport/#', 'sport')).toBe(true);
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking')).toBe(false);
    expect(topicMatches('+/+', '/finance')).toBe(true);
    expect(topicMatches('/+', '/finance')).toBe(true);
    expect(topicMatches('+', '/finance')).toBe(false);
    expect(topicMatches('#', '$SYS/monitor')).toBe(false);
    expect(topicMatches('$SYS/#', '$SYS/monitor')).toBe(true);
  });

  it('agrees with a regular-expression model on random filters and topics', () => {
    fc.assert(
      fc.property(filterArb, topicArb, (f, t) => topicMatches(f, t) === model(f, t)),
      { numRuns: 5000 },
    );
  });

  it('validates names, filters and shared subscriptions', () => {
    expect(topicNameProblem('a/+')).toMatch(/wildcards/);
    expect(topicNameProblem('')).toMatch(/empty/);
    expect(topicNameProblem('a/b')).toBeUndefined();
    expect(topicFilterProblem('a/#/b')).toMatch(/last/);
    expect(topicFilterProblem('a/b+')).toMatch(/whole level/);
    expect(topicFilterProblem('+/a/#')).toBeUndefined();
    expect(parseShared('$share/g/a/+')).toEqual({ group: 'g', filter: 'a/+' });
    expect(parseShared('a/b')).toBeUndefined();
    expect(() => parseShared('$share/g')).toThrow(/group/);
    expect(() => parseShared('$share/g/a/#/b')).toThrow(/last/);
  });

  it('ACL containment: a subscription is allowed only inside an allowed filter', () => {
    expect(filterWithin('#', 'a/+/c')).toBe(true);
    expect(filterWithin('a/+', 'a/b')).toBe(true);
    expect(filterWithin('a/+', 'a/+')).toBe(true);
    expect(filterWithin('a/+', 'a/#')).toBe(false);
    expect(filterWithin('a/b', 'a/+')).toBe(false);
    expect(filterWithin('a/#', 'a')).toBe(true);
    expect(filterWithin('#', '$SYS/x')).toBe(false);
    // Soundness: whatever the inner filter matches, the outer one matches too.
    fc.assert(
      fc.property(filterArb, filterArb, topicArb, (outer, inner, t) => {
        fc.pre(filterWithin(outer, inner) && topicMatches(inner, t));
        return topicMatches(outer, t);
      }),
      { numRuns: 500 },
    );
  });
});
