/**
 * A byte budget: a token bucket in bytes shared by the routes that send through it (a target's
 * `maxBytesPerSecond`, the gateway's `delivery.maxBytesPerSecond`, or one route's own
 * `replay.bytesPerSecond`), with a scheduler that decides which waiting route goes next
 * (docs/delivery.md, "Byte rates and priority").
 *
 * Design constraints:
 * - Tokens are never negative and refill at `bytesPerSecond`, so the bytes granted from `t0`
 *   to `t` never exceed `burstBytes + bytesPerSecond × (t − t0)` (the property test checks it).
 * - The bucket holds at most `burstBytes` (default one second's worth), except while a request
 *   larger than that waits: then it fills up to that request's size, so a message larger than
 *   the burst goes out once the budget has saved up for it (bytes / rate seconds), never blocked
 *   forever, and never in excess of the rate.
 * - Who goes next, each time tokens could be granted: first a client whose guaranteed credit
 *   covers its request (the minimum share, below), the longest-waiting first; otherwise the
 *   highest priority (0 before 9), the longest-waiting first within a priority. The chosen
 *   request waits until the tokens cover it; nothing smaller jumps ahead of it, so tokens are
 *   never lost while anyone waits and the budget runs at its full rate under contention.
 * - Minimum share: while it waits, each client accrues credit at `minShare × rate` (default
 *   10 %), or `rate / n` when more than `1 / minShare` clients wait, banked up to one second's
 *   worth (or its request, if larger); bytes granted are debited from it, down to at most one
 *   request below zero. So a waiting route of the lowest priority still gets at least its
 *   share, more than ten waiting routes get equal shares, and a route that asks for nothing
 *   accrues nothing (a withdrawn request forgets its credit).
 * - Nothing is granted synchronously from inside another call but `acquire` itself (when no one
 *   waits and the tokens are there: the fast path, no timer, no callback). Waiting requests are
 *   granted from a timer of the injected clock; `cancel()` withdraws one (stop, abandon).
 */
import type { Clock, TimerHandle } from './clock.js';

export interface ByteBudgetOptions {
  /** For messages: `target t`, `gateway`, `route r`. */
  name: string;
  /** Bytes per second; must be positive. */
  bytesPerSecond: number;
  /** Bucket size, bytes. Default: one second's worth (`bytesPerSecond`). */
  burstBytes?: number;
  /** Guaranteed fraction of the rate for each waiting client (0–1). Default 0.1. */
  minShare?: number;
  clock: Clock;
}

/** A request waiting for tokens; `cancel()` withdraws it (its callback never runs then). */
export interface PendingGrant {
  cancel(): void;
}

/** One sender through a budget (a route), with its priority: 0 highest … 9 lowest. */
export class BudgetClient {
  /** Bytes the minimum share owes this client (accrued while it waits). */
  credit = 0;
  /** The request waiting now, if any (one per client at a time). */
  request: Request | undefined;

  constructor(
    readonly budget: ByteBudget,
    readonly name: string,
    readonly priority: number,
  ) {}

  /** Asks for `bytes`: undefined if granted at once, else the pending grant (`onGrant` runs later). */
  acquire(bytes: number, onGrant: () => void): PendingGrant | undefined {
    return this.budget.acquire(this, bytes, onGrant);
  }
}

interface Request {
  client: BudgetClient;
  bytes: number;
  since: number;
  seq: number;
  onGrant: () => void;
}

export class ByteBudget {
  readonly name: string;
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  private readonly minShare: number;
  private readonly clock: Clock;
  private tokens: number;
  private tokensAt: number;
  private readonly waiting: Request[] = [];
  private seq = 0;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /** Bytes granted since the budget was made (tests, metrics). */
  granted = 0;

  constructor(options: ByteBudgetOptions) {
    if (!(options.bytesPerSecond > 0))
      throw new RangeError(`${options.name}: bytesPerSecond must be positive`);
    this.name = options.name;
    this.bytesPerSecond = options.bytesPerSecond;
    this.burstBytes = Math.max(1, options.burstBytes ?? options.bytesPerSecond);
    this.minShare = Math.min(1, Math.max(0, options.minShare ?? 0.1));
    this.clock = options.clock;
    this.tokens = this.burstBytes;
    this.tokensAt = this.clock.now();
  }

  /** A sender through this budget. */
  client(name: string, priority: number): BudgetClient {
    return new BudgetClient(this, name, priority);
  }

  /** Requests waiting now. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Tokens now (after refilling), bytes. */
  available(): number {
    this.refill(this.clock.now());
    return this.tokens;
  }

