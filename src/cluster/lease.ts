/**
 * One owner per route: a lease per route in a KV bucket whose entries expire `leaseTtlMs` after
 * their last write (JetStream KV: the bucket's `max_age`).
 *
 * - Taken with `create` (succeeds only if the key is absent or expired), renewed by
 *   compare-and-set `update(revision)`. The revision of the owner's last write is the fencing
 *   token: it grows with every write to the bucket, and a CAS on an old one fails.
 * - An owner may send only while `now < validUntil`, where `validUntil` is the monotonic time at
 *   which the write that gave it the lease was *started*, plus `leaseTtlMs − safetyMarginMs`.
 *   The server stores that write no earlier than it was started, so the entry expires no earlier
 *   than `start + leaseTtlMs`; no other node can create the key before then. The margin covers
 *   the rate difference between this node's monotonic clock and the servers' clocks.
 * - A renewal that fails (conflict, error, timeout) stops sending at once. After an error the
 *   write may or may not have committed: the node asks (`get`) and adopts the entry only if it is
 *   the one it last wrote or one of its own unanswered writes (a nonce in the value says which),
 *   with the validity of that write's start. Anything else: the lease is lost.
 *
 * This module is pure: `transition(state, event, options) → { state, commands }` and
 * `maySend(state, now)`. `LeaseKeeper` (below) runs it over a `LeaseKv` with real timers;
 * test/cluster/lease.model.test.ts runs it against a simulated network and KV.
 */
import { ArgumentError } from '../errors.js';

/** A stored lease entry. `revision` is the fencing token. */
export interface LeaseEntry {
  readonly value: LeaseValue;
  readonly revision: number;
}

/** What a lease entry holds (JSON in the bucket). */
export interface LeaseValue {
  /** The owning node's id. */
  readonly owner: string;
  /** Unique per write attempt: lets the owner recognise a write whose answer it never got. */
  readonly nonce: string;
}

export type KvWriteResult = { readonly ok: true; readonly revision: number } | { readonly ok: false };

/**
 * The key-value operations a lease needs. `create` and `update` answer `{ ok: false }` when the
 * key exists / its revision is not `revision`; any other failure rejects.
 */
export interface LeaseKv {
  create(key: string, value: LeaseValue): Promise<KvWriteResult>;
  update(key: string, value: LeaseValue, revision: number): Promise<KvWriteResult>;
  /** The current live entry, or null (absent, deleted or expired). */
  get(key: string): Promise<LeaseEntry | null>;
  /** Deletes the entry if its revision is still `revision` (a release); never rejects on conflict. */
  delete(key: string, revision: number): Promise<void>;
}

export interface LeaseOptions {
  /** How long an entry lives after its last write (the bucket's TTL). Default 10 000 ms. */
  leaseTtlMs?: number;
  /** Subtracted from the TTL when the owner computes how long it may send. Default ttl / 5. */
  safetyMarginMs?: number;
  /** How often the owner renews. Default ttl / 3 (must be below ttl − margin). */
  renewIntervalMs?: number;
  /** How often a node that does not own the route tries to take it. Default ttl / 4. */
  acquireIntervalMs?: number;
  /** A KV request with no answer after this counts as failed (the keeper). Default ttl / 5. */
  requestTimeoutMs?: number;
}

export type ResolvedLeaseOptions = Readonly<Required<LeaseOptions>>;

export function resolveLeaseOptions(options: LeaseOptions = {}): ResolvedLeaseOptions {
  const leaseTtlMs = options.leaseTtlMs ?? 10_000;
  const safetyMarginMs = options.safetyMarginMs ?? Math.floor(leaseTtlMs / 5);
  const renewIntervalMs = options.renewIntervalMs ?? Math.floor(leaseTtlMs / 3);
  const acquireIntervalMs = options.acquireIntervalMs ?? Math.floor(leaseTtlMs / 4);
  const requestTimeoutMs = options.requestTimeoutMs ?? Math.floor(leaseTtlMs / 5);
  const positive = { leaseTtlMs, renewIntervalMs, acquireIntervalMs, requestTimeoutMs };
  for (const [name, v] of Object.entries(positive)) {
    if (!Number.isFinite(v) || v <= 0) throw new ArgumentError(`lease option ${name} must be > 0 (got ${v})`);
  }
  if (!(safetyMarginMs >= 0 && safetyMarginMs < leaseTtlMs)) {
    throw new ArgumentError(`lease option safetyMarginMs must be in [0, leaseTtlMs) (got ${safetyMarginMs})`);
  }
  if (renewIntervalMs >= leaseTtlMs - safetyMarginMs) {
    throw new ArgumentError(
      `lease option renewIntervalMs (${renewIntervalMs}) must be below leaseTtlMs − safetyMarginMs ` +
        `(${leaseTtlMs - safetyMarginMs}), or the lease lapses between renewals`,
    );
  }
  return Object.freeze({ leaseTtlMs, safetyMarginMs, renewIntervalMs, acquireIntervalMs, requestTimeoutMs });
}

