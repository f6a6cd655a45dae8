/**
 * Issue 15: a route with a backlog and a reachable target always makes progress. Every delivery
 * attempt ends (ack, nack or timeout) within the route's timeout whatever the target does, what
 * escapes that is reported by the watchdog, and nothing leaves a route with pending messages,
 * nothing in flight and no timer armed. Deterministic: fake clock, in-memory disk, and the
 * simulation checks liveness after every step of the clock (test/support/sim.ts).
 */
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/admin/metrics.js';
import type { Outcome } from '../../src/delivery/target.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { livenessViolation, openSim } from '../support/sim.js';

const base = { targets: { t: { type: 'null' as const } } };

/** An in-memory disk whose side-file (blob) reads can be made to hang. */
class HangingReads extends MemFileSystem {
  hang = false;
  override readStream(path: string, start?: number): Readable {
    if (this.hang) return new ReadableStream({ read() {} }); // never a byte, never an end
    return super.readStream(path, start);
  }
}

describe('delivery attempts end within the route timeout', () => {
  it('nacks an attempt at the timeout when the target never settles and ignores the abort', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', timeout: '2s', probeInterval: '1s' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'hang-forever';
    await sim.publish('s', 'a', 'b');
    await sim.clock.advance(1_999);
    expect(await sim.ws.route('r').snapshot()).toMatchObject({
      state: 'forwarding',
      inFlight: 1,
      oldestAttemptMs: 1_999,
    });
    await sim.clock.advance(1);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap).toMatchObject({ state: 'storing', inFlight: 0, oldestAttemptMs: 0, failures: 1 });
    expect(snap.lastError).toMatch(/no answer within 2000 ms/);
    t.behaviour = 'up';
    await sim.clock.advance(1_000);
    expect(t.texts()).toEqual(['a', 'b']);
    expect(await sim.state('r')).toBe('forwarding');
    await sim.close();
  });

  it('counts a target that throws synchronously from deliver() as a nack at once', async () => {
    const sim = await openSim({
      ...base,
      routes: { r: { streams: ['s'], target: 't', timeout: '1h', probeInterval: '1s' } },
    });
    const t = sim.targets.t!;
    t.behaviour = 'throw';
    await sim.publish('s', 'a');
    const snap = await sim.ws.route('r').snapshot();
    expect(snap).toMatchObject({ state: 'storing', inFlight: 0, failures: 1 });
    expect(snap.lastError).toMatch(/threw synchronously/);
    t.behaviour = 'up';
    await sim.clock.advance(1_000);
    expect(t.texts()).toEqual(['a']);
    await sim.close();
  });

  it("ends a payload read that hangs with the attempt, so the target's own call settles too", async () => {
    const fs = new HangingReads();
    const sim = await openSim(
      {
        ...base,
        storage: { blobThreshold: '1KiB' },
        routes: { r: { streams: ['s'], target: 't', timeout: '2s', probeInterval: '1s' } },
      },
      fs,
    );
    const t = sim.targets.t!;
    // Like the ndjson and template targets: read the whole payload, then answer.
    t.behaviour = async (d): Promise<Outcome> => {
      let bytes = 0;
      for await (const chunk of d.openPayload()) bytes += (chunk as Buffer).byteLength;
      return bytes === d.payloadBytes ? { kind: 'ack' } : { kind: 'nack', reason: 'short read' };
    };
    fs.hang = true;
    await sim.ws.publish('s', Buffer.alloc(4096, 1));
    await sim.clock.advance(0);
    expect(t.unsettled).toBe(1);
    await sim.clock.advance(2_000);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap).toMatchObject({ state: 'storing', inFlight: 0 });
    // The read was destroyed with the attempt: the target is not left hanging on it for ever.
    expect(t.unsettled).toBe(0);
    fs.hang = false;
    await sim.clock.advance(1_000);
    expect(await sim.ws.route('r').snapshot()).toMatchObject({
      state: 'forwarding',
      forwarded: 1,
      inQueue: 0,
    });
    await sim.close();
  });

  it('keeps recording outcomes and frees the slot when the attempt observer throws', async () => {
    const errors: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => errors.push(line) });
    const sim = await openSim(
      { ...base, routes: { r: { streams: ['s'], target: 't' } } },
      new MemFileSystem(),
      {
        logger,
        observe: {
          delivery: () => {
            throw new Error('metrics broke');
          },
        },
      },
    );
    await sim.publish('s', 'a', 'b', 'c');
    expect(sim.targets.t!.texts()).toEqual(['a', 'b', 'c']);
    expect(await sim.ws.route('r').snapshot()).toMatchObject({ forwarded: 3, inFlight: 0, inQueue: 0 });
    expect(errors.join('')).toMatch(/metrics broke/);
    await sim.close();
  });
});

