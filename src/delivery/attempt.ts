/**
 * One delivery attempt (a batch at the target) and the deliveries it hands over: the attempt's
 * timer is armed the moment its messages count as in flight, and whatever the target does, the
 * attempt resolves with one outcome per message by the route's timeout.
 */
import { addAbortSignal, PassThrough, type Readable } from 'node:stream';
import type { MessageStream } from '../store/backend.js';
import type { StoredMessage } from '../store/message.js';
import type { Clock, TimerHandle } from './clock.js';
import type { Delivery, Outcome } from './target.js';

/** A picked batch: messages of one stream, in delivery order. */
export interface Batch {
  stream: MessageStream;
  messages: StoredMessage[];
  /** A probe while storing (one message). */
  probe: boolean;
}

/**
 * A message as handed to the target. A class rather than an object literal, so a batch costs no
 * closure per message for `openPayload`; the stream and message it reads from stay private.
 */
export class MessageDelivery implements Delivery {
  readonly id: string;
  readonly stream: string;
  readonly seq: number;
  readonly key: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly timestamp: number;
  readonly payloadBytes: number;
  readonly payload: Buffer | undefined;
  readonly attempt: number;
  readonly #source: MessageStream;
  readonly #message: StoredMessage;

  readonly #signal: AbortSignal;

  constructor(source: MessageStream, m: StoredMessage, attempt: number, signal: AbortSignal) {
    this.id = m.id;
    this.stream = m.stream;
    this.seq = m.seq;
    this.key = m.key;
    this.headers = m.headers;
    this.timestamp = m.timestamp;
    this.payloadBytes = m.payloadBytes;
    this.payload = m.payload;
    this.attempt = attempt;
    this.#source = source;
    this.#message = m;
    this.#signal = signal;
  }

  /**
   * The payload fails the moment the attempt ends (timeout, shutdown), even while a read of its
   * side file hangs: the target reads a pass-through the abort destroys at once (destroying the
   * file's stream itself would wait for the hung read), so a target reading it settles too.
   */
  openPayload(): Readable {
    const source = this.#source.openPayload(this.#message);
    const out = new PassThrough();
    source.once('error', (err) => out.destroy(err));
    out.once('close', () => source.destroy());
    addAbortSignal(this.#signal, out);
    return source.pipe(out);
  }
}

/**
 * One delivery attempt (a batch), from the moment its messages count as in flight until its
 * outcomes are recorded. The timer is armed in the constructor, before anything else is done
 * with the batch: `cutShort` resolves with nacks once the route's timeout passes (and the
 * signal aborts, so the target and payload reads stop) or when the attempt is aborted.
 */
export class Attempt {
  readonly controller = new AbortController();
  readonly startedAt: number;
  readonly cutShort: Promise<readonly Outcome[]>;
  /** Reported by the watchdog already. */
  overdue = false;
  private timer: TimerHandle | undefined;

  constructor(
    readonly batch: Batch,
    clock: Clock,
    timeoutMs: number,
  ) {
    this.startedAt = clock.now();
    const { signal } = this.controller;
    this.cutShort = new Promise((resolve) => {
      this.timer = clock.setTimeout(() => {
        this.timer = undefined;
        resolve(this.nacks(`no answer within ${timeoutMs} ms`));
        this.controller.abort(new Error(`delivery attempt timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      signal.addEventListener('abort', () => resolve(this.nacks(`aborted: ${String(signal.reason)}`)), {
        once: true,
      });
    });
  }

  nacks(reason: string): Outcome[] {
    const out: Outcome[] = new Array(this.batch.messages.length);
    for (let i = 0; i < out.length; i++) out[i] = { kind: 'nack', reason };
    return out;
  }

  /** Disarms the timer (the attempt has its outcomes). */
  end(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
