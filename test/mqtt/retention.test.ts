import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { storeAndForwardTopicSchema } from '../../src/config/schema.js';
import { StoreAndForwardTopics } from '../../src/ingest/mqtt/sf-topics.js';
import { Waystation } from '../../src/waystation.js';
import { FakeClock } from '../support/fake-clock.js';
import { tempDir } from '../support/tmp.js';

/** The store's periodic collection runs on the fake clock but does real file I/O: tick until done. */
async function collected(clock: FakeClock, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) {
    await clock.advance(1000);
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(done()).toBe(true);
}

describe('store-and-forward topic retention', () => {
  it('deletes messages older than the retention, whether or not anyone received them; forever keeps all', async () => {
    const clock = new FakeClock();
    const dir = await tempDir();
    const ws = await Waystation.open({ dataDir: dir }, { clock, logger: pino({ level: 'silent' }) });
    try {
      const topics = await StoreAndForwardTopics.open(
        ws,
        `${dir}/mqtt`,
        [
          storeAndForwardTopicSchema.parse({
            topic: 'hourly/#',
            stream: 'hourly',
            retention: { period: 1, unit: 'hour' },
          }),
          storeAndForwardTopicSchema.parse({ topic: 'kept/#', stream: 'kept' }),
        ],
        clock,
        (err) => {
          throw err;
        },
      );
      for (const s of ['hourly', 'kept'])
        for (let i = 0; i < 3; i++) await ws.publish(s, Buffer.from(`old${i}`));
      await clock.advance(30 * 60_000);
      for (const s of ['hourly', 'kept'])
        for (let i = 0; i < 2; i++) await ws.publish(s, Buffer.from(`new${i}`));
      await clock.advance(45 * 60_000);
      await topics.refreshRetention();
      expect(topics.get('hourly/#')!.retentionFloor).toBe(4);
      expect(topics.get('kept/#')!.retentionFloor).toBe(1);
      await collected(clock, () => ws.streamBounds('hourly').firstSeq === 4);
      expect(ws.streamBounds('hourly')).toEqual({ firstSeq: 4, lastSeq: 5 });
      expect(ws.streamBounds('kept')).toEqual({ firstSeq: 1, lastSeq: 5 });
      await clock.advance(31 * 60_000);
      await topics.refreshRetention();
      await collected(clock, () => ws.streamBounds('hourly').firstSeq === 6);
      expect(ws.streamBounds('hourly')).toEqual({ firstSeq: 6, lastSeq: 5 });
    } finally {
      await ws.close();
    }
  });
});
