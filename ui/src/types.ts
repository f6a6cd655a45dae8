/**
 * The wire shapes the dashboard reads. Kept here (the page is built without Node's types); the
 * gateway's own types must stay assignable to them, which test/http/ui-session.test.ts checks
 * at compile time.
 */

export type RouteStateName = 'forwarding' | 'storing' | 'draining' | 'held';

export interface UiRoute {
  name: string;
  target: string;
  streams: readonly string[];
  state: RouteStateName;
  cause: 'self' | 'group';
  since: number;
  lastError: string | undefined;
  inQueue: number;
  inFlight: number;
  usedBytes: number;
  limitBytes: number | undefined;
  forwarded: number;
  expired: number;
  pruned: number;
  purged: number;
  deadLettered: number;
  /** Dead letters held now. */
  deadLetters: number;
}

export interface UiStream {
  name: string;
  firstSeq: number;
  lastSeq: number;
  messages: number;
  bytes: number;
  routes: readonly string[];
}

export interface UiSnapshot {
  at: number;
  routes: UiRoute[];
  streams: UiStream[];
  totals: {
    inQueue: number;
    inFlight: number;
    usedBytes: number;
    limitBytes: number;
    deadLetters: number;
    forwarded: number;
    published: number;
  };
}

export interface KeyedChanges<T extends { name: string }> {
  set?: T[];
  remove?: string[];
  order?: string[];
}

/** The live stream's `delta` event: what changed since the event `base`. */
export interface UiDelta {
  base: string;
  at: number;
  routes?: KeyedChanges<UiRoute>;
  streams?: KeyedChanges<UiStream>;
  totals?: Partial<UiSnapshot['totals']>;
}

export interface SessionInfo {
  auth: boolean;
  signedIn: boolean;
  name?: string;
  scopes?: string[];
  csrf?: string;
  expiresAt?: number;
}

export interface DeadLetter {
  id: string;
  stream: string;
  seq: number;
  key: string | undefined;
  reason: string;
  attempts: number;
  lastError: string;
  /** When it was dead-lettered: its last failure. */
  at: number;
  /** Its first failed attempt (absent in letters recorded before it was). */
  firstFailedAt?: number;
  /** The payload's size (absent in letters recorded before it was, and for damaged records). */
  bytes?: number;
}

export interface MqttSubscriber {
  clientId: string;
  lastAcknowledgedSeq: number;
  behind: number;
  missedByRetention: number;
  connected: boolean;
}

export interface MqttTopic {
  topic: string;
  stream: string;
  source: 'config' | 'runtime';
  messages: number;
  firstSeq: number;
  lastSeq: number;
  subscribers: MqttSubscriber[];
}

export interface MqttClient {
  clientId: string;
  username: string | null;
  protocolVersion: 3 | 4 | 5;
  remote: string;
  connectedAt: number;
  keepAliveSeconds: number;
  subscriptions: number;
}

export type HistoryWindow = '5m' | '1h' | '24h';
export type RateField = 'stored' | 'forwarded' | 'expired' | 'pruned' | 'deadLettered';

/** GET /v1/routes/{route}/history: columns, oldest first; null where the gateway saw nothing. */
export interface RouteHistory {
  route: string;
  window: HistoryWindow;
  stepMs: number;
  at: number;
  t: number[];
  inQueue: (number | null)[];
  usedBytes: (number | null)[];
  rates: Record<RateField, (number | null)[]>;
  current: {
    inQueue: number;
    usedBytes: number;
    limitBytes: number | null;
    limitMessages: number | null;
    oldestPendingAt: number | null;
    lastDeliveredAt: number | null;
  };
  estimates: { drainSeconds: number | null; fullSeconds: number | null };
}

/** GET /v1/routes/{route}/timeline: one event. */
export type TimelineEvent =
  | {
      kind: 'state';
      at: number;
      from: RouteStateName;
      to: RouteStateName;
      by?: 'operator' | 'its own failures' | 'group peer';
      lastError?: string;
    }
  | { kind: 'action'; at: number; action: string; by: string; count?: number; top?: number }
  | { kind: 'start' | 'stop'; at: number };

/** GET /v1/routes:activity. */
export interface RouteActivity {
  at: number;
  stepMs: number;
  routes: {
    name: string;
    oldestPendingAt: number | null;
    lastDeliveredAt: number | null;
    inQueue: (number | null)[];
  }[];
}
