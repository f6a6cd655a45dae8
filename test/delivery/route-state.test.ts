import { describe, expect, it } from 'vitest';
import {
  type FailurePolicy,
  initialRouteState,
  type RouteState,
  transition,
} from '../../src/delivery/route-state.js';

const sf: FailurePolicy = { storeAndForward: true, storeAfterFailures: 1 };
const at = (s: Partial<RouteState>): RouteState => ({ ...initialRouteState(0), ...s });

describe('route state machine', () => {
  it('stores after the configured number of consecutive nacks, and an ack resets the count', () => {
    const policy = { storeAndForward: true, storeAfterFailures: 3 };
    let s = initialRouteState(0);
    s = transition(s, { type: 'nack', reason: 'x' }, policy, 1);
    s = transition(s, { type: 'ack' }, policy, 2);
    s = transition(s, { type: 'nack', reason: 'x' }, policy, 3);
    s = transition(s, { type: 'nack', reason: 'y' }, policy, 4);
    expect(s).toMatchObject({ name: 'forwarding', failures: 2, lastError: 'y' });
    s = transition(s, { type: 'nack', reason: 'z' }, policy, 5);
    expect(s).toMatchObject({ name: 'storing', since: 5, cause: 'self', lastError: 'z', failures: 0 });
  });

  it('never stores with store-and-forward off', () => {
    const s = transition(
      initialRouteState(0),
      { type: 'nack', reason: 'x' },
      { storeAndForward: false, storeAfterFailures: 1 },
      1,
    );
    expect(s.name).toBe('forwarding');
  });

  it('goes storing -> draining on a probe ack and counts failed probes', () => {
    let s = at({ name: 'storing' });
    s = transition(s, { type: 'probeNack', reason: 'down' }, sf, 1);
    s = transition(s, { type: 'probeNack', reason: 'down' }, sf, 2);
    expect(s).toMatchObject({ name: 'storing', probeFailures: 2 });
    s = transition(s, { type: 'probeAck' }, sf, 3);
    expect(s).toMatchObject({ name: 'draining', since: 3, probeFailures: 0 });
  });

  it('goes draining -> forwarding when the backlog is empty, and back to storing on failure', () => {
    expect(transition(at({ name: 'draining' }), { type: 'backlogEmpty' }, sf, 1).name).toBe('forwarding');
    expect(transition(at({ name: 'draining' }), { type: 'nack', reason: 'x' }, sf, 1).name).toBe('storing');
    expect(transition(at({ name: 'forwarding' }), { type: 'backlogEmpty' }, sf, 1).name).toBe('forwarding');
  });

  it('holds on operator store from any state and drains on forward', () => {
    for (const name of ['forwarding', 'storing', 'draining'] as const) {
      const held = transition(at({ name }), { type: 'store' }, sf, 1);
      expect(held).toMatchObject({ name: 'held', cause: 'self' });
      expect(transition(held, { type: 'nack', reason: 'x' }, sf, 2).name).toBe('held');
      expect(transition(held, { type: 'probeAck' }, sf, 2).name).toBe('held');
      expect(transition(held, { type: 'forward' }, sf, 2).name).toBe('draining');
    }
  });

  it('follows group peers without probing on their behalf', () => {
    const stored = transition(at({ name: 'forwarding' }), { type: 'groupStore' }, sf, 1);
    expect(stored).toMatchObject({ name: 'storing', cause: 'group' });
    // A group-stored route does not leave on a probe ack of its own...
    expect(transition(stored, { type: 'probeAck' }, sf, 2)).toBe(stored);
    // ...only when the group forwards.
    expect(transition(stored, { type: 'groupForward' }, sf, 2).name).toBe('draining');
    // A route storing on its own account ignores groupForward.
    const self = at({ name: 'storing', cause: 'self' });
    expect(transition(self, { type: 'groupForward' }, sf, 2)).toBe(self);
    expect(transition(at({ name: 'draining' }), { type: 'groupHold' }, sf, 2)).toMatchObject({
      name: 'held',
      cause: 'group',
    });
  });
});
