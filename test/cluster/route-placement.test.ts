import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  placementKey,
  preferredOrder,
  shouldContend,
  shouldHandOver,
} from '../../src/cluster/route-placement.js';

const routes = Array.from({ length: 600 }, (_, i) => `route-${i}`);

describe('route placement', () => {
  it('ranks the same nodes the same way on every node, whatever order they are listed in', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.string(),
        (nodes, route) => {
          const reversed = [...nodes].reverse();
          expect(preferredOrder(route, reversed)).toEqual(preferredOrder(route, nodes));
          expect([...preferredOrder(route, nodes)].sort()).toEqual([...nodes].sort());
        },
      ),
    );
  });

  it('spreads routes evenly: each of 3 nodes is preferred for about a third', () => {
    const nodes = ['node-a', 'node-b', 'node-c'];
    const counts = new Map(nodes.map((n) => [n, 0]));
    for (const r of routes) {
      const first = preferredOrder(r, nodes)[0]!;
      counts.set(first, counts.get(first)! + 1);
    }
    for (const n of nodes) expect(counts.get(n)!).toBeGreaterThan(600 / 3 - 60);
  });

  it('moves only the routes of a node that leaves, and only routes to a node that joins', () => {
    const before = ['a', 'b', 'c'];
    const after = ['a', 'c'];
    const joined = ['a', 'b', 'c', 'd'];
    for (const r of routes) {
      const was = preferredOrder(r, before)[0]!;
      if (was !== 'b') expect(preferredOrder(r, after)[0]).toBe(was);
      const now = preferredOrder(r, joined)[0]!;
      if (now !== 'd') expect(now).toBe(was);
    }
  });

  it('lets the preferred node contend at once and the others in their rank order', () => {
    const live = ['a', 'b', 'c'];
    const route = routes[0]!;
    const [first, second, third] = preferredOrder(route, live);
    expect(shouldContend(route, { self: first!, liveNodes: live }, 0)).toBe(true);
    expect(shouldContend(route, { self: second!, liveNodes: live }, 1)).toBe(false);
    expect(shouldContend(route, { self: second!, liveNodes: live }, 2)).toBe(true);
    expect(shouldContend(route, { self: third!, liveNodes: live }, 2)).toBe(false);
    expect(shouldContend(route, { self: third!, liveNodes: live }, 3)).toBe(true);
    expect(shouldContend(route, { self: 'stranger', liveNodes: live }, 99)).toBe(false);
  });

  it('hands a route over only to its preferred node, once that node has been alive a while', () => {
    const live = ['a', 'b'];
    const route = routes.find((r) => preferredOrder(r, live)[0] === 'b')!;
    const view = { self: 'a', liveNodes: live };
    expect(shouldHandOver(route, view, () => 1)).toBe(false);
    expect(shouldHandOver(route, view, () => 3)).toBe(true);
    expect(shouldHandOver(route, { self: 'b', liveNodes: live }, () => 10)).toBe(false);
  });

  it("places a group's routes on one node (they store together), other routes apart", () => {
    const live = ['a', 'b', 'c', 'd'];
    const onNode = (route: string, group?: string) => preferredOrder(placementKey(route, group), live)[0];
    for (let g = 0; g < 20; g++) {
      const nodes = new Set(['r1', 'r2', 'r3'].map((r) => onNode(`${r}-${g}`, `group-${g}`)));
      expect(nodes.size).toBe(1);
    }
    // Without a group, routes spread: 60 routes over 4 nodes never all land on one.
    expect(new Set(Array.from({ length: 60 }, (_, i) => onNode(`r${i}`))).size).toBe(4);
  });
});
