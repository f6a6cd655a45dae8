import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/admin/metrics.js';
import { parseConfig } from '../../src/config/resolve.js';
import { ConfigError } from '../../src/errors.js';
import type { WaystationConfigInput } from '../../src/index.js';
import { openSim, runnerOf, type Sim } from '../support/sim.js';

const KB = 1_000;

/** `n` messages of `bytes` payload bytes each, published in batches of 100. */
async function backlog(sim: Sim, stream: string, n: number, bytes: number, tag = stream): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from({ length: Math.min(100, n - i) }, (_, j) => ({
      payload: Buffer.alloc(bytes, `${tag}${i + j}`),
    }));
    await sim.ws.publishBatch(stream, batch);
  }
  await sim.clock.advance(0);
}

/** Payload bytes a target received per route stream, sampled every second. */
function delivered(sim: Sim, target: string, stream?: string): number {
  let bytes = 0;
  for (const d of sim.targets[target]!.delivered)
    if (stream === undefined || d.stream === stream) bytes += d.payloadBytes;
  return bytes;
}

async function bytesOver(sim: Sim, ms: number, measure: () => number): Promise<number> {
  const before = measure();
  for (let t = 0; t < ms; t += 1000) await sim.clock.advance(1000);
  return measure() - before;
}

/** Takes the targets down, stores a backlog, brings them up and lets the probes start the drain. */
async function drainAfterOutage(sim: Sim, fill: () => Promise<void>): Promise<void> {
  for (const t of Object.values(sim.targets)) t.behaviour = 'down';
  await fill();
  for (const t of Object.values(sim.targets)) t.behaviour = 'up';
  await sim.clock.advance(1000);
}

describe('byte rates through Waystation (fake clock)', () => {
  it('replays the backlog at replay.bytesPerSecond (±5 % over 60 s) and forwards live messages unthrottled', async () => {
    const config: WaystationConfigInput = {
      targets: { t: { type: 'null' } },
      routes: {
        r: {
          streams: ['s'],
          target: 't',
          probeInterval: '1s',
          batch: { maxMessages: 4 },
          replay: { bytesPerSecond: '10kB' },
        },
      },
    };
    const sim = await openSim(config);
    await drainAfterOutage(sim, () => backlog(sim, 's', 700, KB));
    expect(await sim.state('r')).toBe('draining');
    await sim.clock.advance(5_000);
    const bytes = await bytesOver(sim, 60_000, () => delivered(sim, 't'));
    expect(bytes / 60).toBeGreaterThanOrEqual(10 * KB * 0.95);
    expect(bytes / 60).toBeLessThanOrEqual(10 * KB * 1.05);
    const snap = await sim.ws.route('r').snapshot();
    expect(snap.state).toBe('draining');
    expect(snap.throttledMs).toBeGreaterThan(50_000);
    await sim.clock.advance(10_000);
    expect(await sim.state('r')).toBe('forwarding');
    // Forwarding: the route's replay budget does not apply.
    const before = delivered(sim, 't');
    await backlog(sim, 's', 100, KB, 'live');
    await sim.clock.advance(10);
    expect(delivered(sim, 't') - before).toBe(100 * KB);
    await sim.close();
  });

  it('shares a target maxBytesPerSecond between two routes: priority first, a minimum share for the other', async () => {
    const config: WaystationConfigInput = {
      targets: { t: { type: 'null', maxBytesPerSecond: '20kB' } },
      routes: {
        alarms: { streams: ['a'], target: 't', probeInterval: '1s', priority: 0, batch: { maxMessages: 2 } },
        telemetry: {
          streams: ['b'],
          target: 't',
          probeInterval: '1s',
          priority: 9,
          batch: { maxMessages: 4 },
        },
      },
    };
    const sim = await openSim(config);
    await drainAfterOutage(sim, async () => {
      await backlog(sim, 'a', 1_600, KB);
      await backlog(sim, 'b', 800, KB);
    });
    await sim.clock.advance(5_000);
    const a0 = delivered(sim, 't', 'a');
    const b0 = delivered(sim, 't', 'b');
    const total = await bytesOver(sim, 60_000, () => delivered(sim, 't'));
    const alarms = delivered(sim, 't', 'a') - a0;
    const telemetry = delivered(sim, 't', 'b') - b0;
    expect(total / 60).toBeGreaterThanOrEqual(20 * KB * 0.95);
    expect(total / 60).toBeLessThanOrEqual(20 * KB * 1.05);
    expect(telemetry / total).toBeGreaterThanOrEqual(0.09);
    expect(telemetry / total).toBeLessThan(0.15);
    expect(alarms / total).toBeGreaterThan(0.85);
    // The alarms' backlog empties first; then telemetry has the whole link.
    await sim.clock.advance(30_000);
    expect(await sim.state('alarms')).toBe('forwarding');
    expect(await sim.state('telemetry')).toBe('draining');
    const rest = await bytesOver(sim, 5_000, () => delivered(sim, 't', 'b'));
    expect(rest / 5).toBeGreaterThan(20 * KB * 0.9);
    const telemetrySnap = await sim.ws.route('telemetry').snapshot();
    expect(telemetrySnap.throttledMs).toBeGreaterThan((await sim.ws.route('alarms').snapshot()).throttledMs);
    await sim.close();
  });

  it('holds delivery.maxBytesPerSecond across targets, also for live forwarding', async () => {
    const config: WaystationConfigInput = {
      delivery: { maxBytesPerSecond: 15_000 },
      targets: { t1: { type: 'null' }, t2: { type: 'null' } },
      routes: {
        r1: { streams: ['s1'], target: 't1', batch: { maxMessages: 3 } },
        r2: { streams: ['s2'], target: 't2', batch: { maxMessages: 3 } },
      },
    };
    const sim = await openSim(config);
    // Live: more than the budget is published at once; forwarding goes at the gateway's rate.
    await backlog(sim, 's1', 600, KB);
    await backlog(sim, 's2', 600, KB);
    expect(await sim.state('r1')).toBe('forwarding');
    await sim.clock.advance(5_000);
    const measure = () => delivered(sim, 't1') + delivered(sim, 't2');
    const r1Before = delivered(sim, 't1');
    const total = await bytesOver(sim, 60_000, measure);
    expect(total / 60).toBeGreaterThanOrEqual(15 * KB * 0.95);
    expect(total / 60).toBeLessThanOrEqual(15 * KB * 1.05);
    // One priority: about half each.
    const r1 = delivered(sim, 't1') - r1Before;
    expect(r1 / total).toBeGreaterThan(0.4);
    expect(r1 / total).toBeLessThan(0.6);
    await sim.close();
  });

  it('a route waiting for byte tokens closes at once and its wait counts as throttled time', async () => {
    const sim = await openSim({
      targets: { t: { type: 'null', maxBytesPerSecond: 1_000 } },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    await backlog(sim, 's', 5, 2_000);
    await sim.clock.advance(1_500);
    const runner = runnerOf(sim.ws, 'r');
    expect(runner.activity()).toMatchObject({ attemptAgesMs: [], timerArmed: true });
    const snap = await sim.ws.route('r').snapshot();
    expect(snap.throttledMs).toBeGreaterThan(0);
    const metrics = createMetrics(() => sim.ws);
    await metrics.refresh();
    expect(await metrics.registry.metrics()).toMatch(
      /waystation_route_throttled_seconds_total\{route="r"\} (0\.[1-9]|[1-9])/,
    );
    // No fake time passes: the wait must not hold up shutdown.
    let closed = false;
    const closing = sim.ws.close().then(() => (closed = true));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 2_000))]);
    expect(closed).toBe(true);
  });

  it('has no byte budget at all when no byte limit is configured', async () => {
    const sim = await openSim({
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    const runner = runnerOf(sim.ws, 'r') as unknown as { gate: unknown };
    expect(runner.gate).toBeUndefined();
    await sim.close();
  });
});

