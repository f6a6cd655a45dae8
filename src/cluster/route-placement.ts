/**
 * Which node should deliver which route (issue 10: "routes spread across the live nodes rather
 * than piling onto one"). Rendezvous (highest-random-weight) hashing: every node ranks the live
 * nodes for a route by a hash of (route, node), so all nodes agree without talking, each node is
 * preferred for about 1/N of the routes, and when a node joins or leaves only the routes it is
 * (or was) preferred for change hands.
 *
 * Placement is a preference, never the safety mechanism: a route's lease (lease.ts, create-only
 * and compare-and-set) is what guarantees one owner. These rules only decide when a node
 * contends for a free lease and when an owner hands a route to the node preferred for it.
 */
import { createHash } from 'node:crypto';

function weight(route: string, node: string): bigint {
  const digest = createHash('sha256').update(route).update('\u0000').update(node).digest();
  return digest.readBigUInt64BE(0);
}

/** What placement hashes for a route: its group (a group's routes go to one node), or the route. */
export function placementKey(route: string, group?: string): string {
  return group === undefined ? `route:${route}` : `group:${group}`;
}

/** The live nodes in the order they are preferred for `route` (ties broken by node id). */
export function preferredOrder(route: string, liveNodes: readonly string[]): string[] {
  return [...new Set(liveNodes)]
    .map((node) => ({ node, w: weight(route, node) }))
    .sort((a, b) => (a.w === b.w ? (a.node < b.node ? -1 : 1) : a.w > b.w ? -1 : 1))
    .map((x) => x.node);
}

export interface PlacementView {
  /** This node. */
  self: string;
  /** Nodes seen alive now (self included). */
  liveNodes: readonly string[];
}

/**
 * Whether `self` should try to take a free lease of `route` now. The preferred node contends at
 * once; the node ranked k contends once the lease has stayed free for more than k consecutive
 * checks, so a dead or slow preferred node's routes are still taken, by the next in line first.
 */
export function shouldContend(route: string, view: PlacementView, freeChecks: number): boolean {
  const rank = preferredOrder(route, view.liveNodes).indexOf(view.self);
  if (rank < 0) return false;
  return rank === 0 || freeChecks > rank;
}

/**
 * Whether an owner should hand `route` over: another node is preferred for it and has been seen
 * alive for at least `settleChecks` consecutive checks (a node that just joined, or flaps, does
 * not pull routes around).
 */
export function shouldHandOver(
  route: string,
  view: PlacementView,
  aliveChecks: (node: string) => number,
  settleChecks = 3,
): boolean {
  const first = preferredOrder(route, view.liveNodes)[0];
  return first !== undefined && first !== view.self && aliveChecks(first) >= settleChecks;
}
