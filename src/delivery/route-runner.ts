/**
 * Runs one route: picks what to send according to the route's state and ordering, hands
 * batches to the target, turns outcomes into final states (delivered, dead) and state-machine
 * events, probes while storing, paces the replay while draining, and enforces retention.
 *
 * The runner owns the route's state machine, what is at the target, dispatch and saving
 * progress; each other job is a collaborator with its own module and tests, wired here:
 * picking by ordering (`picker.ts`), reading and read-ahead (`read-ahead.ts`), the replay pacer
 * (`pacer.ts`), the byte budgets (`byte-gate.ts` over `byte-budget.ts`), the prober
 * (`prober.ts`), retry bookkeeping (`retries.ts`), retention (`retention.ts`), the delivery
 * attempt with its timer (`attempt.ts`), the wake-up timer (`wake-timer.ts`) and
 * `batch.maxWait` (`batch-wait.ts`).
 *
 * All mutable delivery state that must survive a restart lives in the store's route progress and
 * dead letters; what lives here (in-flight sets, attempt counts, timers) is rebuilt by starting
 * again: messages in flight at a crash are simply pending and go out again (at-least-once).
 */

import type { DeadLetterStore, MessageStore, MessageStream, RouteProgressStore } from '../store/backend.js';
import type { DeadLetter } from '../store/dead-letters.js';
import type { StoredMessage } from '../store/message.js';
import type { FinalState, MessageState, RouteCounters, StreamProgress } from '../store/route-progress.js';
import { zeroCounters } from '../store/route-progress.js';
import { Attempt, type Batch, MessageDelivery } from './attempt.js';
import { BatchWait } from './batch-wait.js';
import { ByteBudget } from './byte-budget.js';
import { ByteGate } from './byte-gate.js';
import type { Clock, TimerHandle } from './clock.js';
import { Pacer } from './pacer.js';
import { Picker } from './picker.js';
import { Prober } from './prober.js';
import { BacklogReader, type ReadAheadPlan } from './read-ahead.js';
import { Retention } from './retention.js';
import { attemptKey, Retries } from './retries.js';
import type { RouteOptions } from './route-options.js';
import { type RouteEvent, type RouteState, transition } from './route-state.js';
import type { Delivery, Outcome, Target } from './target.js';
import { WakeTimer } from './wake-timer.js';

export interface RouteRunnerDeps {
  options: Readonly<RouteOptions>;
  store: MessageStore;
  target: Target;
  clock: Clock;
  random: () => number;
  /** After every state change; the engine coordinates groups and logs. */
  onStateChange: (runner: RouteRunner, previous: RouteState) => void;
  /** Messages of a stream reached a final state on this route (receipts). */
  onSettled: (stream: string) => void;
  /** One delivery attempt (a batch) took `seconds`, whatever its outcome. */
  onAttempt?: (seconds: number) => void;
  /**
   * The watchdog found an attempt still in flight past its timeout (which the attempt timer
   * makes impossible; reported so that it is visible if it happens anyway).
   */
  onOverdue?: (overdue: OverdueAttempt) => void;
  /** An unexpected internal failure (e.g. saving progress failed); the runner keeps going. */
  onError: (err: unknown, context: string) => void;
  /** Coalescing delay for saving progress after acks, ms. */
  progressSaveDelayMs?: number;
  /**
   * Cluster mode: whether this node may send for the route right now (its lease). Checked
   * before every send and every progress save. Default: always.
   */
  mayDeliver?: () => boolean;
  /**
   * The shared byte budgets on the route's path, innermost first: its target's
   * `maxBytesPerSecond`, then the gateway's `delivery.maxBytesPerSecond` (the engine owns them).
   */
  byteBudgets?: readonly ByteBudget[];
}

export interface RouteSnapshot extends RouteCounters {
  name: string;
  target: string;
  streams: readonly string[];
  ordering: RouteOptions['ordering'];
  group: string | undefined;
  state: RouteState['name'];
  /** Why it is storing or held: its own failures or the operator (`self`), or a group peer. */
  cause: RouteState['cause'];
  since: number;
  lastError: string | undefined;
  /** Pending messages not at the target right now. */
  inQueue: number;
  /** Messages at the target right now. */
  inFlight: number;
  /** Log bytes from the oldest pending message on (approximate with holes). */
  usedBytes: number;
  limitBytes: number | undefined;
  limitMessages: number | undefined;
  /** Age of the oldest delivery attempt at the target now, ms (0 when none is). */
  oldestAttemptMs: number;
  /** Attempts the watchdog found in flight past their timeout since the runner started. */
  overdueAttempts: number;
}