/** A write whose answer never came: it may have committed. */
interface Unanswered {
  readonly nonce: string;
  readonly startedAt: number;
}

export type LeaseState =
  /** Not owner; `nextTryAt`: when to try `create` again. */
  | { readonly kind: 'idle'; readonly nextTryAt: number; readonly unanswered: readonly Unanswered[] }
  /** `create` in flight. */
  | { readonly kind: 'acquiring'; readonly attempt: Unanswered; readonly unanswered: readonly Unanswered[] }
  /** Owner: may send while now < validUntil. `renewAt`: when to renew. */
  | {
      readonly kind: 'owner';
      readonly revision: number;
      readonly validUntil: number;
      readonly renewAt: number;
    }
  /** Owner with an `update` in flight; still may send while now < validUntil. */
  | {
      readonly kind: 'renewing';
      readonly revision: number;
      readonly validUntil: number;
      readonly attempt: Unanswered;
    }
  /** A write failed without an answer: not sending; `get` in flight to learn what happened. */
  | {
      readonly kind: 'checking';
      /** The revision this node last wrote and knows of, if any. */
      readonly revision: number | undefined;
      readonly validUntil: number;
      readonly unanswered: readonly Unanswered[];
    }
  /** Released or stopped: never sends again. */
  | { readonly kind: 'stopped' };

export type LeaseEvent =
  | { readonly type: 'tick'; readonly now: number }
  | { readonly type: 'created'; readonly now: number; readonly result: KvWriteResult | 'error' }
  | { readonly type: 'updated'; readonly now: number; readonly result: KvWriteResult | 'error' }
  | { readonly type: 'got'; readonly now: number; readonly entry: LeaseEntry | null | 'error' }
  | { readonly type: 'stop'; readonly now: number };

export type LeaseCommand =
  | { readonly type: 'create'; readonly value: LeaseValue }
  | { readonly type: 'update'; readonly value: LeaseValue; readonly revision: number }
  | { readonly type: 'get' }
  | { readonly type: 'delete'; readonly revision: number };

export interface LeaseStep {
  readonly state: LeaseState;
  readonly commands: readonly LeaseCommand[];
}

/** Identity and nonce source of one node's lease on one key (the nonce must be unique per call). */
export interface LeaseContext {
  readonly nodeId: string;
  nextNonce(): string;
}

/** How many unanswered writes to remember (older ones can no longer be adopted: harmless). */
const MAX_UNANSWERED = 4;

export function initialLeaseState(now: number): LeaseState {
  return { kind: 'idle', nextTryAt: now, unanswered: [] };
}

/** Whether the node may send for the route at monotonic time `now`. */
export function maySend(state: LeaseState, now: number): boolean {
  return (state.kind === 'owner' || state.kind === 'renewing') && now < state.validUntil;
}

/** The fencing token while the node may send, else undefined. */
export function fencingToken(state: LeaseState, now: number): number | undefined {
  return maySend(state, now) && (state.kind === 'owner' || state.kind === 'renewing')
    ? state.revision
    : undefined;
}

/** Whether a command is in flight (the state waits for its answer). */
export function awaitingAnswer(state: LeaseState): boolean {
  return state.kind === 'acquiring' || state.kind === 'renewing' || state.kind === 'checking';
}

const remember = (list: readonly Unanswered[], a: Unanswered): readonly Unanswered[] =>
  [...list, a].slice(-MAX_UNANSWERED);

const stay = (state: LeaseState): LeaseStep => ({ state, commands: [] });

