import mqtt, { type IConnackPacket } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { Session } from '../../src/ingest/mqtt/session.js';
import { startCli, stopCli, writeConfig } from '../support/cli.js';
import { restartGateway, startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl, publishUntilStopped } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const numbers = (got: { payload: Buffer }[]) => got.map((m) => Number(m.payload.toString()));

describe('mqtt persistent sessions across restarts (issue 13)', () => {
  it('keeps subscriptions and the offline queue of a 3.1.1 clean:false session over a restart', async () => {
    const { gw, dir } = await startGateway({ mqtt: { allowAnonymous: true } });
    let gw2 = gw;
    try {
      const sub = await connectClient(mqttUrl(gw), { clientId: 'keeper', clean: false, protocolVersion: 4 });
      await sub.subscribeAsync('plant/+/temp', { qos: 1 });
      await sub.subscribeAsync('plant/#', { qos: 0 });
      await sub.endAsync();
      const pub = await connectClient(mqttUrl(gw));
      for (let i = 0; i < 20; i++) await pub.publishAsync(`plant/${i % 3}/temp`, String(i), { qos: 1 });
      await pub.endAsync();
      await gw.close();

      gw2 = await restartGateway(dir);
      const back = await connectClient(mqttUrl(gw2), {
        clientId: 'keeper',
        clean: false,
        protocolVersion: 4,
      });
      const got = collect(back);
      await until(() => got.length >= 20, 5000, 'the 20 queued messages');
      expect(numbers(got)).toEqual([...Array(20).keys()]);
      // One copy per message at the higher QoS of the two overlapping subscriptions [MQTT-3.3.4-2].
      expect(got.every((m) => m.qos === 1)).toBe(true);
      // The subscriptions themselves came back: a message published now arrives too.
      const pub2 = await connectClient(mqttUrl(gw2));
      await pub2.publishAsync('plant/9/temp', 'after', { qos: 1 });
      await until(() => got.length === 21, 5000, 'the message published after the restart');
      await back.endAsync();
      await gw2.close();

      // Acknowledged messages are finished: a second restart resends none of them.
      gw2 = await restartGateway(dir);
      const third = await connectClient(mqttUrl(gw2), {
        clientId: 'keeper',
        clean: false,
        protocolVersion: 4,
      });
      const none = collect(third);
      await new Promise((r) => setTimeout(r, 300));
      expect(none).toEqual([]);
    } finally {
      await gw2.close();
    }
  });

  it('reports the session present after a restart, and ends it when its expiry ran out meanwhile (v5)', async () => {
    const { gw, dir } = await startGateway({ mqtt: { allowAnonymous: true } });
    let gw2 = gw;
    try {
      const long = await connectClient(mqttUrl(gw), {
        clientId: 'long',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 3600 },
      });
      await long.subscribeAsync('a/b', { qos: 1 });
      await long.endAsync();
      const short = await connectClient(mqttUrl(gw), {
        clientId: 'short',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 1 },
      });
      await short.subscribeAsync('a/b', { qos: 1 });
      await short.endAsync();
      await gw.close();
      await new Promise((r) => setTimeout(r, 1300));

      gw2 = await restartGateway(dir);
      const present = async (clientId: string) => {
        const c = mqtt.connect(mqttUrl(gw2), {
          clientId,
          clean: false,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 3600 },
          reconnectPeriod: 0,
        });
        const connack = await new Promise<IConnackPacket>((resolve, reject) => {
          c.once('connect', resolve);
          c.once('error', reject);
        });
        await c.endAsync();
        return connack.sessionPresent;
      };
      expect(await present('long')).toBe(true);
      expect(await present('short')).toBe(false);
    } finally {
      await gw2.close();
    }
  });

  it('bounds the offline queue by bytes as well as by messages, counting what it drops', () => {
    const dropped: string[] = [];
    const session = new Session(
      'c',
      100,
      { dropped: (r) => dropped.push(r), sent: () => {} },
      Date.now,
      2500,
    );
    const message = (n: number) => ({
      topic: 't',
      payload: Buffer.alloc(1000, n),
      qos: 1 as const,
      retain: false,
      properties: {},
      expiresAt: undefined,
    });
    const done: number[] = [];
    session.onJournaledDone = (id) => done.push(id);
    for (let i = 0; i < 4; i++) session.deliver(message(i), 1, [], false, i);
    expect(session.queued).toBe(2);
    expect(dropped).toEqual(['queue-full', 'queue-full']);
    // A dropped journaled message is finished for the journal (not resent after a restart).
    expect(done).toEqual([2, 3]);
  });
});

describe('mqtt persistent sessions: broker SIGKILLed while an offline queue fills (issue 13)', () => {
  it('delivers every message the broker acknowledged once the session reconnects after the restart', async () => {
    const config = await writeConfig({
      storage: { fsync: 'always' },
      mqtt: { listen: '127.0.0.1:0', allowAnonymous: true, maxQueuedMessages: 1_000_000 },
    });
    const first = await startCli(['--config', config]);
    let final: number[] = [];
    try {
      const offline = await connectClient(first.mqtt!, {
        clientId: 'away',
        clean: false,
        protocolVersion: 4,
      });
      await offline.subscribeAsync('line/#', { qos: 1 });
      await offline.endAsync();
      const pub = await connectClient(first.mqtt!, { clientId: 'producer' });
      const publishing = publishUntilStopped(pub, (n) => `line/${n % 4}`);
      await until(() => publishing.acked.length > 3000, 30_000, 'acknowledged publishes before the kill');
      first.proc.kill('SIGKILL');
      await new Promise((r) => first.proc.once('exit', r));
      publishing.stop();
      final = [...publishing.acked];
    } finally {
      await stopCli(first.proc, 'SIGKILL');
    }
    const second = await startCli(['--config', config]);
    try {
      const back = await connectClient(second.mqtt!, { clientId: 'away', clean: false, protocolVersion: 4 });
      const got = collect(back);
      const want = new Set(final);
      await until(
        () => {
          const seen = new Set(numbers(got));
          return final.every((n) => seen.has(n));
        },
        30_000,
        `all ${final.length} acknowledged messages`,
      );
      // Nothing that was never published, and each acknowledged one once.
      const seen = numbers(got);
      expect(seen.filter((n) => want.has(n)).length).toBe(final.length);
    } finally {
      await stopCli(second.proc, 'SIGKILL');
    }
  }, 90_000);
});
