import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RouteFullError } from '../../src/errors.js';
import { Waystation } from '../../src/waystation.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

describe('reject-new admission', () => {
  it('holds under concurrency: publishes in flight together never pass the limit', async () => {
    const ws = await Waystation.open(
      {
        dataDir: await tempDir(),
        targets: { sink: { type: 'null' } },
        routes: {
          out: {
            streams: ['s'],
            target: 'sink',
            retention: { maxMessages: 10, maxBytes: 4096 },
            onFull: 'reject-new',
          },
        },
      },
      { logger: pino({ level: 'silent' }) },
    );
    try {
      ws.route('out').store();
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) =>
          i % 2 === 0
            ? ws.publish('s', Buffer.alloc(100, i))
            : ws.publishBatch('s', [{ payload: Buffer.alloc(100, i) }, { payload: Buffer.alloc(100, i) }]),
        ),
      );
      const stored = results
        .map((r, i) => (r.status === 'fulfilled' ? (i % 2 === 0 ? 1 : 2) : 0))
        .reduce((a: number, b) => a + b, 0);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(RouteFullError);
      expect(stored).toBeGreaterThan(0);
      expect(stored).toBeLessThanOrEqual(10);
      expect(ws.streams()[0]!.messages).toBe(stored);
      expect((await ws.route('out').snapshot()).inQueue).toBe(stored);
      // Refusals released what they reserved: once drained, there is room again.
      ws.route('out').forward();
      await until(async () => (await ws.route('out').snapshot()).inQueue === 0, 5000, 'the drain');
      await ws.publishBatch(
        's',
        Array.from({ length: 10 }, () => ({ payload: Buffer.alloc(100) })),
      );
    } finally {
      await ws.close();
    }
  });
});
