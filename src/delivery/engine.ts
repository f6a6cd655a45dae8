/**
 * The delivery engine: one RouteRunner per route, wired to the store and to targets. It tells
 * runners about new messages, coordinates groups (routes that store together), runs retention
 * sweeps and log garbage collection, answers receipts, and stops everything in order. It owns
 * the shared byte budgets (one per target with `maxBytesPerSecond`, one for the gateway's
 * `delivery.maxBytesPerSecond`), made only when such a limit is configured.
 */
import { UnknownRouteError, WaitTimeoutError } from '../errors.js';
import type { MessageStore } from '../store/backend.js';
import type { MessageState } from '../store/route-progress.js';
import { ByteBudget } from './byte-budget.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import type { RouteOptions } from './route-options.js';
import { type OverdueAttempt, RouteRunner } from './route-runner.js';
import type { RouteState } from './route-state.js';
import type { Target } from './target.js';

export interface EngineEvents {
  /** A route changed state (the gateway logs it and exports it as a metric). */
  stateChange?: (route: string, from: RouteState, to: RouteState) => void;
  /** One delivery attempt (a batch) of a route took `seconds`. */
  attempt?: (route: string, seconds: number) => void;
  /** An internal failure the engine survived (e.g. a progress save failed). */
  error?: (err: unknown, context: string) => void;
  /** The watchdog found a delivery attempt in flight past its route's timeout (should never happen). */
  overdue?: (attempt: OverdueAttempt) => void;
}

/**
 * Which routes this node delivers (cluster mode: a lease per route). Without it, every route
 * runs here. `start` calls `assign(route, owned)` whenever this node takes or loses a route, and
 * when the saved state of a route another node owns was read again; the engine then rebuilds the
 * route's runner from the store (and starts it if owned).
 */
export interface RouteOwnership {
  start(assign: (route: string, owned: boolean) => Promise<void>): Promise<void>;
  /** Whether this node may send for `route` right now; checked before every send and save. */
  maySend(route: string): boolean;
  /** Gives up every route (after the runners saved their progress). */
  stop(): Promise<void>;
}

export interface EngineOptions {
  store: MessageStore;
  routes: readonly Readonly<RouteOptions>[];
  /** Target instances by target name. */
  targets: ReadonlyMap<string, Target>;
  clock?: Clock;
  random?: () => number;
  events?: EngineEvents;
  progressSaveDelayMs?: number;
  /** How often the log is trimmed below what every route has finished with, ms. Default 1 000. */
  gcIntervalMs?: number;
  /** How often the watchdog looks for attempts in flight past their timeout, ms. Default 1 000. */
  watchdogIntervalMs?: number;
  /** Cluster mode: which routes run on this node. */
  ownership?: RouteOwnership;
}

export type Receipt = Record<string, MessageState>;