  /** Fills the bucket (a route's own budget when a drain begins), unless someone waits. */
  fill(): void {
    if (this.waiting.length > 0) return;
    this.tokens = this.burstBytes;
    this.tokensAt = this.clock.now();
  }

  /** Gives back bytes taken but not sent (up to the bucket's size). */
  refund(bytes: number): void {
    if (bytes <= 0) return;
    this.refill(this.clock.now());
    this.tokens = Math.min(this.cap(), this.tokens + bytes);
    this.granted -= bytes;
    if (this.waiting.length > 0) this.schedule();
  }

  /**
   * Takes `bytes` at once if no one waits and the tokens are there (returns undefined: the fast
   * path); otherwise queues the request and `onGrant` runs from a timer once it is granted.
   */
  acquire(client: BudgetClient, bytes: number, onGrant: () => void): PendingGrant | undefined {
    if (client.request) throw new Error(`${this.name}: ${client.name} already waits for a grant`);
    const now = this.clock.now();
    this.refill(now);
    const need = Math.max(0, bytes);
    if (this.waiting.length === 0 && this.tokens >= need) {
      this.take(client, need);
      return undefined;
    }
    this.accrue(now);
    const request: Request = { client, bytes: need, since: now, seq: this.seq++, onGrant };
    client.request = request;
    this.waiting.push(request);
    this.schedule();
    return { cancel: () => this.withdraw(request) };
  }

  private withdraw(request: Request): void {
    const i = this.waiting.indexOf(request);
    if (i < 0) return;
    this.accrue(this.clock.now());
    this.waiting.splice(i, 1);
    request.client.request = undefined;
    request.client.credit = 0;
    this.schedule();
  }

  private cap(): number {
    let cap = this.burstBytes;
    for (const r of this.waiting) if (r.bytes > cap) cap = r.bytes;
    return cap;
  }

  private refill(now: number): void {
    const dt = now - this.tokensAt;
    if (dt > 0) this.tokens = Math.min(this.cap(), this.tokens + (dt * this.bytesPerSecond) / 1000);
    this.tokensAt = now;
  }

  /** Credit for every waiting client since the last accrual (the minimum share). */
  private accrueAt = 0;
  private accrue(now: number): void {
    const n = this.waiting.length;
    const dt = now - this.accrueAt;
    this.accrueAt = now;
    if (n === 0 || dt <= 0) return;
    const share = Math.min(this.minShare, 1 / n);
    const add = (dt * this.bytesPerSecond * share) / 1000;
    // Banked up to a second's worth (or the request), so a route served late is owed the rest.
    for (const r of this.waiting)
      r.client.credit = Math.min(Math.max(r.bytes, this.burstBytes), r.client.credit + add);
  }

  private take(client: BudgetClient, bytes: number): void {
    this.tokens -= bytes;
    this.granted += bytes;
    client.credit = Math.max(-bytes, client.credit - bytes);
  }

  /** The request that goes next under the policy (see the module comment). */
  private next(): Request | undefined {
    let owed: Request | undefined;
    let best: Request | undefined;
    for (const r of this.waiting) {
      if (r.client.credit >= r.bytes && (owed === undefined || r.seq < owed.seq)) owed = r;
      if (
        best === undefined ||
        r.client.priority < best.client.priority ||
        (r.client.priority === best.client.priority && r.seq < best.seq)
      )
        best = r;
    }
    return owed ?? best;
  }

  /** Grants what can go now, then arms one timer for when the next choice's tokens are there. */
  private run(): void {
    const now = this.clock.now();
    this.refill(now);
    this.accrue(now);
    const granted: Request[] = [];
    for (;;) {
      const r = this.next();
      if (r === undefined) break;
      if (this.tokens < r.bytes) break;
      this.waiting.splice(this.waiting.indexOf(r), 1);
      r.client.request = undefined;
      this.take(r.client, r.bytes);
      granted.push(r);
    }
    this.schedule();
    for (const r of granted) r.onGrant();
  }

  private schedule(): void {
    const r = this.next();
    if (r === undefined) {
      this.timer?.cancel();
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    const now = this.clock.now();
    this.refill(now);
    // The chosen request's tokens, or sooner when another's credit will cover its request first.
    let ms = ((r.bytes - this.tokens) * 1000) / this.bytesPerSecond;
    const n = this.waiting.length;
    const creditRate = (this.bytesPerSecond * Math.min(this.minShare, 1 / n)) / 1000;
    if (creditRate > 0)
      for (const w of this.waiting)
        if (w !== r && w.client.credit < w.bytes) ms = Math.min(ms, (w.bytes - w.client.credit) / creditRate);
    const at = now + Math.max(0, Math.ceil(ms));
    if (this.timer && at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.run();
    }, at - now);
  }
}
