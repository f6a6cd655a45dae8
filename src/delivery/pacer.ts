/**
 * The replay pacer: a token bucket for `replay.ratePerSecond` while a route drains its backlog.
 *
 * Tokens refill continuously at the rate, up to a burst of min(rate, batchMaxMessages) (at
 * least 1), so a drain sends batches no larger than it would without pacing and never more
 * than the rate over any second. A drain starts with a full burst. Time is passed in (ms, from
 * the route's clock); the pacer sets no timers: it says how long until the next token and the
 * runner arms the wake-up.
 */
export class Pacer {
  private tokens = 0;
  private tokensAt = 0;

  /**
   * @param ratePerSecond messages per second; 0 = unlimited (the pacer is then never asked)
   * @param batchMaxMessages the route's batch size, which caps the burst
   */
  constructor(
    private readonly ratePerSecond: number,
    private readonly batchMaxMessages: number,
  ) {}

  /** Whether the rate is limited at all. */
  get limited(): boolean {
    return this.ratePerSecond > 0;
  }

  /** A drain begins at `now`: the bucket is full. */
  refill(now: number): void {
    const rate = this.ratePerSecond;
    this.tokens = rate > 0 ? Math.min(rate, this.batchMaxMessages) : 0;
    this.tokensAt = now;
  }

  /** Whole messages that may go at `now` (tokens accrued since the last call are added first). */
  available(now: number): number {
    const rate = this.ratePerSecond;
    const burst = Math.max(1, Math.min(rate, this.batchMaxMessages));
    this.tokens = Math.min(burst, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
    return Math.floor(this.tokens);
  }

  /** `count` messages went out. */
  take(count: number): void {
    this.tokens -= count;
  }

  /** Ms from the last `available` call until one whole token is there (≤ 0 when it is). */
  msUntilNext(): number {
    return (1 - this.tokens) / (this.ratePerSecond / 1000);
  }
}
