import type { IPublishPacket } from 'mqtt-packet';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import type { Clock, TimerHandle } from '../../src/delivery/clock.js';
import { Broker, type ClientConnection } from '../../src/ingest/mqtt/broker.js';
import type { Link } from '../../src/ingest/mqtt/session.js';
import { Waystation } from '../../src/waystation.js';
import { tempDir } from '../support/tmp.js';

class FakeConnection implements ClientConnection, Link {
  readonly protocolVersion = 5 as const;
  readonly receiveMaximum = 65_535;
  readonly maxPacketSize = 1 << 20;
  readonly congested = false;
  get link(): Link {
    return this;
  }
  sendPublish(_packet: IPublishPacket): boolean {
    return true;
  }
  close(): void {}
  sendPubrel(): void {}
}

/** Real time would keep the process alive: this one only counts the timers still armed. */
class CountingClock implements Clock {
  armed = 0;
  now(): number {
    return Date.now();
  }
  setTimeout(_fn: () => void, _ms: number): TimerHandle {
    this.armed++;
    let live = true;
    return {
      cancel: () => {
        if (live) this.armed--;
        live = false;
      },
    };
  }
}

describe('mqtt broker close', () => {
  it('arms no will or session-expiry timer for a connection that ends after close', async () => {
    const config = { storage: { fsync: 'never' as const }, mqtt: { allowAnonymous: true } };
    const ws = await Waystation.open(
      { ...config, dataDir: await tempDir() },
      { logger: pino({ level: 'silent' }) },
    );
    const clock = new CountingClock();
    const broker = await Broker.open(ws, parseConfig(config).config.mqtt!, pino({ level: 'silent' }), clock);
    try {
      const conn = new FakeConnection();
      const will = {
        message: {
          topic: 'w',
          payload: Buffer.from('gone'),
          qos: 1 as const,
          retain: false,
          properties: {},
          expiresAt: undefined,
        },
        expiryMs: undefined,
        delayMs: 60_000,
        publisher: 'c1',
      };
      const { session } = broker.connect('c1', conn, { cleanStart: true, expiryMs: 3_600_000, will });
      await broker.close();
      expect(broker.isClosed).toBe(true);
      // The socket closes after the broker did (MqttServer closes sockets last).
      broker.disconnected(session, conn, true);
      expect(clock.armed).toBe(0);
    } finally {
      await ws.close();
    }
  });
});
