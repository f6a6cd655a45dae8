/**
 * How far down a stream's history must be kept (both backends' garbage collection): the lowest
 * non-final message of every route reading it, its lowest dead letter, and the stream's hold (a
 * store-and-forward topic's retention). Undefined when nothing bounds it: a stream no route reads
 * and without a hold keeps its history.
 */
import type { DeadLetterStore, RouteProgressStore } from './backend.js';

export function historyFloor(
  stream: string,
  progress: Iterable<[route: string, progress: RouteProgressStore]>,
  deadLetters: (route: string) => DeadLetterStore,
  hold: (() => number) | undefined,
): number | undefined {
  let keepFrom: number | undefined;
  for (const [route, p] of progress) {
    const sp = p.streams.get(stream);
    if (!sp) continue;
    const floor = Math.min(sp.floor(), deadLetters(route).minSeq(stream) ?? Number.POSITIVE_INFINITY);
    keepFrom = keepFrom === undefined ? floor : Math.min(keepFrom, floor);
  }
  if (hold) keepFrom = Math.min(keepFrom ?? Number.POSITIVE_INFINITY, hold());
  return keepFrom;
}
