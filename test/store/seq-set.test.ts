import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeqSet } from '../../src/store/seq-set.js';

type Op =
  | { kind: 'add'; a: number; b: number }
  | { kind: 'delete'; a: number }
  | { kind: 'removeBelow'; a: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('add' as const),
    a: fc.integer({ min: 1, max: 60 }),
    b: fc.integer({ min: 0, max: 5 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), a: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant('removeBelow' as const), a: fc.integer({ min: 1, max: 60 }) }),
);

describe('SeqSet', () => {
  it('behaves like a plain set of numbers', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const set = new SeqSet();
        const model = new Set<number>();
        for (const op of ops) {
          if (op.kind === 'add') {
            set.addRange(op.a, op.a + op.b);
            for (let s = op.a; s <= op.a + op.b; s++) model.add(s);
          } else if (op.kind === 'delete') {
            set.delete(op.a);
            model.delete(op.a);
          } else {
            set.removeBelow(op.a);
            for (const s of [...model]) if (s < op.a) model.delete(s);
          }
        }
        for (let s = 0; s <= 70; s++) {
          expect(set.has(s)).toBe(model.has(s));
          let next = s;
          while (model.has(next)) next++;
          expect(set.nextMissing(s)).toBe(next);
          let prev = s;
          while (model.has(prev)) prev--;
          expect(set.prevMissing(s)).toBe(prev);
        }
        const gapMembers = set
          .gaps(3, 50)
          .flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
        expect(gapMembers).toEqual(Array.from({ length: 48 }, (_, i) => i + 3).filter((s) => !model.has(s)));
        expect(set.countIn(5, 40)).toBe([...model].filter((s) => s >= 5 && s <= 40).length);
        // Canonical: sorted, disjoint, never touching.
        const ranges = set.ranges();
        for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThan(ranges[i - 1]![1] + 1);
        expect(SeqSet.fromRanges(ranges).ranges()).toEqual(ranges);
        expect(set.first()).toBe(model.size ? Math.min(...model) : undefined);
      }),
      { numRuns: 500 },
    );
  });
});
