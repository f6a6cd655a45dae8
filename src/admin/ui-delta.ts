/**
 * What changed between two views of the dashboard's live stream (issue 11): the `delta` event
 * that follows a snapshot. Pure; the page applies it with `applyDelta` (ui/src/delta.ts), and
 * test/http/ui-delta.property.test.ts checks that applying the deltas of any sequence of views
 * to its first view gives its last.
 *
 * Routes and streams are keyed by name and sent whole when anything about them changed (a busy
 * route changes its counters every second anyway); `order` only when the names' order is not
 * the base's with removals dropped and additions appended; totals field by field.
 */

/** The changes of one keyed list. */
export interface KeyedChanges<T extends { name: string }> {
  /** Entries added or changed, whole. */
  set?: T[];
  /** Names of entries gone. */
  remove?: string[];
  /** Every name in order, when it is not the base's order (removals dropped, additions appended). */
  order?: string[];
}

export interface ViewShape<R extends { name: string }, S extends { name: string }, T extends object> {
  at: number;
  routes: R[];
  streams: S[];
  totals: T;
}

export interface UiDeltaOf<R extends { name: string }, S extends { name: string }, T extends object> {
  /** The id of the event this delta applies to. */
  base: string;
  at: number;
  routes?: KeyedChanges<R>;
  streams?: KeyedChanges<S>;
  totals?: Partial<T>;
}

/** JSON of the objects a view shares between streams (the gathered routes), computed once each. */
const encoded = new WeakMap<object, string>();

function json(o: object): string {
  let s = encoded.get(o);
  if (s === undefined) {
    s = JSON.stringify(o);
    encoded.set(o, s);
  }
  return s;
}

function keyedChanges<T extends { name: string }>(
  from: readonly T[],
  to: readonly T[],
): KeyedChanges<T> | undefined {
  const before = new Map(from.map((e) => [e.name, e]));
  const after = new Set(to.map((e) => e.name));
  const set = to.filter((e) => {
    const old = before.get(e.name);
    return old === undefined || (old !== e && json(old) !== json(e));
  });
  const remove = from.filter((e) => !after.has(e.name)).map((e) => e.name);
  const natural = [
    ...from.filter((e) => after.has(e.name)).map((e) => e.name),
    ...to.filter((e) => !before.has(e.name)).map((e) => e.name),
  ];
  const reordered = natural.some((name, i) => to[i]!.name !== name);
  if (set.length === 0 && remove.length === 0 && !reordered) return undefined;
  const changes: KeyedChanges<T> = {};
  if (set.length > 0) changes.set = set;
  if (remove.length > 0) changes.remove = remove;
  if (reordered) changes.order = to.map((e) => e.name);
  return changes;
}

/** The delta from `from` (sent as event `base`) to `to`. */
export function computeDelta<R extends { name: string }, S extends { name: string }, T extends object>(
  from: ViewShape<R, S, T>,
  to: ViewShape<R, S, T>,
  base: string,
): UiDeltaOf<R, S, T> {
  const delta: UiDeltaOf<R, S, T> = { base, at: to.at };
  const routes = keyedChanges(from.routes, to.routes);
  if (routes) delta.routes = routes;
  const streams = keyedChanges(from.streams, to.streams);
  if (streams) delta.streams = streams;
  const totals: Partial<T> = {};
  let changed = false;
  for (const key of Object.keys(to.totals) as (keyof T)[]) {
    if (from.totals[key] !== to.totals[key]) {
      totals[key] = to.totals[key];
      changed = true;
    }
  }
  if (changed) delta.totals = totals;
  return delta;
}
