/**
 * A route's delivery policy, fully resolved (SPEC §2 and §5 route keys). Units are in the names;
 * the user-facing config (strings like "5s") is parsed into this by src/config.
 */
export const Orderings = ['fifo', 'lifo', 'unordered', 'key'] as const;
export type Ordering = (typeof Orderings)[number];
export const OnFullPolicies = ['drop-oldest', 'reject-new'] as const;
export type OnFull = (typeof OnFullPolicies)[number];

export interface RouteOptions {
  name: string;
  streams: readonly string[];
  target: string;
  /** Default fifo: strict, the backlog drains before any newer message. */
  ordering: Ordering;
  /** Default true. Off: nacks are retried per `retry`, then dead-lettered. */
  storeAndForward: boolean;
  /** Consecutive nacks that switch to storing. Default 1. */
  storeAfterFailures: number;
  /** First probe delay while storing, ms. Default 5 000. */
  probeIntervalMs: number;
  /** Probe backoff cap, ms. Default 300 000. */
  probeIntervalMaxMs: number;
  /** Backlog replay rate while draining, messages/s; 0 = unlimited. Default 0. */
  replayRatePerSecond: number;
  /** Backlog replay byte rate while draining (payload bytes/s); 0 = unlimited. Default 0. */
  replayBytesPerSecond: number;
  /**
   * 0 (highest) … 9: where routes share a byte budget, the lower number goes first; every
   * waiting route keeps a minimum share (docs/delivery.md). Default 4.
   */
  priority: number;
  /**
   * The byte budgets on this route's path besides its own (payload bytes/s; undefined = none):
   * its target's `maxBytesPerSecond`, shared by every route to that target, and the gateway's
   * `delivery.maxBytesPerSecond`, shared by all routes. The engine makes one budget for each.
   * They apply to every send (forwarding, replay and probes).
   */
  targetMaxBytesPerSecond: number | undefined;
  gatewayMaxBytesPerSecond: number | undefined;
  /** With storeAndForward off: attempts per message (default 3) and backoff (default 1 s, max 60 s). */
  retryAttempts: number;
  retryBackoffMs: number;
  retryBackoffMaxMs: number;
  /** Messages older than this are expired, ms; undefined = no limit. Per-message TTLs also apply. */
  maxAgeMs: number | undefined;
  maxMessages: number | undefined;
  maxBytes: number | undefined;
  /** At a maxMessages/maxBytes limit: prune the oldest (default) or refuse publishes (507). */
  onFull: OnFull;
  /** Period of the retention sweep, ms. Default 60 000. */
  cleanupIntervalMs: number;
  group: string | undefined;
  /** Messages per delivery (default 1 = one message per call). */
  batchMaxMessages: number;
  /** Bytes per delivery batch (payloads). Default 1 MiB. */
  batchMaxBytes: number;
  /** While forwarding, wait up to this long to fill a batch, ms. Default 0. */
  batchMaxWaitMs: number;
  /** Batches out at the target at once. Default 1 (keeps fifo strict). */
  maxInFlight: number;
  /** One delivery attempt longer than this counts as a nack, ms. Default 30 000. */
  attemptTimeoutMs: number;
}

export const routeDefaults = {
  ordering: 'fifo',
  storeAndForward: true,
  storeAfterFailures: 1,
  probeIntervalMs: 5_000,
  probeIntervalMaxMs: 300_000,
  replayRatePerSecond: 0,
  replayBytesPerSecond: 0,
  priority: 4,
  targetMaxBytesPerSecond: undefined,
  gatewayMaxBytesPerSecond: undefined,
  retryAttempts: 3,
  retryBackoffMs: 1_000,
  retryBackoffMaxMs: 60_000,
  maxAgeMs: undefined,
  maxMessages: undefined,
  maxBytes: undefined,
  onFull: 'drop-oldest',
  cleanupIntervalMs: 60_000,
  group: undefined,
  batchMaxMessages: 1,
  batchMaxBytes: 1024 * 1024,
  batchMaxWaitMs: 0,
  maxInFlight: 1,
  attemptTimeoutMs: 30_000,
} as const satisfies Omit<RouteOptions, 'name' | 'streams' | 'target'>;

export type RouteOptionsInput = Pick<RouteOptions, 'name' | 'streams' | 'target'> &
  Partial<Omit<RouteOptions, 'name' | 'streams' | 'target'>>;

export function resolveRouteOptions(input: RouteOptionsInput): Readonly<RouteOptions> {
  return Object.freeze({ ...routeDefaults, ...stripUndefined(input) });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