/** An attempt the watchdog found still in flight past the route's timeout. */
export interface OverdueAttempt {
  route: string;
  stream: string;
  firstSeq: number;
  messages: number;
  ageMs: number;
  timeoutMs: number;
  probe: boolean;
}

/** After a dispatch failed (e.g. reading the stream), the runner tries again after this, ms. */
const DISPATCH_RETRY_MS = 1_000;

/** An attempt older than its timeout by this much is reported as overdue, ms. */
export const OVERDUE_GRACE_MS = 1_000;

export class RouteRunner {
  readonly name: string;
  private state: RouteState;
  private running = false;
  private readonly progress: RouteProgressStore;
  private readonly dead: DeadLetterStore;

  // Collaborators, one job each; the runner wires them and owns the state machine.
  /** Which pending messages go next, by ordering (and, unordered, what is live while draining). */
  private readonly picker: Picker;
  /** Reads what the picker chose; reads the next batch ahead while one is at the target. */
  private readonly reader: BacklogReader;
  /** The replay.ratePerSecond token bucket while draining. */
  private readonly pacer: Pacer;
  /** When the next probe may go while storing (backoff, jitter, Retry-After). */
  private readonly prober: Prober;
  /** Attempts per nacked message; with storeAndForward off, until when each waits for its retry. */
  private readonly retries: Retries;
  /** Age expiry, drop-oldest pruning, reject-new admission. */
  private readonly retention: Retention;
  /** Byte budgets (replay.bytesPerSecond, the target's and the gateway's); none without limits. */
  private readonly gate: ByteGate | undefined;

  // At the target now.
  /** stream → seq → ordering key, for messages at the target now. */
  private readonly flying = new Map<string, Map<number, string | undefined>>();
  /** Attempts at the target now, each with its timer armed. */
  private readonly out = new Set<Attempt>();
  private readonly controllers = new Set<AbortController>();
  private overdueCount = 0;
  private readonly idleWaiters: (() => void)[] = [];

  // Dispatch.
  private nextStream = 0;
  private pumping = false;
  private pumpAgain = false;
  private pumpDone: Promise<void> = Promise.resolve();
  /** Look again then (a retry wait or the pacer's next token). */
  private readonly wake: WakeTimer;
  /** batch.maxWait: a partial batch waits for more. */
  private readonly batchWait: BatchWait;

