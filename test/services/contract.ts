/**
 * The contract every real-system target passes, against the real server on this machine,
 * through a TCP proxy that makes the outages (the shared server is never stopped):
 *   - a backlog delivered completely and in order;
 *   - an outage (connections cut and refused): the route stores, probes, and after the restore
 *     delivers everything in order with no loss (and no duplicates where the system can);
 *   - a stalled server (connected, silent): attempts time out as nacks, then recovery.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Waystation, type WaystationConfigInput } from '../../src/index.js';
import { requireServer, TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

type TargetInput = NonNullable<WaystationConfigInput['targets']>[string];

export interface TargetCase {
  name: string;
  server: { name: string; host: string; port: number };
  /** Target config reaching the server through 127.0.0.1:`port`; `ns` is unique per test. */
  target(port: number, ns: string): TargetInput;
  /** Prepares server-side objects for `ns` (queue, stream, table). */
  setup?(ns: string): Promise<void>;
  /** The payloads the server received for `ns`, in the order it stored them. */
  readBack(ns: string): Promise<string[]>;
  cleanup?(ns: string): Promise<void>;
  /** The system de-duplicates redeliveries (Postgres primary key, JetStream Msg-Id). */
  exactlyOnce: boolean;
  /** The read-back order is the arrival order (false: sorted by seq, e.g. a table). */
  ordered?: boolean;
  /** Extra time the system needs before a read-back sees everything, ms. */
  settleMs?: number;
}

const texts = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `m${from + i}`);

export function describeTargetContract(c: TargetCase): void {
  describe(`${c.name} target against ${c.server.name}`, () => {
    let proxy: TcpProxy;
    let ws: Waystation | undefined;
    let ns = '';

    beforeAll(async () => {
      await requireServer(c.server.name, c.server.host, c.server.port);
    });

    afterEach(async () => {
      await ws?.close();
      ws = undefined;
      await proxy?.stop();
      await c.cleanup?.(ns).catch(() => {});
    });

    async function open(): Promise<Waystation> {
      ns = `ws${randomBytes(5).toString('hex')}`;
      await c.setup?.(ns);
      proxy = await new TcpProxy(c.server.host, c.server.port).start();
      ws = await Waystation.open(
        {
          dataDir: await tempDir('ws-svc-'),
          targets: { t: c.target(proxy.port, ns) },
          routes: {
            r: {
              streams: ['s'],
              target: 't',
              batch: { maxMessages: 20 },
              probeInterval: '100ms',
              probeIntervalMax: '400ms',
              timeout: '3s',
            },
          },
        },
        { logger: pino({ level: 'silent' }) },
      );
      return ws;
    }

    async function publish(w: Waystation, from: number, to: number): Promise<void> {
      for (const t of texts(from, to))
        await w.publish('s', Buffer.from(t), { key: 'k', headers: { 'x-test': ns } });
    }

    async function delivered(w: Waystation, n: number): Promise<void> {
      await until(
        async () => (await w.route('r').snapshot()).forwarded >= n,
        30_000,
        `${n} messages forwarded`,
      );
      if (c.settleMs) await new Promise((r) => setTimeout(r, c.settleMs));
    }

    function expectComplete(received: string[], expected: string[]): void {
      const firsts = received.filter((m, i) => received.indexOf(m) === i);
      if (c.ordered === false) firsts.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
      expect(firsts).toEqual(expected);
      if (c.exactlyOnce) expect(received).toHaveLength(expected.length);
    }

    it('delivers a backlog completely and in order', async () => {
      const w = await open();
      w.route('r').store();
      await publish(w, 0, 100);
      w.route('r').forward();
      await delivered(w, 100);
      expectComplete(await c.readBack(ns), texts(0, 100));
    });

    it('stores through an outage and then delivers everything in order', async () => {
      const w = await open();
      await publish(w, 0, 30);
      await delivered(w, 30);
      proxy.cut();
      await publish(w, 30, 100);
      await until(
        async () => (await w.route('r').snapshot()).state === 'storing',
        20_000,
        'the route to store',
      );
      expect((await w.route('r').snapshot()).inQueue).toBeGreaterThan(0);
      proxy.restore();
      await delivered(w, 100);
      await until(
        async () => (await w.route('r').snapshot()).state === 'forwarding',
        20_000,
        'the route to forward',
      );
      expectComplete(await c.readBack(ns), texts(0, 100));
    });

    it('treats a stalled server as a nack and recovers', async () => {
      const w = await open();
      await publish(w, 0, 5);
      await delivered(w, 5);
      proxy.stall();
      await publish(w, 5, 15);
      await until(
        async () => (await w.route('r').snapshot()).state === 'storing',
        20_000,
        'the route to store',
      );
      proxy.restore();
      await delivered(w, 15);
      expectComplete(await c.readBack(ns), texts(0, 15));
    });
  });
}