export function transition(
  state: LeaseState,
  event: LeaseEvent,
  ctx: LeaseContext,
  o: ResolvedLeaseOptions,
): LeaseStep {
  const validUntilFor = (startedAt: number) => startedAt + o.leaseTtlMs - o.safetyMarginMs;
  if (state.kind === 'stopped') return stay(state);
  if (event.type === 'stop') {
    // A release: delete our entry if it is still ours, so another node need not wait for the TTL.
    const rev = state.kind === 'owner' || state.kind === 'renewing' ? state.revision : undefined;
    return {
      state: { kind: 'stopped' },
      commands: rev === undefined ? [] : [{ type: 'delete', revision: rev }],
    };
  }
  const now = event.now;
  switch (state.kind) {
    case 'idle': {
      if (event.type !== 'tick' || now < state.nextTryAt) return stay(state);
      const attempt = { nonce: ctx.nextNonce(), startedAt: now };
      return {
        state: { kind: 'acquiring', attempt, unanswered: state.unanswered },
        commands: [{ type: 'create', value: { owner: ctx.nodeId, nonce: attempt.nonce } }],
      };
    }
    case 'acquiring': {
      if (event.type !== 'created') return stay(state);
      const r = event.result;
      if (r === 'error') {
        return {
          state: {
            kind: 'checking',
            revision: undefined,
            validUntil: now,
            unanswered: remember(state.unanswered, state.attempt),
          },
          commands: [{ type: 'get' }],
        };
      }
      if (!r.ok) {
        // Taken. If an earlier create of ours went unanswered, the entry may be that one: ask.
        if (state.unanswered.length > 0) {
          return {
            state: { kind: 'checking', revision: undefined, validUntil: now, unanswered: state.unanswered },
            commands: [{ type: 'get' }],
          };
        }
        return stay({ kind: 'idle', nextTryAt: now + o.acquireIntervalMs, unanswered: [] });
      }
      return stay({
        kind: 'owner',
        revision: r.revision,
        validUntil: validUntilFor(state.attempt.startedAt),
        renewAt: now + o.renewIntervalMs,
      });
    }
    case 'owner': {
      if (event.type !== 'tick' || now < state.renewAt) return stay(state);
      const attempt = { nonce: ctx.nextNonce(), startedAt: now };
      return {
        state: { kind: 'renewing', revision: state.revision, validUntil: state.validUntil, attempt },
        commands: [
          { type: 'update', value: { owner: ctx.nodeId, nonce: attempt.nonce }, revision: state.revision },
        ],
      };
    }
    case 'renewing': {
      if (event.type !== 'updated') return stay(state);
      const r = event.result;
      if (r === 'error') {
        return {
          state: {
            kind: 'checking',
            revision: state.revision,
            validUntil: state.validUntil,
            unanswered: [state.attempt],
          },
          commands: [{ type: 'get' }],
        };
      }
      // Someone else's write came between: the lease is gone (we stop at once).
      if (!r.ok) return stay({ kind: 'idle', nextTryAt: now + o.acquireIntervalMs, unanswered: [] });
      return stay({
        kind: 'owner',
        revision: r.revision,
        validUntil: validUntilFor(state.attempt.startedAt),
        renewAt: state.attempt.startedAt + o.renewIntervalMs,
      });
    }
    case 'checking': {
      if (event.type !== 'got') return stay(state);
      const e = event.entry;
      if (e === 'error') {
        // Cannot tell: keep not sending and ask again on the next acquire interval.
        return stay({ kind: 'idle', nextTryAt: now + o.acquireIntervalMs, unanswered: state.unanswered });
      }
      if (e === null) return stay({ kind: 'idle', nextTryAt: now, unanswered: [] });
      if (e.value.owner === ctx.nodeId) {
        const mine = state.unanswered.find((u) => u.nonce === e.value.nonce);
        if (mine !== undefined) {
          // One of our unanswered writes committed: the entry is ours since no earlier than its start.
          return stay({
            kind: 'owner',
            revision: e.revision,
            validUntil: validUntilFor(mine.startedAt),
            renewAt: now,
          });
        }
        if (e.revision === state.revision) {
          // The failed write did not commit; our previous one still stands.
          return stay({ kind: 'owner', revision: e.revision, validUntil: state.validUntil, renewAt: now });
        }
      }
      return stay({ kind: 'idle', nextTryAt: now + o.acquireIntervalMs, unanswered: [] });
    }
  }
}
