/**
 * Every route's event timeline for the dashboard (issue 11): its state changes and who set them,
 * the operator actions taken on it through the API (with the token's name, route-audit.ts), and the gateway's
 * starts and stops, newest last. Bounded: at most `perRoute` events per route, the oldest
 * dropped first.
 *
 * Kept across restarts in `<dataDir>/dashboard/route-timeline.state` (an atomic, checksummed
 * file), saved within `saveDelayMs` (5 s) of a change and at stop. A damaged file is moved aside with a
 * warning and the timeline starts empty (route-history.ts, loadStateFile). Events recorded before
 * the file is loaded (the engine restores route states while the gateway opens) follow the
 * loaded ones.
 */
import { dirname } from 'node:path';
import { z } from 'zod';
import type { StorageFileSystem } from '../log/index.js';
import { StateFile } from '../log/index.js';
import type { RouteStateName } from '../store/route-progress.js';
import { loadStateFile } from './dashboard-state.js';

const STATES = ['forwarding', 'storing', 'draining', 'held'] as const satisfies readonly RouteStateName[];

/** Who put a route into a state (SPEC: "who set it"). */
export const STATE_SETTERS = ['operator', 'its own failures', 'group peer'] as const;
export type StateSetter = (typeof STATE_SETTERS)[number];

const EventSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('state'),
    at: z.number(),
    from: z.enum(STATES),
    to: z.enum(STATES),
    by: z.enum(STATE_SETTERS).optional(),
    lastError: z.string().optional(),
  }),
  z.object({
    kind: z.literal('action'),
    at: z.number(),
    /** What the API did: `store`, `forward`, `purge`, `reset-counters`, `resubmit-dead-letters`, … (route-audit.ts). */
    action: z.string().max(200),
    /** The name of the token that acted (`(no auth)` without tokens). */
    by: z.string(),
    /** What the API answered: messages purged, dead letters resubmitted or deleted. */
    count: z.number().optional(),
    /** Purge of the oldest N only. */
    top: z.number().optional(),
  }),
  z.object({ kind: z.enum(['start', 'stop']), at: z.number() }),
]);
export type TimelineEvent = z.infer<typeof EventSchema>;
type NewEvent = TimelineEvent extends infer E ? (E extends TimelineEvent ? Omit<E, 'at'> : never) : never;

/** Events kept per route by default (and the most GET .../timeline answers). */
export const TIMELINE_PER_ROUTE = 200;

const FILE_VERSION = 1;
const TimelineFileSchema = z.object({
  version: z.literal(FILE_VERSION),
  routes: z.record(z.string(), z.array(EventSchema)),
});
type TimelineFile = z.infer<typeof TimelineFileSchema>;

/**
 * Who set a state: held on the route's own account is the operator's Store; storing on its own
 * account is its failures; either on a group's account is a peer. Other states name no one.
 */
export function stateSetter(to: RouteStateName, cause: 'self' | 'group'): StateSetter | undefined {
  if (to !== 'held' && to !== 'storing') return undefined;
  if (cause === 'group') return 'group peer';
  return to === 'held' ? 'operator' : 'its own failures';
}

export interface RouteTimelineOptions {
  /** Events kept per route. Default 200 (about 74 KB of memory when full). */
  perRoute?: number;
  /** A change is saved within this, ms: what a crash can lose. Default 5000. */
  saveDelayMs?: number;
  now?: () => number;
  onWarning: (message: string, err?: unknown) => void;
}

export class RouteTimeline {
  private readonly routes = new Map<string, TimelineEvent[]>();
  private file: StateFile<TimelineFile> | undefined;
  readonly perRoute: number;
  private readonly now: () => number;

  constructor(private readonly o: RouteTimelineOptions) {
    this.perRoute = o.perRoute ?? TIMELINE_PER_ROUTE;
    this.now = o.now ?? Date.now;
  }

  record(route: string, event: NewEvent): void {
    let events = this.routes.get(route);
    if (!events) {
      events = [];
      this.routes.set(route, events);
    }
    events.push({ ...event, at: this.now() } as TimelineEvent);
    if (events.length > this.perRoute) events.splice(0, events.length - this.perRoute);
    this.file?.changed();
  }

  /** The newest `limit` events of a route, newest first. */
  list(route: string, limit: number): TimelineEvent[] {
    return (this.routes.get(route) ?? []).slice(-limit).reverse();
  }

  /**
   * Loads the saved timeline of the routes in `routes` (those configured now; others' are
   * dropped), ahead of what was recorded meanwhile; from then on changes are saved.
   */
  async open(fs: StorageFileSystem, path: string, routes: readonly string[]): Promise<void> {
    await fs.mkdir(dirname(path));
    const keep = new Set(routes);
    await loadStateFile(fs, path, this.o.onWarning, (content) => {
      const file = TimelineFileSchema.parse(content);
      for (const [name, saved] of Object.entries(file.routes)) {
        if (!keep.has(name)) continue;
        const merged = [...saved, ...(this.routes.get(name) ?? [])];
        this.routes.set(name, merged.slice(-this.perRoute));
      }
    });
    for (const name of this.routes.keys()) if (!keep.has(name)) this.routes.delete(name);
    this.file = new StateFile(
      path,
      () => ({ version: FILE_VERSION, routes: Object.fromEntries(this.routes) }),
      (err) => this.o.onWarning(`could not save the dashboard's route timeline to ${path}`, err),
      this.o.saveDelayMs ?? 5000,
      fs,
    );
    this.file.changed();
  }

  /** Saves now if anything changed (at stop). */
  async flush(): Promise<void> {
    // A failure was already reported through the file's onError.
    await this.file?.flush().catch(() => {});
  }
}
