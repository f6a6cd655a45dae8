import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { Waystation } from '../../src/index.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

let downstream: Gateway | undefined;
let upstream: Waystation | undefined;
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await upstream?.close();
  await proxy?.stop();
  await downstream?.close();
  upstream = downstream = proxy = undefined;
});

/** The downstream gateway: stream `hub`, whose route delivers to the returned target. */
async function startDownstream(): Promise<{ collected: ScriptedTarget; url: string }> {
  const collected = new ScriptedTarget();
  ({ gw: downstream } = await startGateway(
    {
      streams: { hub: {} },
      targets: { c: { type: 'null' } },
      routes: { r: { streams: ['hub'], target: 'c' } },
    },
    { c: collected },
  ));
  return { collected, url: downstream.url };
}

describe('waystation target (chaining)', () => {
  it('forwards to another gateway with the key and headers, and an outage stores without duplicating downstream', async () => {
    const { collected, url } = await startDownstream();
    proxy = await new TcpProxy('127.0.0.1', Number(new URL(url).port)).start();
    upstream = await Waystation.open(
      {
        dataDir: await tempDir(),
        targets: {
          hub: { type: 'waystation', url: `http://127.0.0.1:${proxy.port}`, stream: 'hub', timeout: '2s' },
        },
        routes: {
          up: {
            streams: ['site'],
            target: 'hub',
            probeInterval: '100ms',
            probeIntervalMax: '400ms',
            batch: { maxMessages: 10 },
          },
        },
      },
      { logger: pino({ level: 'silent' }) },
    );
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await upstream!.publish('site', Buffer.from(`m${i}`), {
          key: 'line-3',
          headers: { 'content-type': 'text/plain', 'x-site': 'plant-7' },
        });
      }
    };
    await send(0, 20);
    await until(() => collected.delivered.length === 20, 10_000, '20 messages downstream');
    proxy.cut();
    await send(20, 50);
    await until(async () => (await upstream!.route('up').snapshot()).state === 'storing', 10_000, 'storing');
    proxy.restore();
    await until(() => new Set(collected.texts()).size === 50, 20_000, 'all 50 downstream');
    await until(
      async () => (await upstream!.route('up').snapshot()).inQueue === 0,
      10_000,
      'the upstream queue to empty',
    );
    // Idempotency-Key = the upstream id: a forward retried after the cut is stored once.
    expect(collected.texts()).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(collected.delivered[0]).toMatchObject({
      key: 'line-3',
      headers: { 'content-type': 'text/plain', 'x-site': 'plant-7' },
    });
  });

  it('carries headers HTTP cannot (an MQTT 5 user property) across the hop unchanged', async () => {
    const { collected, url } = await startDownstream();
    upstream = await Waystation.open(
      {
        dataDir: await tempDir(),
        targets: { hub: { type: 'waystation', url, stream: 'hub' } },
        routes: { up: { streams: ['site'], target: 'hub' } },
      },
      { logger: pino({ level: 'silent' }) },
    );
    const headers = {
      'content-type': 'text/plain; charset=utf-8; x=€',
      'my prop': 'line 1\nline 2, 50%',
      'a%20b': 'not the same field as "a b"',
      'a b': 'café',
      plain: 'café',
    };
    await upstream.publish('site', Buffer.from('x'), { key: 'clé €', headers });
    await until(() => collected.delivered.length === 1, 10_000, 'the message downstream');
    expect(collected.delivered[0]).toMatchObject({ key: 'clé €', headers });
    expect(Object.keys(collected.delivered[0]!.headers).sort()).toEqual(Object.keys(headers).sort());
  });
});
