/**
 * Runs the pure lease state machine of `lease.ts` for one route over a `LeaseKv`, with an
 * injectable monotonic clock and timers: one KV request in flight at a time, each bounded by
 * `requestTimeoutMs` (no answer in time counts as an error: the write may have committed, the
 * state machine then asks). `maySend()` reads the clock on every call, so a caller that checks it
 * right before each send never sends on a lapsed lease, even if a timer fired late.
 */
import {
  awaitingAnswer,
  fencingToken,
  initialLeaseState,
  type LeaseCommand,
  type LeaseEvent,
  type LeaseKv,
  type LeaseOptions,
  type LeaseState,
  maySend,
  type ResolvedLeaseOptions,
  resolveLeaseOptions,
  transition,
} from './lease.js';

/** Milliseconds from an arbitrary origin that never go backwards (not the wall clock). */
export interface MonotonicClock {
  now(): number;
}

export interface LeaseTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const performanceClock: MonotonicClock = { now: () => performance.now() };
const realTimers: LeaseTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface LeaseKeeperOptions extends LeaseOptions {
  /** Default: `performance.now()`. */
  clock?: MonotonicClock;
  timers?: LeaseTimers;
  /** Called whenever `maySend()` changes (also when a lease lapses on the clock). */
  onChange?: (maySend: boolean, fencingToken: number | undefined) => void;
  /** A renewal (compare-and-set) was answered after `ms`, whatever its result. */
  onRenewal?: (ms: number) => void;
}

export class LeaseKeeper {
  readonly key: string;
  readonly nodeId: string;
  readonly options: ResolvedLeaseOptions;
  private readonly kv: LeaseKv;
  private readonly clock: MonotonicClock;
  private readonly timers: LeaseTimers;
  private readonly onChange: ((may: boolean, token: number | undefined) => void) | undefined;
  private readonly onRenewal: ((ms: number) => void) | undefined;
  private current: LeaseState;
  private timer: unknown;
  private nonceSeq = 0;
  private readonly nonceBase = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  private lastReported = false;
  private pendingDelete: Promise<void> | undefined;
  private readonly context: { readonly nodeId: string; nextNonce(): string };

  constructor(kv: LeaseKv, key: string, nodeId: string, options: LeaseKeeperOptions = {}) {
    this.kv = kv;
    this.key = key;
    this.nodeId = nodeId;
    this.options = resolveLeaseOptions(options);
    this.clock = options.clock ?? performanceClock;
    this.timers = options.timers ?? realTimers;
    this.onChange = options.onChange;
    this.onRenewal = options.onRenewal;
    this.current = initialLeaseState(this.clock.now());
    this.context = { nodeId, nextNonce: () => `${this.nonceBase}-${(this.nonceSeq++).toString(36)}` };
  }

  get state(): LeaseState {
    return this.current;
  }

  /** Whether this node may send for the route right now. Check it before every send. */
  maySend(): boolean {
    return maySend(this.current, this.clock.now());
  }

  /** The lease's revision while this node may send (the fencing token), else undefined. */
  fencingToken(): number | undefined {
    return fencingToken(this.current, this.clock.now());
  }

  /** Starts trying to take the lease, and keeps it renewed once taken. */
  start(): void {
    this.apply({ type: 'tick', now: this.clock.now() });
  }

  /** Stops at once (maySend() is false from here on) and releases the lease if held. */
  async stop(): Promise<void> {
    this.apply({ type: 'stop', now: this.clock.now() });
    await this.pendingDelete;
  }

  private apply(event: LeaseEvent): void {
    const step = transition(this.current, event, this.context, this.options);
    this.current = step.state;
    for (const c of step.commands) this.run(c);
    this.report();
    this.schedule();
  }

  private report(): void {
    const may = this.maySend();
    if (may === this.lastReported) return;
    this.lastReported = may;
    this.onChange?.(may, this.fencingToken());
  }

  /** Wakes at the next moment the state machine or `maySend()` can change by time alone. */
  private schedule(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.current;
    const now = this.clock.now();
    let at: number | undefined;
    if (s.kind === 'idle') at = s.nextTryAt;
    else if (s.kind === 'owner') at = Math.min(s.renewAt, s.validUntil);
    else if (s.kind === 'renewing' && now < s.validUntil) at = s.validUntil;
    if (at === undefined) return;
    this.timer = this.timers.setTimeout(
      () => {
        this.timer = undefined;
        if (!awaitingAnswer(this.current)) this.apply({ type: 'tick', now: this.clock.now() });
        else {
          this.report();
          this.schedule();
        }
      },
      Math.max(0, at - now),
    );
  }

  private run(c: LeaseCommand): void {
    const o = this.options;
    switch (c.type) {
      case 'create':
        this.ask(this.kv.create(this.key, c.value), (result) => ({
          type: 'created',
          now: this.clock.now(),
          result,
        }));
        return;
      case 'update': {
        const started = this.clock.now();
        this.ask(this.kv.update(this.key, c.value, c.revision), (result) => {
          const now = this.clock.now();
          if (result !== 'error') this.onRenewal?.(now - started);
          return { type: 'updated', now, result };
        });
        return;
      }
      case 'get':
        this.ask(this.kv.get(this.key), (entry) => ({ type: 'got', now: this.clock.now(), entry }));
        return;
      case 'delete':
        this.pendingDelete = withTimeout(
          this.kv.delete(this.key, c.revision),
          o.requestTimeoutMs,
          this.timers,
        ).then(
          () => {},
          () => {},
        );
        return;
    }
  }

  private ask<T>(request: Promise<T>, toEvent: (r: T | 'error') => LeaseEvent): void {
    withTimeout(request, this.options.requestTimeoutMs, this.timers).then(
      (r) => this.apply(toEvent(r)),
      () => this.apply(toEvent('error')),
    );
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, timers: LeaseTimers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = timers.setTimeout(() => reject(new Error(`lease request timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        timers.clearTimeout(t);
        resolve(v);
      },
      (err) => {
        timers.clearTimeout(t);
        reject(err);
      },
    );
  });
}