interface Waiter {
  stream: string;
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class DeliveryEngine {
  private readonly runners = new Map<string, RouteRunner>();
  private readonly byStream = new Map<string, RouteRunner[]>();
  private readonly clock: Clock;
  private readonly timers: TimerHandle[] = [];
  private readonly waiters = new Set<Waiter>();
  private running = false;
  private gcRunning = false;
  /** Cluster mode: the routes this node owns now. */
  private readonly owned = new Set<string>();
  private readonly assigning = new Map<string, Promise<void>>();
  /** Shared byte budgets: per target name, and the gateway's. */
  private readonly targetBudgets = new Map<string, ByteBudget>();
  private readonly gatewayBudget: ByteBudget | undefined;

  constructor(private readonly options: EngineOptions) {
    this.clock = options.clock ?? systemClock;
    // Routes carry the limits on their path; should they differ (library use), the smallest holds.
    const smallest = (values: (number | undefined)[]) => {
      const set = values.filter((v): v is number => v !== undefined && v > 0);
      return set.length > 0 ? Math.min(...set) : undefined;
    };
    const gateway = smallest(options.routes.map((r) => r.gatewayMaxBytesPerSecond));
    this.gatewayBudget =
      gateway === undefined
        ? undefined
        : new ByteBudget({ name: 'gateway', bytesPerSecond: gateway, clock: this.clock });
    for (const target of new Set(options.routes.map((r) => r.target))) {
      const rate = smallest(
        options.routes.filter((r) => r.target === target).map((r) => r.targetMaxBytesPerSecond),
      );
      if (rate !== undefined)
        this.targetBudgets.set(
          target,
          new ByteBudget({ name: `target ${target}`, bytesPerSecond: rate, clock: this.clock }),
        );
    }
    for (const route of options.routes) {
      if (!options.targets.has(route.target))
        throw new Error(`route ${route.name}: no target instance named ${route.target}`);
      const runner = this.makeRunner(route);
      this.runners.set(route.name, runner);
      for (const s of route.streams) {
        const list = this.byStream.get(s) ?? [];
        list.push(runner);
        this.byStream.set(s, list);
      }
    }
  }

  private makeRunner(route: Readonly<RouteOptions>): RouteRunner {
    const { ownership } = this.options;
    // Only the runner in place for an owned route may send or save: not a standby that an
    // event reaches while the route is being taken over.
    const mayDeliver = ownership
      ? () =>
          this.runners.get(route.name) === runner &&
          this.owned.has(route.name) &&
          ownership.maySend(route.name)
      : undefined;
    const byteBudgets = [this.targetBudgets.get(route.target), this.gatewayBudget].filter(
      (b): b is ByteBudget => b !== undefined,
    );
    const runner: RouteRunner = new RouteRunner({
      options: route,
      store: this.options.store,
      target: this.options.targets.get(route.target)!,
      clock: this.clock,
      random: this.options.random ?? Math.random,
      onStateChange: (r, previous) => this.onStateChange(r, previous),
      onSettled: (stream) => this.wakeWaiters(stream),
      onError: (err, context) => this.options.events?.error?.(err, context),
      onAttempt: (seconds) => this.options.events?.attempt?.(route.name, seconds),
      onOverdue: (attempt) => this.options.events?.overdue?.(attempt),
      progressSaveDelayMs: this.options.progressSaveDelayMs,
      mayDeliver,
      byteBudgets: byteBudgets.length > 0 ? byteBudgets : undefined,
    });
    return runner;
  }

  /** Whether the route runs on this node (always, unless cluster mode gave it to another). */
  private active(runner: RouteRunner): boolean {
    return this.options.ownership === undefined || this.owned.has(runner.name);
  }

  /** Whether this node delivers `route` now (always outside cluster mode). */
  owns(route: string): boolean {
    return this.options.ownership === undefined || this.owned.has(route);
  }

  async start(): Promise<void> {
    this.running = true;
    for (const target of new Set(this.options.targets.values())) await target.start?.();
    for (const runner of this.runners.values()) {
      if (this.active(runner)) runner.start();
      const name = runner.name;
      this.every(runner.options.cleanupIntervalMs, () => this.sweep(name));
    }
    this.every(this.options.gcIntervalMs ?? 1000, () => this.collectGarbage());
    // Its own timer, apart from the attempts' timers it checks on.
    this.every(this.options.watchdogIntervalMs ?? 1000, async () => {
      const now = this.clock.now();
      for (const runner of this.runners.values()) runner.watch(now);
    });
    await this.options.ownership?.start((route, owned) => this.assign(route, owned));
  }

  /**
   * Cluster mode: rebuilds a route's runner from what the store holds now (reloaded by the
   * ownership), stopping the old one first without saving; starts it when this node owns the route.
   */
  private assign(name: string, owned: boolean): Promise<void> {
    const previous = this.assigning.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      const old = this.route(name);
      if (owned) this.owned.add(name);
      else this.owned.delete(name);
      await old.abandon();
      const runner = this.makeRunner(old.options);
      this.runners.set(name, runner);
      for (const s of runner.options.streams) {
        const list = this.byStream.get(s)!;
        list[list.indexOf(old)] = runner;
      }
      if (owned && this.running && this.owned.has(name)) runner.start();
      for (const s of runner.options.streams) this.wakeWaiters(s);
    });
    this.assigning.set(
      name,
      next.catch(() => {}),
    );
    return next;
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const tick = () => {
      if (!this.running) return;
      void fn()
        .catch((err: unknown) => this.options.events?.error?.(err, 'periodic task'))
        .finally(() => {
          if (this.running) this.timers.push(this.clock.setTimeout(tick, ms));
        });
    };
    this.timers.push(this.clock.setTimeout(tick, ms));
  }

  private async sweep(name: string): Promise<void> {
    const runner = this.route(name);
    if (this.active(runner)) await runner.enforceRetention();
  }

  private async collectGarbage(): Promise<void> {
    if (this.gcRunning) return;
    this.gcRunning = true;
    try {
      await this.options.store.collectGarbage();
    } finally {
      this.gcRunning = false;
    }
  }

  route(name: string): RouteRunner {
    const r = this.runners.get(name);
    if (!r) throw new UnknownRouteError(name);
    return r;
  }

  routes(): RouteRunner[] {
    return [...this.runners.values()];
  }

  routesOf(stream: string): readonly RouteRunner[] {
    return this.byStream.get(stream) ?? [];
  }

  /**
   * Refuses (throws RouteFullError) if a reject-new route of the stream is at its limit;
   * otherwise reserves the room and returns the function that releases it once the append settled.
   */
  async admit(stream: string, count: number, bytes: number): Promise<() => void> {
    const releases: (() => void)[] = [];
    try {
      for (const runner of this.routesOf(stream)) releases.push(await runner.admit(stream, count, bytes));
    } catch (err) {
      for (const release of releases) release();
      throw err;
    }
    return () => {
      for (const release of releases) release();
    };
  }

  /** Messages were stored in `stream`: apply count/size limits and wake its routes. */
  published(stream: string): void {
    for (const runner of this.routesOf(stream)) {
      if (!this.active(runner)) continue;
      void runner
        .enforceLimits()
        .catch((err: unknown) => this.options.events?.error?.(err, `route ${runner.name}: retention`));
      runner.notify();
    }
  }

  // ------------------------------------------------------------------ groups

  private onStateChange(runner: RouteRunner, previous: RouteState): void {
    const next = runner.routeState;
    this.options.events?.stateChange?.(runner.name, previous, next);
    const group = runner.options.group;
    if (group === undefined || next.cause === 'group') return;
    const peers = this.routes().filter((r) => r !== runner && r.options.group === group);
    if (next.name === 'storing') for (const p of peers) p.handle({ type: 'groupStore' });
    else if (next.name === 'held') for (const p of peers) p.handle({ type: 'groupHold' });
    // When no member stores or is held on its own account any more, the whole group drains.
    const members = [runner, ...peers];
    const blocked = members.some(
      (r) =>
        (r.routeState.name === 'storing' || r.routeState.name === 'held') && r.routeState.cause === 'self',
    );
    if (!blocked) for (const p of peers) p.handle({ type: 'groupForward' });
  }

  // ------------------------------------------------------------------ receipts

  receipt(stream: string, seq: number): Receipt {
    const receipt: Receipt = {};
    for (const runner of this.routesOf(stream)) {
      const state = runner.stateOf(stream, seq);
      if (state !== undefined) receipt[runner.name] = state;
    }
    return receipt;
  }

  /**
   * Resolves with the receipt once every route has delivered the message (or it reached
   * another final state); rejects with WaitTimeoutError after `timeoutMs`.
   */
  async waitUntilSettled(stream: string, seq: number, id: string, timeoutMs: number): Promise<Receipt> {
    const settled = () => Object.values(this.receipt(stream, seq)).every((s) => s !== 'pending');
    if (settled()) return this.receipt(stream, seq);
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        stream,
        seq,
        reject: (err) => {
          timer.cancel();
          this.waiters.delete(waiter);
          reject(err);
        },
        resolve: () => {
          if (!settled()) return;
          timer.cancel();
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = this.clock.setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new WaitTimeoutError(id, timeoutMs));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
    return this.receipt(stream, seq);
  }

  /** Ends every wait for delivery with `err` (at shutdown). */
  rejectWaiters(err: Error): void {
    for (const w of [...this.waiters]) w.reject(err);
  }

  private wakeWaiters(stream: string): void {
    for (const w of [...this.waiters]) if (w.stream === stream) w.resolve();
  }

  // ------------------------------------------------------------------ lifecycle

  /** Stops dispatch, gives in-flight deliveries `graceMs` to finish, saves progress, stops targets. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    for (const t of this.timers.splice(0)) t.cancel();
    await Promise.allSettled(this.assigning.values());
    await Promise.all(this.routes().map((r) => r.stop(graceMs)));
    // Leases go only after the runners saved their progress.
    await this.options.ownership?.stop();
    for (const target of new Set(this.options.targets.values())) await target.stop?.();
  }
}
