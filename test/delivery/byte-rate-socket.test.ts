import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Waystation } from '../../src/index.js';
import { Receiver } from '../support/receiver.js';
import { tempDir } from '../support/tmp.js';

const RATE = 200 * 1024;
const MESSAGE = 8 * 1024;

describe('byte rate over a real socket', () => {
  let receiver: Receiver | undefined;
  let ws: Waystation | undefined;
  afterEach(async () => {
    await ws?.close();
    await receiver?.stop();
  });

  it('an HTTP target with maxBytesPerSecond 200KiB receives about that much per second', async () => {
    const arrivals: { at: number; bytes: number }[] = [];
    receiver = await new Receiver().start();
    receiver.respond = (req, res) => {
      arrivals.push({ at: performance.now(), bytes: req.body.length });
      res.writeHead(200).end('ok');
    };
    ws = await Waystation.open(
      {
        dataDir: await tempDir('ws-byte-rate-'),
        targets: { rx: { type: 'http', url: receiver.url, maxBytesPerSecond: '200KiB' } },
        routes: { r: { streams: ['s'], target: 'rx' } },
      },
      { logger: pino({ level: 'silent' }) },
    );
    // 1.5 MiB at once, live (forwarding): without the limit all of it arrives within milliseconds.
    const batch = Array.from({ length: 192 }, (_, i) => ({ payload: Buffer.alloc(MESSAGE, i % 256) }));
    const t0 = performance.now();
    await ws.publishBatch('s', batch);
    await new Promise((r) => setTimeout(r, 2_300));
    const within = (ms: number) => arrivals.filter((a) => a.at - t0 <= ms).reduce((n, a) => n + a.bytes, 0);
    // The bucket starts full (one second's worth), then refills at the rate.
    const expected = RATE + RATE * 2;
    const got = within(2_000);
    // Never above the budget (a little slack for timer granularity), and on a loaded 2-core
    // machine not far below it either.
    expect(got).toBeLessThanOrEqual(expected * 1.05 + MESSAGE);
    expect(got).toBeGreaterThanOrEqual(expected * 0.6);
    // Steady state, the second second: about the rate.
    const second = within(2_000) - within(1_000);
    expect(second).toBeLessThanOrEqual(RATE * 1.15 + MESSAGE);
    expect(second).toBeGreaterThanOrEqual(RATE * 0.5);
    const snap = await ws.route('r').snapshot();
    expect(snap.throttledMs).toBeGreaterThan(1_000);
  });
});
