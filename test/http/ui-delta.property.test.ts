/**
 * The live stream's deltas (src/admin/ui-delta.ts) applied by the page (ui/src/delta.ts): for
 * any sequence of views — routes and streams appearing, changing, vanishing and reordering,
 * fields becoming undefined — applying each delta, as it travels (JSON), to the first view
 * gives the last one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeDelta } from '../../src/admin/ui-delta.js';
import type { UiDelta as ServerDelta, UiSnapshot as ServerSnapshot } from '../../src/admin/ui-events.js';
import { applyDelta } from '../../ui/src/delta.js';
import type { UiDelta as PageDelta, UiSnapshot } from '../../ui/src/types.js';

const names = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const route = (name: string) =>
  fc.record({
    name: fc.constant(name),
    target: fc.constantFrom('crm', 'erp'),
    streams: fc.constant(['orders'] as readonly string[]),
    state: fc.constantFrom('forwarding', 'storing', 'draining', 'held' as const),
    cause: fc.constantFrom('self', 'group' as const),
    since: fc.nat(),
    lastError: fc.option(fc.string(), { nil: undefined }),
    inQueue: fc.nat(5),
    inFlight: fc.nat(2),
    usedBytes: fc.nat(),
    limitBytes: fc.option(fc.nat(), { nil: undefined }),
    forwarded: fc.nat(3),
    expired: fc.nat(1),
    pruned: fc.nat(1),
    purged: fc.nat(1),
    deadLettered: fc.nat(1),
    deadLetters: fc.nat(2),
  });
const stream = (name: string) =>
  fc.record({
    name: fc.constant(name),
    firstSeq: fc.nat(3),
    lastSeq: fc.nat(3),
    messages: fc.nat(3),
    bytes: fc.nat(3),
    routes: fc.subarray(['a', 'b', 'c']),
  });
const listOf = <T>(entry: (name: string) => fc.Arbitrary<T>) =>
  fc.uniqueArray(names, { maxLength: 5 }).chain((ns) => fc.tuple(...ns.map(entry)) as fc.Arbitrary<T[]>);
const view: fc.Arbitrary<UiSnapshot> = fc.record({
  at: fc.nat(),
  routes: listOf(route),
  streams: listOf(stream),
  totals: fc.record({
    inQueue: fc.nat(3),
    inFlight: fc.nat(3),
    usedBytes: fc.nat(3),
    limitBytes: fc.nat(3),
    deadLetters: fc.nat(3),
    forwarded: fc.nat(3),
    published: fc.nat(3),
  }),
});

const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('live view deltas', () => {
  it('applied to the first view in turn, give the last', () => {
    fc.assert(
      fc.property(fc.array(view, { minLength: 1, maxLength: 8 }), (views) => {
        let held = wire(views[0]!);
        for (let i = 1; i < views.length; i++) {
          const delta = wire(computeDelta(views[i - 1]!, views[i]!, `id-${i - 1}`));
          expect(delta.base).toBe(`id-${i - 1}`);
          held = applyDelta(held, delta);
        }
        expect(held).toStrictEqual(wire(views.at(-1)!));
      }),
      { numRuns: 500 },
    );
  });

  it('carries nothing but the time when nothing changed, and only the changed route', () => {
    const first = fc.sample(
      view.filter((v) => v.routes.length >= 2),
      { numRuns: 1, seed: 7 },
    )[0]!;
    expect(computeDelta(first, { ...first, at: first.at + 1000 }, 'x')).toEqual({
      base: 'x',
      at: first.at + 1000,
    });
    const changed = { ...first.routes[1]!, inQueue: first.routes[1]!.inQueue + 1 };
    const next = { ...first, routes: [first.routes[0]!, changed, ...first.routes.slice(2)] };
    expect(computeDelta(first, next, 'x')).toEqual({ base: 'x', at: first.at, routes: { set: [changed] } });
  });

  it("keeps the page's copy of the delta able to take what the gateway sends", () => {
    // A compile-time check, as test/http/ui-session.test.ts does for snapshots.
    const delta: (d: ServerDelta) => PageDelta = (d) => d;
    const snapshot: (s: ServerSnapshot) => UiSnapshot = (s) => s;
    expect([typeof delta, typeof snapshot]).toEqual(['function', 'function']);
  });
});