describe('byte-rate configuration', () => {
  it('resolves the limits on each route path, priority 4 by default', () => {
    const { routes } = parseConfig({
      delivery: { maxBytesPerSecond: '1MiB' },
      targets: {
        t: { type: 'http', url: 'http://127.0.0.1:1/', maxBytesPerSecond: '200KiB' },
        u: { type: 'null' },
      },
      routes: {
        alarms: { streams: ['a'], target: 't', priority: 0, replay: { bytesPerSecond: '64KiB' } },
        telemetry: { streams: ['b'], target: 'u' },
      },
    });
    expect(routes.find((r) => r.name === 'alarms')).toMatchObject({
      priority: 0,
      replayBytesPerSecond: 64 * 1024,
      replayRatePerSecond: 0,
      targetMaxBytesPerSecond: 200 * 1024,
      gatewayMaxBytesPerSecond: 1024 * 1024,
    });
    expect(routes.find((r) => r.name === 'telemetry')).toMatchObject({
      priority: 4,
      replayBytesPerSecond: 0,
      targetMaxBytesPerSecond: undefined,
      gatewayMaxBytesPerSecond: 1024 * 1024,
    });
  });

  it('refuses a priority outside 0-9 and a zero byte limit, naming the path', () => {
    const issues = (config: unknown) => {
      try {
        parseConfig(config);
      } catch (err) {
        if (err instanceof ConfigError) return err.issues.map((i) => i.path);
        throw err;
      }
      return [];
    };
    expect(
      issues({
        targets: { t: { type: 'null' } },
        routes: { r: { streams: ['s'], target: 't', priority: 10 } },
      }),
    ).toEqual(['routes.r.priority']);
    expect(issues({ targets: { t: { type: 'null', maxBytesPerSecond: 0 } } })).toEqual([
      'targets.t.maxBytesPerSecond',
    ]);
    expect(issues({ delivery: { maxBytesPerSecond: 'fast' } })).toEqual(['delivery.maxBytesPerSecond']);
  });
});
