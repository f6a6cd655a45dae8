import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXPORT_TOTAL_HEADER, exportRoutes } from '../../src/admin/export-routes.js';
import { reachableRoute } from '../../src/admin/routes.js';
import { permanentError } from '../../src/delivery/target.js';
import type { Gateway } from '../../src/gateway.js';
import { hashToken, OPEN_ACCESS } from '../../src/ingest/http/auth.js';
import { Waystation } from '../../src/waystation.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

interface Line {
  id: string;
  stream: string;
  seq: number;
  timestamp: number;
  key: string | null;
  headers: Record<string, string>;
  expiresAt: number | null;
  payload?: string;
  payloadBase64?: string;
  deadLetter?: { route: string; reason: string; attempts: number; lastError: string; at: number };
}

function linesOf(body: string): Line[] {
  expect(body.endsWith('\n') || body === '').toBe(true);
  return body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

function bytesOf(line: Line): Buffer {
  return line.payload !== undefined ? Buffer.from(line.payload) : Buffer.from(line.payloadBase64!, 'base64');
}

const config = {
  storage: { blobThreshold: '4KiB' },
  streams: { orders: {}, other: {} },
  targets: { t: { type: 'null' as const } },
  routes: { r: { streams: ['orders'], target: 't', probeInterval: '100ms' } },
};

describe('GET /v1/streams/{stream}/export', () => {
  it('answers every message with its id, key, headers, timestamp, expiry and exact payload bytes', async () => {
    ({ gw } = await startGateway(config));
    const binary = Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0x80]), randomBytes(500)]);
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"text":"with a BOM"}')]);
    const big = randomBytes(300 * 1024); // above blobThreshold: streamed from its side file
    await gw.ws.publish('orders', '{"n":1}', {
      key: 'cust-1',
      headers: { 'content-type': 'application/json', 'x-trace': 'a b "c"' },
      ttl: '1h',
    });
    await gw.ws.publish('orders', binary, { headers: { 'content-type': 'text/plain' } });
    await gw.ws.publish('orders', bom, { headers: { 'content-type': 'application/json' } });
    await gw.ws.publish('orders', big, { key: 'big' });
    await gw.ws.publish('orders', '');

    const res = await gw.app.inject({ url: '/v1/streams/orders/export' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    expect(res.headers[EXPORT_TOTAL_HEADER]).toBe('5');
    const lines = linesOf(res.body);
    const stored = await gw.ws.readMessages('orders', { fromSeq: 1 });
    expect(lines).toHaveLength(5);
    for (const [i, line] of lines.entries()) {
      const m = stored[i]!;
      expect(line).toMatchObject({
        id: m.id,
        stream: 'orders',
        seq: m.seq,
        timestamp: m.timestamp,
        key: m.key ?? null,
        headers: m.headers,
        expiresAt: m.expiresAt ?? null,
      });
    }
    expect(lines[0]!.payload).toBe('{"n":1}');
    expect(lines[0]!.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    // Not valid UTF-8 despite its text type: base64, byte for byte.
    expect(lines[1]!.payloadBase64).toBeDefined();
    expect(bytesOf(lines[1]!).equals(binary)).toBe(true);
    expect(bytesOf(lines[2]!).equals(bom)).toBe(true);
    expect(bytesOf(lines[3]!).equals(big)).toBe(true);
    expect(bytesOf(lines[4]!).byteLength).toBe(0);
  });

  it('exports a seq range, the range clipped to what the stream holds', async () => {
    ({ gw } = await startGateway(config));
    await gw.ws.publishBatch(
      'orders',
      Array.from({ length: 20 }, (_, i) => ({ payload: `m${i + 1}` })),
    );
    const range = await gw.app.inject({ url: '/v1/streams/orders/export?fromSeq=5&toSeq=9' });
    expect(range.headers[EXPORT_TOTAL_HEADER]).toBe('5');
    expect(linesOf(range.body).map((l) => l.seq)).toEqual([5, 6, 7, 8, 9]);
    const tail = await gw.app.inject({ url: '/v1/streams/orders/export?fromSeq=18&toSeq=1000' });
    expect(linesOf(tail.body).map((l) => bytesOf(l).toString())).toEqual(['m18', 'm19', 'm20']);
    const empty = await gw.app.inject({ url: '/v1/streams/other/export' });
    expect(empty.statusCode).toBe(200);
    expect(empty.headers[EXPORT_TOTAL_HEADER]).toBe('0');
    expect(empty.body).toBe('');
    const reversed = await gw.app.inject({ url: '/v1/streams/orders/export?fromSeq=9&toSeq=5' });
    expect(reversed.statusCode).toBe(400);
    expect(reversed.json().error.code).toBe('WS_ERR_HTTP_BAD_REQUEST');
    const unknown = await gw.app.inject({ url: '/v1/streams/nope/export' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('WS_ERR_STREAM_UNKNOWN');
  });

  it('reads the store one bounded batch at a time over a real socket', async () => {
    ({ gw } = await startGateway(config));
    const n = 3000;
    for (let i = 0; i < n; i += 500)
      await gw.ws.publishBatch(
        'orders',
        Array.from({ length: 500 }, (_, j) => ({ payload: `message ${i + j}` })),
      );
    const reads = vi.spyOn(gw.ws, 'readMessages');
    const res = await fetch(`${gw.url}/v1/streams/orders/export`);
    const lines = linesOf(await res.text());
    expect(lines).toHaveLength(n);
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(reads.mock.calls.length).toBeGreaterThanOrEqual(Math.ceil(n / 256));
    for (const [, options] of reads.mock.calls) expect(options.maxMessages).toBeLessThanOrEqual(256);
    for (const result of reads.mock.results) expect((await result.value).length).toBeLessThanOrEqual(256);
  });
});

describe('an export client that stops reading', () => {
  it('makes the server stop reading the store, and is disconnected after the idle timeout', async () => {
    const dir = await tempDir();
    const ws = await Waystation.open({ dataDir: dir, streams: { s: {} } });
    const app = Fastify();
    try {
      const payload = randomBytes(3000).toString('base64'); // ~4 KB lines
      for (let i = 0; i < 8000; i += 500)
        await ws.publishBatch(
          's',
          Array.from({ length: 500 }, () => ({ payload })),
        );
      const reads = vi.spyOn(ws, 'readMessages');
      await app.register(exportRoutes, {
        ws,
        access: () => OPEN_ACCESS,
        reachableRoute: (p, name) => reachableRoute(ws, p, name),
        batchMessages: 50,
        idleTimeoutMs: 600,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.server.address() as { port: number };
      // ~32 MB to send; the client reads the headers and then nothing more.
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      socket.write('GET /v1/streams/s/export HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.pause();
      await until(
        async () => {
          const before = reads.mock.calls.length;
          await new Promise((r) => setTimeout(r, 150));
          return reads.mock.calls.length === before;
        },
        5000,
        'the server to stop reading',
      );
      const stalledAt = reads.mock.calls.length;
      // What is read is what the socket buffers hold plus one batch: far from the 160 batches.
      expect(stalledAt).toBeLessThan(160 * 0.75);
      const connections = () =>
        new Promise<number>((resolve, reject) =>
          app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
        );
      expect(await connections()).toBe(1);
      await until(async () => (await connections()) === 0, 5000, 'the server to close the connection');
      expect(reads.mock.calls.length).toBe(stalledAt);
      socket.destroy();
    } finally {
      await app.close();
      await ws.close();
    }
  });
});

describe('route exports', () => {
  it("exports a route's pending messages only, and needs ?pending=true", async () => {
    const target = new ScriptedTarget();
    ({ gw } = await startGateway(config, { t: target }));
    for (let i = 1; i <= 3; i++) await gw.ws.publish('orders', `delivered ${i}`);
    await until(() => target.delivered.length === 3, 5000, 'three deliveries');
    await gw.app.inject({ method: 'POST', url: '/v1/routes/r/store' });
    for (let i = 1; i <= 4; i++) await gw.ws.publish('orders', `pending ${i}`, { key: `k${i}` });
    const res = await gw.app.inject({ url: '/v1/routes/r/export?pending=true' });
    expect(res.statusCode).toBe(200);
    expect(res.headers[EXPORT_TOTAL_HEADER]).toBe('4');
    const lines = linesOf(res.body);
    expect(lines.map((l) => [l.seq, l.key, l.payload])).toEqual([
      [4, 'k1', undefined],
      [5, 'k2', undefined],
      [6, 'k3', undefined],
      [7, 'k4', undefined],
    ]);
    expect(lines.map((l) => bytesOf(l).toString())).toEqual([
      'pending 1',
      'pending 2',
      'pending 3',
      'pending 4',
    ]);
    const whole = await gw.app.inject({ url: '/v1/routes/r/export' });
    expect(whole.statusCode).toBe(400);
    expect(whole.json().error.message).toMatch(/pending=true/);
  });

  it("exports a route's dead letters with their messages and why they died", async () => {
    const target = new ScriptedTarget();
    target.behaviour = (d) => (d.key === 'bad' ? permanentError('refused: 422') : { kind: 'ack' });
    ({ gw } = await startGateway(config, { t: target }));
    await gw.ws.publish('orders', 'fine');
    await gw.ws.publish('orders', Buffer.from([1, 2, 3]), { key: 'bad', headers: { 'x-a': '1' } });
    await gw.ws.publish('orders', 'also bad', { key: 'bad' });
    await until(() => gw!.ws.route('r').deadLetters.list().length === 2, 5000, 'two dead letters');
    const res = await gw.app.inject({ url: '/v1/routes/r/dead-letters/export' });
    expect(res.statusCode).toBe(200);
    expect(res.headers[EXPORT_TOTAL_HEADER]).toBe('2');
    const lines = linesOf(res.body);
    expect(lines.map((l) => [l.seq, l.key, l.headers, bytesOf(l).toString('hex')])).toEqual([
      [2, 'bad', { 'x-a': '1' }, '010203'],
      [3, 'bad', {}, Buffer.from('also bad').toString('hex')],
    ]);
    expect(lines[0]!.deadLetter).toMatchObject({ route: 'r', reason: 'error', lastError: 'refused: 422' });
  });
});

describe('export reach', () => {
  const secrets = { a: 'a'.repeat(32), pub: 'p'.repeat(32) };
  const reachConfig = {
    auth: {
      tokens: [
        { name: 'a-reader', tokenHash: hashToken(secrets.a), scopes: ['read' as const], streams: ['a*'] },
        { name: 'publisher', tokenHash: hashToken(secrets.pub), scopes: ['publish' as const] },
      ],
    },
    streams: { a1: {}, b: {} },
    targets: { t: { type: 'null' as const } },
    routes: { ra: { streams: ['a1'], target: 't' }, rb: { streams: ['b'], target: 't' } },
  };

  it('answers a stream or route out of reach exactly as one that does not exist', async () => {
    ({ gw } = await startGateway(reachConfig));
    await gw.ws.publish('a1', 'in reach');
    await gw.ws.publish('b', 'secret');
    const get = (url: string, secret?: string) =>
      gw!.app.inject({ url, headers: secret ? { authorization: `Bearer ${secret}` } : {} });
    const ok = await get('/v1/streams/a1/export', secrets.a);
    expect(ok.statusCode).toBe(200);
    expect(linesOf(ok.body)).toHaveLength(1);
    const outOfReach = await get('/v1/streams/b/export', secrets.a);
    const missing = await get('/v1/streams/a-missing/export', secrets.a);
    expect(outOfReach.statusCode).toBe(404);
    expect(outOfReach.body).not.toContain('secret');
    expect(outOfReach.json().error.code).toBe('WS_ERR_STREAM_UNKNOWN');
    expect(missing.json().error.code).toBe('WS_ERR_STREAM_UNKNOWN');
    for (const url of ['/v1/routes/rb/export?pending=true', '/v1/routes/rb/dead-letters/export']) {
      const res = await get(url, secrets.a);
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe('WS_ERR_ROUTE_UNKNOWN');
    }
    expect((await get('/v1/routes/ra/export?pending=true', secrets.a)).statusCode).toBe(200);
    expect((await get('/v1/streams/a1/export', secrets.pub)).statusCode).toBe(403);
    expect((await get('/v1/streams/a1/export')).statusCode).toBe(401);
  });
});