describe('the watchdog', () => {
  it('warns about, counts and exports an attempt in flight past its timeout', async () => {
    const warnings: { msg: string; ageMs: number }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    const sim = await openSim(
      { ...base, routes: { r: { streams: ['s'], target: 't', timeout: '2s' } } },
      new MemFileSystem(),
      { logger },
    );
    const t = sim.targets.t!;
    const route = sim.ws.route('r');
    route.store();
    await sim.publish('s', 'a');
    // The target rejects the message; recording the dead letter needs an fsync the disk does not
    // answer: the attempt cannot end, which only a stalled disk can do. The watchdog must say so.
    t.behaviour = () => ({ kind: 'error', reason: 'rejected' });
    const release = sim.fs.stall('sync');
    route.forward();
    await sim.clock.advance(3_000);
    expect(warnings.filter((w) => w.msg.includes('past its'))).toEqual([]);
    await sim.clock.advance(1_000);
    const snap = await route.snapshot();
    expect(snap).toMatchObject({ inFlight: 1, overdueAttempts: 1 });
    expect(snap.oldestAttemptMs).toBeGreaterThan(3_000);
    const overdue = warnings.filter((w) => w.msg.includes('past its 2000 ms timeout'));
    expect(overdue).toHaveLength(1);
    expect(overdue[0]!.msg).toMatch(/route r: a delivery attempt \(1 message\(s\) of s from seq 1\)/);
    const metrics = createMetrics(() => sim.ws);
    await metrics.refresh();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/waystation_delivery_attempts_overdue_total\{route="r"\} 1/);
    expect(text).toMatch(/waystation_route_oldest_attempt_seconds\{route="r"\} [3-9]/);
    // Reported once per attempt, not once per look.
    await sim.clock.advance(5_000);
    expect(warnings.filter((w) => w.msg.includes('past its'))).toHaveLength(1);
    release();
    await sim.clock.advance(0);
    expect(await route.snapshot()).toMatchObject({ inFlight: 0, deadLettered: 1, oldestAttemptMs: 0 });
    await sim.close();
  });

  it('stays quiet while attempts end in time', async () => {
    const sim = await openSim({ ...base, routes: { r: { streams: ['s'], target: 't', timeout: '2s' } } });
    sim.targets.t!.behaviour = 'hang';
    await sim.publish('s', 'a');
    for (let i = 0; i < 20; i++) await sim.clock.advance(1_000);
    expect((await sim.ws.route('r').snapshot()).overdueAttempts).toBe(0);
    await sim.close();
  });
});

describe('liveness', () => {
  it('a message that became final while waiting for its retry no longer blocks its key', async () => {
    // Found by the liveness invariant of the fates property test: a purged message's retry
    // bookkeeping blocked its key with no timer left to look again, so the route sat forever
    // with a pending message, nothing in flight and a target that acks.
    const sim = await openSim({
      ...base,
      routes: {
        r: {
          streams: ['s'],
          target: 't',
          ordering: 'key',
          storeAndForward: false,
          retry: { attempts: 3, backoff: '1s' },
        },
      },
    });
    const t = sim.targets.t!;
    t.behaviour = (d) => (d.attempt === 1 && d.seq <= 2 ? { kind: 'nack', reason: 'busy' } : { kind: 'ack' });
    await sim.ws.publish('s', Buffer.from('a'), { key: 'ka' }); // nacked: retry at +1000
    await sim.clock.advance(1);
    await sim.ws.publish('s', Buffer.from('b1'), { key: 'kb' }); // nacked: retry at +1001
    await sim.ws.publish('s', Buffer.from('b2'), { key: 'kb' }); // waits behind b1
    await sim.clock.advance(0);
    expect(await sim.ws.route('r').purge({ top: 2 })).toBe(2); // a and b1, waiting for their retries
    t.behaviour = 'up';
    await sim.clock.advance(5_000);
    expect(t.texts()).toEqual(['b2']);
    expect(await sim.ws.route('r').snapshot()).toMatchObject({
      inQueue: 0,
      inFlight: 0,
      purged: 2,
      forwarded: 1,
    });
    expect(await livenessViolation(sim.ws, 'r')).toBeUndefined();
    await sim.close();
  });
});