  // Persistence.
  private saveTimer: TimerHandle | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly deps: RouteRunnerDeps) {
    this.name = deps.options.name;
    this.progress = deps.store.routeProgress(this.name);
    this.dead = deps.store.deadLetters(this.name);
    const saved = this.progress.route;
    this.state = {
      name: saved.state,
      since: saved.since,
      cause: 'self',
      failures: 0,
      probeFailures: saved.probeFailures,
      lastError: saved.lastError,
    };
    for (const s of deps.options.streams) this.flying.set(s, new Map());
    this.pacer = new Pacer(deps.options.replayRatePerSecond, deps.options.batchMaxMessages);
    this.gate = this.makeGate();
    this.prober = new Prober({
      policy: deps.options,
      clock: deps.clock,
      random: deps.random,
      onDue: () => this.pump(),
    });
    this.wake = new WakeTimer(deps.clock, () => this.pump());
    this.batchWait = new BatchWait(
      deps.clock,
      deps.options.batchMaxWaitMs,
      deps.options.batchMaxMessages,
      () => this.pump(),
    );
    this.retries = new Retries(deps.options);
    this.picker = new Picker({
      options: deps.options,
      inFlight: this.flying,
      retryWaits: this.retries.waits,
      deadKeys: (stream) => this.dead.keysOf(stream),
      wakeIn: (ms) => this.wake.wakeIn(ms),
      expire: (stream, p, seqs) => this.settle(stream, p, seqs, 'expired'),
    });
    this.reader = new BacklogReader({
      backward: deps.options.ordering === 'lifo',
      batchMaxBytes: deps.options.batchMaxBytes,
    });
    this.retention = new Retention({
      options: deps.options,
      store: deps.store,
      progress: this.progress,
      clock: deps.clock,
      inFlight: (stream) => this.flying.get(stream)!,
      settle: (stream, p, seqs, state) => this.settle(stream, p, seqs, state),
      pendingCount: () => this.pendingCount(),
      usedBytes: () => this.usedBytes(),
    });
  }

  /** Only when some byte limit applies: the fast path has no gate, no timers and no awaits. */
  private makeGate(): ByteGate | undefined {
    const { options: o, clock } = this.deps;
    const shared = this.deps.byteBudgets ?? [];
    const replay =
      o.replayBytesPerSecond > 0
        ? new ByteBudget({ name: `route ${o.name}`, bytesPerSecond: o.replayBytesPerSecond, clock })
        : undefined;
    if (shared.length === 0 && replay === undefined) return undefined;
    return new ByteGate({
      replay,
      shared,
      route: o.name,
      priority: o.priority,
      clock,
      onReady: () => this.pump(),
      onThrottled: (ms) => {
        this.progress.counters.throttledMs += ms;
        if (this.running) this.scheduleSave();
      },
    });
  }

  get options(): Readonly<RouteOptions> {
    return this.deps.options;
  }

  get routeState(): RouteState {
    return this.state;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Starts delivering. A route that was storing probes at once; a held route stays held. */
  start(): void {
    this.running = true;
    if (this.state.name === 'storing') this.prober.dueNow();
    if (this.state.name === 'draining') this.enterDraining();
    this.pump();
  }

  /**
   * Stops at once because this node lost the route (cluster mode): aborts what is at the target
   * and saves nothing (the route's new owner reads the progress last saved, and sends again what
   * was in flight).
   */
  async abandon(): Promise<void> {
    await this.halt(() => {
      for (const c of this.controllers) c.abort(new Error('this node lost the route'));
    });
    if (this.out.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops dispatching and every timer, runs `then` (which may abort what is out), and waits for
   * a pick, a read-ahead or a retention pass reading the store right now.
   */
  private async halt(then?: () => void): Promise<void> {
    this.running = false;
    this.gate?.close();
    this.prober.reset();
    this.wake.cancel();
    this.batchWait.cancel();
    this.saveTimer?.cancel();
    this.saveTimer = undefined;
    then?.();
    await this.pumpDone;
    await this.reader.busy;
    await this.retention.busy;
  }

  private mayDeliver(): boolean {
    return this.deps.mayDeliver?.() ?? true;
  }

  /** Stops dispatching, aborts deliveries still out after `graceMs`, and saves progress. */
  async stop(graceMs: number): Promise<void> {
    // A pick or a read-ahead may be reading the log right now: let it finish before the store closes.
    await this.halt();
    if (this.out.size > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      const abortAll = () => {
        for (const c of this.controllers) c.abort(new Error('shutting down'));
      };
      const timer = graceMs > 0 ? this.deps.clock.setTimeout(abortAll, graceMs) : undefined;
      if (graceMs <= 0) abortAll();
      await idle;
      timer?.cancel();
    }
    await this.saveNow();
  }

  /** New messages were stored in `stream`. */
  notify(): void {
    this.pump();
  }

  // ------------------------------------------------------------------ state

  private apply(event: RouteEvent): void {
    const previous = this.state;
    const next = transition(previous, event, this.deps.options, this.deps.clock.now());
    if (next === previous) return;
    this.state = next;
    if (next.name !== previous.name || next.cause !== previous.cause) this.onEnter(previous);
    else this.scheduleSave();
  }

  private onEnter(previous: RouteState): void {
    this.prober.reset();
    if (this.state.name === 'storing' && this.state.cause === 'self')
      this.prober.schedule(this.state.probeFailures);
    if (this.state.name === 'draining') this.enterDraining();
    void this.saveNow();
    this.deps.onStateChange(this, previous);
    this.pump();
  }

  /** Applies an event from the engine (operator command or group coordination). */
  handle(event: RouteEvent): void {
    this.apply(event);
  }

  private enterDraining(): void {
    this.pacer.refill(this.deps.clock.now());
    this.gate?.beginDrain();
    this.picker.beginDrain(this.deps.options.streams.map((name) => this.deps.store.stream(name)));
  }

  // ------------------------------------------------------------------ dispatch

  private pump(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpDone = (async () => {
      try {
        do {
          this.pumpAgain = false;
          await this.dispatch();
        } while (this.pumpAgain && this.running);
      } catch (err) {
        this.deps.onError(err, `route ${this.name}: dispatch`);
        // A read that failed (a cluster store without a stream leader for a moment, a disk
        // error) must not leave the route waiting for the next publish: look again later.
        this.wake.wakeIn(DISPATCH_RETRY_MS);
      } finally {
        this.pumping = false;
      }
    })();
  }

  private async dispatch(): Promise<void> {
    while (this.running && this.mayDeliver() && this.out.size < this.deps.options.maxInFlight) {
      const attempt = await this.nextBatch();
      if (!attempt) break;
      void this.send(attempt);
    }
    const { name } = this.state;
    if (this.out.size > 0 && (name === 'forwarding' || name === 'draining')) {
      this.reader.readAhead(this.deps.options.streams, this.planReadAhead, this.onReadAheadError);
    }
    await this.checkBacklogEmpty();
  }

  /**
   * What the read-ahead reads in a stream while a batch is at the target: the candidates of the
   * batch that follows it (a cache only: the next pick still decides).
   */
  private readonly planReadAhead = (name: string): ReadAheadPlan => {
    const stream = this.deps.store.stream(name);
    const seqs = this.picker.candidates(
      stream,
      this.progress.stream(name),
      this.deps.options.batchMaxMessages,
      this.deps.clock.now(),
    );
    return { stream, seqs };
  };

  private readonly onReadAheadError = (err: unknown): void =>
    this.deps.onError(err, `route ${this.name}: reading ahead`);

  private async nextBatch(): Promise<Attempt | undefined> {
    const { name, cause } = this.state;
    if (name === 'held') return undefined;
    if (name === 'storing') {
      if (cause !== 'self' || !this.prober.due || this.out.size > 0) return undefined;
      const probe = await this.pick(1, true);
      if (probe) this.prober.sent();
      return probe;
    }
    return this.pick(this.deps.options.batchMaxMessages, false);
  }

  /** The next batch in the route's order, or undefined (and maybe a timer to try again). */
  private async pick(limit: number, probe: boolean): Promise<Attempt | undefined> {
    const streams = this.deps.options.streams;
    for (let i = 0; i < streams.length; i++) {
      const name = streams[(this.nextStream + i) % streams.length]!;
      const batch = await this.pickFrom(this.deps.store.stream(name), limit, probe);
      if (batch) {
        this.nextStream = (this.nextStream + i + 1) % streams.length;
        return batch;
      }
      // Waiting for byte budgets: nothing goes until they grant (then the gate pumps again).
      if (this.gate?.waiting) return undefined;
    }
    // Nothing to send: what the budgets reserved for this route goes back to the others.
    this.gate?.release();
    return undefined;
  }

  private async pickFrom(stream: MessageStream, limit: number, probe: boolean): Promise<Attempt | undefined> {
    const now = this.deps.clock.now();
    const p = this.progress.stream(stream.name);
    const draining = this.state.name === 'draining';
    const { rules } = this.picker;
    // Backlog replay: the route's own rates (replay.ratePerSecond, replay.bytesPerSecond) apply.
    let replay = draining && !probe;
    let paced = replay && this.pacer.limited;
    let from: number | undefined;
    if (draining && rules.liveFirst && !probe) {
      // Live messages first and unpaced; the backlog below liveFrom drains beside them, paced.
      const live = this.picker.liveFromOf(stream.name) ?? Number.POSITIVE_INFINITY;
      if (this.picker.candidates(stream, p, limit, now, live).length > 0) {
        from = live;
        paced = false;
        replay = false;
      }
    }
    let max = limit;
    if (paced) {
      max = Math.min(limit, this.pacer.available(now));
      if (max < 1) {
        this.wake.wakeIn(this.pacer.msUntilNext());
        return undefined;
      }
    }
    const lookahead = rules.lookahead(max);
    let chosen: StoredMessage[] = [];
    // Expired messages found on the way are settled, which moves the candidates on: look again.
    for (let expiredAny = true; chosen.length === 0 && expiredAny; ) {
      const seqs = this.picker.candidates(stream, p, lookahead, now, from);
      if (seqs.length === 0) return undefined;
      const { messages, damaged } = await this.reader.read(stream, seqs);
      if (damaged.length > 0)
        await this.deadLetterDamaged(
          stream,
          p,
          damaged.filter((s) => !p.done.has(s)),
        );
      const before = this.progress.counters.expired;
      chosen = this.picker.choose(stream, p, messages, max, now);
      expiredAny = this.progress.counters.expired > before || damaged.length > 0;
    }
    if (chosen.length === 0) return undefined;
    if (!probe && this.state.name === 'forwarding' && this.batchWait.holdBack(chosen.length))
      return undefined;
    if (this.gate !== undefined && !this.gate.admit(payloadBytes(chosen), replay)) return undefined;
    this.batchWait.sent();
    if (paced) this.pacer.take(chosen.length);
    return this.begin({ stream, messages: chosen, probe });
  }

  /**
   * Records that failed their checksum cannot be delivered: they are dead-lettered (reason
   * `damaged`, counted), so the route moves on and an operator sees them.
   */
  private async deadLetterDamaged(
    stream: MessageStream,
    p: StreamProgress,
    seqs: readonly number[],
  ): Promise<void> {
    if (seqs.length === 0) return;
    const at = this.deps.clock.now();
    const letters: DeadLetter[] = seqs.map((seq) => ({
      id: stream.idOf(seq),
      stream: stream.name,
      seq,
      key: undefined,
      reason: 'damaged',
      attempts: 0,
      lastError: 'the record is damaged on disk (checksum mismatch) and cannot be delivered',
      at,
    }));
    await this.dead.add(letters);
    this.settle(stream.name, p, seqs, 'dead');
    this.deps.onError(
      new Error(
        `stream ${stream.name}: ${seqs.length} damaged record(s) dead-lettered (seq ${seqs.join(', ')})`,
      ),
      `route ${this.name}: reading the backlog`,
    );
  }

  // ------------------------------------------------------------------ delivery

  /**
   * Makes a picked batch an attempt: its messages count as in flight and its timer is armed in
   * the same synchronous step, so nothing that follows (building deliveries, the target call,
   * opening payloads) can keep a delivery in flight past the route's timeout unnoticed.
   */
  private begin(batch: Batch): Attempt {
    const attempt = new Attempt(batch, this.deps.clock, this.deps.options.attemptTimeoutMs);
    this.out.add(attempt);
    const { messages } = batch;
    const flying = this.flying.get(batch.stream.name)!;
    for (let i = 0; i < messages.length; i++) flying.set(messages[i]!.seq, messages[i]!.key);
    return attempt;
  }

  private async send(attempt: Attempt): Promise<void> {
    const { stream, messages, probe } = attempt.batch;
    const p = this.progress.stream(stream.name);
    try {
      // The lease may have lapsed while the batch was read: then it is not sent and stays pending.
      if (!this.mayDeliver()) return;
      const started = performance.now();
      const outcomes = await this.deliver(attempt, p);
      this.observe(performance.now() - started);
      // Answers cut short by shutdown are not failures: those messages just stay pending.
      const answered = this.running ? outcomes : outcomes.map((o) => (o.kind === 'nack' ? undefined : o));
      for (let i = 0; i < answered.length; i++)
        if (answered[i] === undefined) p.wasInFlight.add(messages[i]!.seq);
      await this.process(stream.name, p, messages, answered, probe);
    } catch (err) {
      this.deps.onError(err, `route ${this.name}: recording outcomes`);
    } finally {
      // Only now: until the outcomes are recorded (dead letters are written first), the messages
      // must not look pending to a concurrent pick. Whatever failed above, the slot is released.
      attempt.end();
      this.out.delete(attempt);
      const flying = this.flying.get(stream.name)!;
      for (let i = 0; i < messages.length; i++) flying.delete(messages[i]!.seq);
      if (this.out.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
    this.pump();
  }

  /** Reports an attempt's duration; a failing observer must not cost the outcomes. */
  private observe(ms: number): void {
    try {
      this.deps.onAttempt?.(ms / 1000);
    } catch (err) {
      this.deps.onError(err, `route ${this.name}: observing a delivery attempt`);
    }
  }

  /**
   * Calls the target under the attempt's timer (armed when the attempt began); whatever the
   * target does (throws, never settles, answers garbage), this resolves with one outcome per
   * message by the timeout, and failures become nacks, never exceptions.
   */
  private async deliver(attempt: Attempt, p: StreamProgress): Promise<readonly Outcome[]> {
    const { stream, messages } = attempt.batch;
    const { signal } = attempt.controller;
    this.controllers.add(attempt.controller);
    try {
      const deliveries: Delivery[] = new Array(messages.length);
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        const n = this.retries.nextAttempt(stream.name, m.seq);
        if (n > 1 || (p.wasInFlight.rangeCount > 0 && p.wasInFlight.has(m.seq))) {
          this.progress.counters.redelivered++;
          p.wasInFlight.delete(m.seq);
        }
        deliveries[i] = new MessageDelivery(stream, m, n, signal);
      }
      const answered = Promise.resolve(this.deps.target.deliver(deliveries, signal)).then((outcomes) =>
        Array.isArray(outcomes) && outcomes.length === deliveries.length
          ? (outcomes as readonly Outcome[])
          : attempt.nacks(
              `target answered ${Array.isArray(outcomes) ? outcomes.length : typeof outcomes} outcomes for ${deliveries.length} messages`,
            ),
      );
      return await Promise.race([answered, attempt.cutShort]);
    } catch (err) {
      return attempt.nacks(err instanceof Error ? err.message : String(err));
    } finally {
      attempt.end();
      this.controllers.delete(attempt.controller);
    }
  }

  /**
   * The watchdog (the engine calls it every second): reports each attempt still in flight
   * more than OVERDUE_GRACE_MS past the route's timeout, once. The attempt timer makes this
   * impossible; if it happens anyway, it is visible (a warning and a metric).
   */
  watch(now: number): void {
    const timeoutMs = this.deps.options.attemptTimeoutMs;
    for (const a of this.out) {
      const ageMs = now - a.startedAt;
      if (a.overdue || ageMs <= timeoutMs + OVERDUE_GRACE_MS) continue;
      a.overdue = true;
      this.overdueCount++;
      const { stream, messages, probe } = a.batch;
      this.deps.onOverdue?.({
        route: this.name,
        stream: stream.name,
        firstSeq: messages[0]?.seq ?? 0,
        messages: messages.length,
        ageMs,
        timeoutMs,
        probe,
      });
    }
  }

  /** Age of the oldest attempt at the target now, ms (0 when none is). */
  oldestAttemptMs(now = this.deps.clock.now()): number {
    let oldest = 0;
    for (const a of this.out) oldest = Math.max(oldest, now - a.startedAt);
    return oldest;
  }

  /**
   * What keeps the route moving, for liveness checks (tests): attempts at the target with their
   * ages, and whether a timer (probe, wake-up, batch flush) is armed or a pick is under way.
   */
  activity(): { attemptAgesMs: number[]; timerArmed: boolean; picking: boolean } {
    const now = this.deps.clock.now();
    return {
      attemptAgesMs: [...this.out].map((a) => now - a.startedAt),
      // A grant awaited from a byte budget is a budget timer armed for this route.
      timerArmed:
        this.prober.armed || this.wake.armed || this.batchWait.armed || (this.gate?.waiting ?? false),
      picking: this.pumping,
    };
  }

  private async process(
    streamName: string,
    p: StreamProgress,
    messages: readonly StoredMessage[],
    outcomes: readonly (Outcome | undefined)[],
    probe: boolean,
  ): Promise<void> {
    const opts = this.deps.options;
    const now = this.deps.clock.now();
    const delivered: number[] = [];
    const dead: DeadLetter[] = [];
    let nackReason: string | undefined;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const outcome = outcomes[i];
      if (outcome === undefined) continue;
      if (outcome.kind === 'ack' && this.retries.empty) {
        // The common case, kept cheap: nothing was ever retried.
        delivered.push(m.seq);
        continue;
      }
      const key = attemptKey(streamName, m.seq);
      const attempts = this.retries.failedAttempts(key) + 1;
      if (outcome.kind === 'ack') {
        delivered.push(m.seq);
        this.retries.forget(key);
        continue;
      }
      if (outcome.kind === 'error') {
        dead.push(this.letter(m, 'error', attempts, outcome.reason, now));
        this.retries.forget(key);
        continue;
      }
      this.progress.counters.failures++;
      nackReason = outcome.reason;
      if (outcome.retryAfterMs !== undefined) this.prober.retryAfter(outcome.retryAfterMs);
      this.retries.failed(key, attempts, now);
      if (!opts.storeAndForward) {
        if (attempts >= opts.retryAttempts) {
          dead.push(this.letter(m, 'retries-exhausted', attempts, outcome.reason, now));
          this.retries.forget(key);
        } else {
          const at = this.retries.wait(key, m.key, attempts, now, outcome.retryAfterMs);
          this.wake.wakeIn(at - now);
        }
      }
    }
    if (dead.length > 0) {
      await this.dead.add(dead);
      this.settle(
        streamName,
        p,
        dead.map((d) => d.seq),
        'dead',
      );
    }
    if (delivered.length > 0) this.settle(streamName, p, delivered, 'delivered');
    if (!this.running) return;
    if (probe) {
      this.apply(nackReason === undefined ? { type: 'probeAck' } : { type: 'probeNack', reason: nackReason });
      if (this.state.name === 'storing' && nackReason !== undefined && !this.prober.armed)
        this.prober.schedule(this.state.probeFailures);
      return;
    }
    if (nackReason !== undefined) this.apply({ type: 'nack', reason: nackReason });
    else this.apply({ type: 'ack' });
  }

  private letter(
    m: StoredMessage,
    reason: DeadLetter['reason'],
    attempts: number,
    lastError: string,
    at: number,
  ): DeadLetter {
    const firstFailedAt = this.retries.firstFailedAt(attemptKey(m.stream, m.seq)) ?? at;
    return {
      id: m.id,
      stream: m.stream,
      seq: m.seq,
      key: m.key,
      reason,
      attempts,
      lastError,
      at,
      firstFailedAt,
      bytes: m.payloadBytes,
    };
  }

  /** Records final states, counts them, schedules a save and wakes receipt waiters. */
  private settle(stream: string, p: StreamProgress, seqs: readonly number[], state: FinalState): void {
    // Runs of consecutive seqs (the usual batch) are recorded as one range each.
    for (let i = 0; i < seqs.length; ) {
      let j = i;
      while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
      if (j === i) p.mark(seqs[i]!, state);
      else p.markRange(seqs[i]!, seqs[j]!, state);
      i = j + 1;
    }
    // A message that became final (purged, pruned, expired…) while waiting for its retry must
    // not keep blocking its key: its retry bookkeeping goes with it.
    this.retries.forgetFinal(stream, p);
    const c = this.progress.counters;
    if (state === 'delivered') c.forwarded += seqs.length;
    else if (state === 'dead') c.deadLettered += seqs.length;
    else c[state] += seqs.length;
    this.scheduleSave();
    this.deps.onSettled(stream);
  }

  private async checkBacklogEmpty(): Promise<void> {
    if (this.state.name !== 'draining' || this.out.size > 0) return;
    const unordered = this.picker.rules.liveFirst;
    for (const name of this.deps.options.streams) {
      const p = this.progress.stream(name);
      const last = unordered ? (this.picker.liveFromOf(name) ?? 1) - 1 : this.deps.store.stream(name).lastSeq;
      if (pendingIn(p, last) > 0) return;
    }
    this.apply({ type: 'backlogEmpty' });
  }

  // ------------------------------------------------------------------ retention

  /** The periodic sweep: expires messages past maxAge, then applies the count and size limits. */
  enforceRetention(): Promise<void> {
    return this.retention.sweep();
  }

  /** With drop-oldest: prunes the oldest pending messages beyond maxMessages and maxBytes (after every publish). */
  enforceLimits(): Promise<void> {
    return this.retention.enforceLimits();
  }

  /** With onFull reject-new: refuses a publish that would pass maxMessages or maxBytes. */
  admit(stream: string, count: number, bytes: number): Promise<() => void> {
    return this.retention.admit(stream, count, bytes);
  }

  // ------------------------------------------------------------------ operator

  /** Purges all pending messages, or the oldest `top` ("top of the queue"). Returns how many. */
  purge(top?: number): number {
    let left = top ?? Number.POSITIVE_INFINITY;
    let purged = 0;
    for (const name of this.deps.options.streams) {
      if (left <= 0) break;
      const n = this.retention.settleOldest(name, left, 'purged');
      purged += n;
      left -= n;
    }
    void this.checkBacklogEmpty();
    return purged;
  }

  resetCounters(): void {
    this.progress.counters = zeroCounters();
    void this.saveNow();
  }

  deadLetters(): DeadLetter[] {
    return this.dead.list();
  }

  /** Puts dead letters (all, or those ids) back in the queue; returns how many. */
  async resubmit(ids?: readonly string[]): Promise<number> {
    const letters = this.selectLetters(ids);
    if (letters.length === 0) return 0;
    // Saved as pending before the dead letters go: at no moment is a resubmitted message
    // neither pending nor dead-lettered in what is saved, so collection (on any node, from what
    // it last read) never drops it. A crash in between leaves it pending and still listed.
    for (const l of letters) {
      this.progress.stream(l.stream).unmarkDead(l.seq);
      this.retries.restart(attemptKey(l.stream, l.seq));
    }
    await this.saveNow();
    await this.dead.remove(letters);
    this.pump();
    return letters.length;
  }

  /** Deletes dead letters (all, or those ids): they stay dead, and the log may drop them. */
  async deleteDeadLetters(ids?: readonly string[]): Promise<number> {
    const letters = this.selectLetters(ids);
    if (letters.length > 0) await this.dead.remove(letters);
    this.pump();
    return letters.length;
  }

  private selectLetters(ids?: readonly string[]): DeadLetter[] {
    if (ids === undefined) return this.dead.list();
    const wanted = new Set(ids);
    return this.dead.list().filter((l) => wanted.has(l.id));
  }

  // ------------------------------------------------------------------ reporting

  stateOf(stream: string, seq: number): MessageState | undefined {
    const p = this.progress.streams.get(stream);
    if (!p) return undefined;
    if (this.dead.has(stream, seq)) return 'dead';
    return p.stateOf(seq);
  }

  pendingCount(): number {
    let pending = 0;
    for (const name of this.deps.options.streams) {
      pending += pendingIn(this.progress.stream(name), this.deps.store.stream(name).lastSeq);
    }
    return pending;
  }

  /** Per stream with messages pending, the lowest pending seq: the route's oldest pending message there. */
  oldestPending(): { stream: string; seq: number }[] {
    const oldest: { stream: string; seq: number }[] = [];
    for (const name of this.deps.options.streams) {
      const seq = this.progress.stream(name).floor();
      if (seq <= this.deps.store.stream(name).lastSeq) oldest.push({ stream: name, seq });
    }
    return oldest;
  }

  private inFlightCount(): number {
    let n = 0;
    for (const f of this.flying.values()) n += f.size;
    return n;
  }

  async usedBytes(): Promise<number> {
    let bytes = 0;
    for (const name of this.deps.options.streams) {
      bytes += await this.deps.store.stream(name).bytesFrom(this.progress.stream(name).floor());
    }
    return bytes;
  }

  async snapshot(): Promise<RouteSnapshot> {
    const o = this.deps.options;
    const inFlight = this.inFlightCount();
    return {
      name: this.name,
      target: o.target,
      streams: o.streams,
      ordering: o.ordering,
      group: o.group,
      state: this.state.name,
      cause: this.state.cause,
      since: this.state.since,
      lastError: this.state.lastError,
      ...this.progress.counters,
      throttledMs: this.progress.counters.throttledMs + (this.gate?.throttledForMs() ?? 0),
      inQueue: this.pendingCount() - inFlight,
      inFlight,
      usedBytes: await this.usedBytes(),
      limitBytes: o.maxBytes,
      limitMessages: o.maxMessages,
      oldestAttemptMs: this.oldestAttemptMs(),
      overdueAttempts: this.overdueCount,
    };
  }

  // ------------------------------------------------------------------ persistence

  private scheduleSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = this.deps.clock.setTimeout(() => {
      this.saveTimer = undefined;
      void this.saveNow();
    }, this.deps.progressSaveDelayMs ?? 100);
  }

  /** Saves progress now (serialized: saves never overlap). */
  saveNow(): Promise<void> {
    this.saveTimer?.cancel();
    this.saveTimer = undefined;
    // Only the route's owner writes its progress (cluster mode).
    if (!this.mayDeliver()) return this.saving;
    this.progress.route = {
      state: this.state.name,
      since: this.state.since,
      lastError: this.state.lastError,
      probeFailures: this.state.probeFailures,
    };
    const inFlight = new Map<string, Iterable<number>>();
    for (const [name, f] of this.flying) inFlight.set(name, [...f.keys()]);
    this.saving = this.saving
      .then(() => this.progress.save(inFlight))
      .catch((err: unknown) => this.deps.onError(err, `route ${this.name}: saving progress`));
    return this.saving;
  }
}

function payloadBytes(messages: readonly StoredMessage[]): number {
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) bytes += messages[i]!.payloadBytes;
  return bytes;
}

function pendingIn(p: StreamProgress, last: number): number {
  if (last < p.start) return 0;
  return last - p.start + 1 - p.done.countIn(p.start, last);
}
