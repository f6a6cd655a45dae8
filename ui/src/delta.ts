/**
 * Applies a `delta` event of the live stream to the view it was computed from (the gateway's
 * computeDelta in src/admin/ui-delta.ts): a new view, the old one untouched (Preact compares
 * references).
 */
import type { KeyedChanges, UiDelta, UiSnapshot } from './types.js';

function applyKeyed<T extends { name: string }>(
  list: readonly T[],
  changes: KeyedChanges<T> | undefined,
): T[] {
  if (!changes) return [...list];
  const removed = new Set(changes.remove ?? []);
  const byName = new Map(list.filter((e) => !removed.has(e.name)).map((e) => [e.name, e]));
  const order = changes.order ?? [...byName.keys()];
  for (const e of changes.set ?? []) {
    if (!byName.has(e.name) && !changes.order) order.push(e.name);
    byName.set(e.name, e);
  }
  return order.map((name) => {
    const e = byName.get(name);
    if (e === undefined) throw new Error(`the delta names ${name}, which the view does not hold`);
    return e;
  });
}

export function applyDelta(view: UiSnapshot, delta: UiDelta): UiSnapshot {
  return {
    at: delta.at,
    routes: applyKeyed(view.routes, delta.routes),
    streams: applyKeyed(view.streams, delta.streams),
    totals: { ...view.totals, ...delta.totals },
  };
}
