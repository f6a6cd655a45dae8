/**
 * The route state machine of SPEC §2 as one pure function: no timers, no I/O, so every
 * transition is tested directly (test/delivery/route-state.test.ts).
 *
 *   forwarding --(storeAfter consecutive nacks)--> storing --(probe ack)--> draining
 *   draining --(backlog empty)--> forwarding        draining --(nacks)--> storing
 *   any --(operator store)--> held --(operator forward)--> draining
 *
 * Groups: when a peer starts storing on its own failures, the others store too (`cause:
 * group`) and do not probe; they drain once no peer is storing on its own account.
 */
import type { RouteStateName } from '../store/route-progress.js';

export interface RouteState {
  name: RouteStateName;
  /** ms since the epoch of entering `name`. */
  since: number;
  /** Why the route is storing or held: its own failures/operator (`self`) or a group peer. */
  cause: 'self' | 'group';
  /** Consecutive failed delivery attempts (reset by an ack). */
  failures: number;
  /** Consecutive failed probes while storing (drives the probe backoff). */
  probeFailures: number;
  lastError: string | undefined;
}

export type RouteEvent =
  | { type: 'ack' }
  | { type: 'nack'; reason: string }
  | { type: 'probeAck' }
  | { type: 'probeNack'; reason: string }
  | { type: 'backlogEmpty' }
  | { type: 'store' }
  | { type: 'forward' }
  | { type: 'groupStore' }
  | { type: 'groupHold' }
  | { type: 'groupForward' };

export interface FailurePolicy {
  storeAndForward: boolean;
  storeAfterFailures: number;
}

export function initialRouteState(now: number): RouteState {
  return {
    name: 'forwarding',
    since: now,
    cause: 'self',
    failures: 0,
    probeFailures: 0,
    lastError: undefined,
  };
}

function enter(
  state: RouteState,
  name: RouteStateName,
  now: number,
  cause: 'self' | 'group' = 'self',
): RouteState {
  return { ...state, name, since: now, cause, failures: 0, probeFailures: 0 };
}

export function transition(
  state: RouteState,
  event: RouteEvent,
  policy: FailurePolicy,
  now: number,
): RouteState {
  const { name } = state;
  switch (event.type) {
    case 'ack':
      return name === 'forwarding' || name === 'draining' ? { ...state, failures: 0 } : state;
    case 'nack': {
      if (name !== 'forwarding' && name !== 'draining') return { ...state, lastError: event.reason };
      const failures = state.failures + 1;
      if (policy.storeAndForward && failures >= policy.storeAfterFailures) {
        return { ...enter(state, 'storing', now), lastError: event.reason };
      }
      return { ...state, failures, lastError: event.reason };
    }
    case 'probeAck':
      return name === 'storing' && state.cause === 'self' ? enter(state, 'draining', now) : state;
    case 'probeNack':
      return name === 'storing'
        ? { ...state, probeFailures: state.probeFailures + 1, lastError: event.reason }
        : state;
    case 'backlogEmpty':
      return name === 'draining' ? enter(state, 'forwarding', now) : state;
    case 'store':
      return name === 'held' && state.cause === 'self' ? state : enter(state, 'held', now);
    case 'forward':
      return name === 'held' || name === 'storing' ? enter(state, 'draining', now) : state;
    case 'groupStore':
      return name === 'forwarding' || name === 'draining' ? enter(state, 'storing', now, 'group') : state;
    case 'groupHold':
      return name === 'held' ? state : enter(state, 'held', now, 'group');
    case 'groupForward':
      return (name === 'storing' || name === 'held') && state.cause === 'group'
        ? enter(state, 'draining', now)
        : state;
  }
}
