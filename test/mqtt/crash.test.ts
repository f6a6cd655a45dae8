import { describe, expect, it } from 'vitest';
import { startCli, stopCli, writeConfig } from '../support/cli.js';
import { collect, connectClient, publishUntilStopped } from '../support/mqtt.js';
import { until } from '../support/wait.js';

describe('mqtt store-and-forward: broker SIGKILLed mid-stream', () => {
  it('loses no message it acknowledged, and the subscriber resumes in order after the restart', async () => {
    const config = await writeConfig({
      mqtt: {
        listen: '127.0.0.1:0',
        allowAnonymous: true,
        storeAndForwardTopics: [{ topic: 'crash/#', stream: 'crash', maxDeliveryRatePerSecond: 100_000 }],
      },
    });
    const first = await startCli(['--config', config]);
    let acked: number[] = [];
    let before: number[] = [];
    try {
      // One subscriber is offline throughout: everything acknowledged must wait for it on disk.
      const offline = await connectClient(first.mqtt!, { clientId: 'crash-offline', clean: false });
      await offline.subscribeAsync('crash/#', { qos: 1 });
      await offline.endAsync();
      const sub = await connectClient(first.mqtt!, { clientId: 'crash-sub', clean: false });
      const got = collect(sub);
      await sub.subscribeAsync('crash/#', { qos: 1 });
      const pub = await connectClient(first.mqtt!, { clientId: 'crash-pub' });
      const publishing = publishUntilStopped(pub, (n) => `crash/${n % 4}`);
      await until(() => got.length > 2000, 20_000, 'some deliveries before the kill');
      first.proc.kill('SIGKILL');
      await new Promise((r) => first.proc.once('exit', r));
      publishing.stop();
      // Publishes in flight at the kill never settle (no reconnect): what was acknowledged is final now.
      before = got.map((m) => Number(m.payload.toString()));
      acked = [...publishing.acked];
    } finally {
      await stopCli(first.proc, 'SIGKILL');
    }
    const second = await startCli(['--config', config]);
    try {
      const again = await connectClient(second.mqtt!, { clientId: 'crash-sub', clean: false });
      const got = collect(again);
      const maxAcked = Math.max(...acked);
      await until(
        () => got.some((m) => Number(m.payload.toString()) >= maxAcked),
        20_000,
        `delivery up to ${maxAcked}`,
      );
      const after = got.map((m) => Number(m.payload.toString()));
      // In order after the restart, resuming at or before where the subscriber was.
      for (let i = 1; i < after.length; i++) expect(after[i]).toBeGreaterThan(after[i - 1]!);
      expect(after[0]).toBeLessThanOrEqual(Math.max(...before) + 1);
      const seen = new Set([...before, ...after]);
      const lost = acked.filter((n) => !seen.has(n));
      expect(lost).toEqual([]);

      const late = await connectClient(second.mqtt!, { clientId: 'crash-offline', clean: false });
      const lateGot = collect(late);
      await until(
        () => lateGot.some((m) => Number(m.payload.toString()) >= maxAcked),
        20_000,
        `the offline subscriber's delivery up to ${maxAcked}`,
      );
      const lateSeq = lateGot.map((m) => Number(m.payload.toString()));
      for (let i = 1; i < lateSeq.length; i++) expect(lateSeq[i]).toBeGreaterThan(lateSeq[i - 1]!);
      expect(acked.filter((n) => !lateSeq.includes(n))).toEqual([]);
    } finally {
      await stopCli(second.proc, 'SIGKILL');
    }
  }, 90_000);
});
