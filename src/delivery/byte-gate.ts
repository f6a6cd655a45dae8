/**
 * A route's way through its byte budgets (docs/delivery.md, "Byte rates and priority"): before
 * a batch goes, its payload bytes must be granted by every budget on the route's path, in a
 * fixed order — the route's own `replay.bytesPerSecond` (only for backlog replay while
 * draining), its target's `maxBytesPerSecond`, the gateway's `delivery.maxBytesPerSecond`.
 *
 * Like the replay pacer, the gate never makes the runner await: `admit(bytes)` answers at once.
 * When every budget has the bytes, it takes them and says yes (the fast path: no timer, no
 * promise). Otherwise it asks the budgets in turn, says no, and calls `onReady` once all of them
 * granted; the runner then picks again and the batch takes the reserved bytes (a smaller batch
 * gives the difference back; a larger one asks for the rest). A runner without byte limits has
 * no gate at all.
 *
 * The time from the first refusal until a batch is admitted is reported as throttled time.
 * `close()` (stop, abandon) withdraws a waiting request and gives back what was reserved.
 */
import type { BudgetClient, ByteBudget, PendingGrant } from './byte-budget.js';
import type { Clock } from './clock.js';

export interface ByteGateOptions {
  /** The route's own replay budget (used only for replay), if it has one. */
  replay: ByteBudget | undefined;
  /** The shared budgets on the route's path, innermost first (target, then gateway). */
  shared: readonly ByteBudget[];
  route: string;
  priority: number;
  clock: Clock;
  /** Every budget granted what was asked: pick again. */
  onReady: () => void;
  /** A batch waited this long for its bytes, ms. */
  onThrottled: (ms: number) => void;
}

interface Lane {
  client: BudgetClient;
  /** Bytes this budget granted that no batch has taken yet. */
  reserved: number;
}

export class ByteGate {
  private readonly replayLane: Lane | undefined;
  private readonly sharedLanes: Lane[];
  private pending: PendingGrant | undefined;
  private throttledSince: number | undefined;
  private closed = false;

  constructor(private readonly options: ByteGateOptions) {
    const lane = (b: ByteBudget): Lane => ({
      client: b.client(options.route, options.priority),
      reserved: 0,
    });
    this.replayLane = options.replay ? lane(options.replay) : undefined;
    this.sharedLanes = options.shared.map(lane);
  }

  /** A request waits for a budget's grant (a budget timer is armed for it). */
  get waiting(): boolean {
    return this.pending !== undefined;
  }

  /** How long the batch waiting now has waited, ms (0 when none waits). */
  throttledForMs(): number {
    return this.throttledSince === undefined ? 0 : this.options.clock.now() - this.throttledSince;
  }

  /** A drain begins: the route's own replay budget starts full (like the replay pacer). */
  beginDrain(): void {
    if (this.replayLane && this.replayLane.reserved === 0 && !this.pending)
      this.replayLane.client.budget.fill();
  }

  /**
   * May a batch of `bytes` payload bytes go now? `replay`: it is backlog replay while draining
   * (the route's own budget applies too). True: the bytes are taken. False: wait for `onReady`.
   */
  admit(bytes: number, replay: boolean): boolean {
    if (this.closed || this.pending) return false;
    const path = replay && this.replayLane ? [this.replayLane, ...this.sharedLanes] : this.sharedLanes;
    if (!this.ask(path, 0, bytes)) {
      this.throttledSince ??= this.options.clock.now();
      return false;
    }
    for (const l of path) l.reserved -= bytes;
    this.giveBack();
    if (this.throttledSince !== undefined) {
      this.options.onThrottled(this.options.clock.now() - this.throttledSince);
      this.throttledSince = undefined;
    }
    return true;
  }

  /** Asks the lanes from `i` on for what they miss of `bytes`; true once all have it. */
  private ask(path: readonly Lane[], i: number, bytes: number): boolean {
    for (; i < path.length; i++) {
      const lane = path[i]!;
      const need = bytes - lane.reserved;
      if (need <= 0) continue;
      const at = i;
      const pending = lane.client.acquire(need, () => {
        this.pending = undefined;
        lane.reserved += need;
        if (this.closed) return this.giveBack();
        if (this.ask(path, at + 1, bytes)) this.options.onReady();
      });
      if (pending) {
        this.pending = pending;
        return false;
      }
      lane.reserved += need;
    }
    return true;
  }

  /**
   * The route picked nothing to send (its backlog emptied, a batch waits to fill up): bytes
   * reserved for it go back to the budgets for others, and a throttled stretch ends.
   */
  release(): void {
    if (this.pending) return;
    this.giveBack();
    if (this.throttledSince !== undefined) {
      this.options.onThrottled(this.options.clock.now() - this.throttledSince);
      this.throttledSince = undefined;
    }
  }

  /** Returns reserved bytes no batch took (a smaller batch, a lane off the path, closing). */
  private giveBack(): void {
    for (const l of this.lanes()) {
      if (l.reserved > 0) l.client.budget.refund(l.reserved);
      l.reserved = 0;
    }
  }

  private lanes(): Lane[] {
    return this.replayLane ? [this.replayLane, ...this.sharedLanes] : this.sharedLanes;
  }

  /** The runner stops or gives the route up: withdraws the wait and returns what was reserved. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending?.cancel();
    this.pending = undefined;
    this.giveBack();
    if (this.throttledSince !== undefined) {
      this.options.onThrottled(this.options.clock.now() - this.throttledSince);
      this.throttledSince = undefined;
    }
  }
}
