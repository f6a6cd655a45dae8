import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { brotliCompressSync, constants, createBrotliCompress, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/delivery/target.js';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const MiB = 1024 * 1024;

function config(http: Record<string, unknown> = {}) {
  return {
    storage: { blobThreshold: '64KiB' },
    http: { bodyTimeout: '300ms', ...http },
    targets: { t: { type: 'null' as const } },
    routes: { r: { streams: ['orders'], target: 't' } },
  };
}

async function bytesOf(d: Delivery): Promise<Buffer> {
  if (d.payload) return d.payload;
  const chunks: Buffer[] = [];
  for await (const c of d.openPayload() as Readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A target that keeps every delivered payload's bytes by message id. */
function recordingTarget(): { target: ScriptedTarget; payloads: Map<string, Buffer> } {
  const payloads = new Map<string, Buffer>();
  const target = new ScriptedTarget();
  target.behaviour = async (d) => {
    payloads.set(d.id, await bytesOf(d));
    return { kind: 'ack' };
  };
  return { target, payloads };
}

const br = (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });

/** Files in every blobs/ directory under `dir` (side files, staged or stored). */
async function sideFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, inBlobs: boolean) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name), inBlobs || e.name === 'blobs');
      else if (inBlobs || e.name.endsWith('.tmp')) out.push(join(d, e.name));
    }
  };
  await walk(dir, false);
  return out;
}

function stored(g: Gateway): number {
  return g.ws.streams().reduce((n, s) => n + s.messages, 0);
}

async function expectNothingStored(g: Gateway, dir: string): Promise<void> {
  expect(stored(g)).toBe(0);
  expect(g.ws.streamBounds('orders').lastSeq).toBe(0);
  await until(async () => (await sideFiles(dir)).length === 0, 5000, 'staged side files to be removed');
}

function errorCode(res: { json(): unknown }): string {
  return (res.json() as { error: { code: string } }).error.code;
}

/**
 * A gzip bomb: one gzip member of 16 MiB of zeros (about 16 KB) repeated 640 times inflates to
 * 10 GiB; that 10 MiB of members repeats every 16 KB, so gzip packs it again into about 16 KB.
 * Sent as `Content-Encoding: gzip, gzip`: 16 KB on the wire, 10 GiB decoded.
 */
function gzipBomb(): { body: Buffer; inflatesTo: number } {
  const member = gzipSync(Buffer.alloc(16 * MiB), { level: 9 });
  const inner = Buffer.concat(Array.from({ length: 640 }, () => member));
  return { body: gzipSync(inner, { level: 9 }), inflatesTo: 640 * 16 * MiB };
}

async function brotliOfZeros(bytes: number): Promise<Buffer> {
  const enc = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });
  const out: Buffer[] = [];
  enc.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => enc.on('end', r));
  const zeros = Buffer.alloc(MiB);
  for (let n = 0; n < bytes; n += MiB) if (!enc.write(zeros)) await new Promise((r) => enc.once('drain', r));
  enc.end();
  await done;
  return Buffer.concat(out);
}

describe('HTTP ingest with Content-Encoding', () => {
  it('stores gzip and br bodies decoded, byte for byte: binary payloads, inline and streamed to a side file', async () => {
    const { target, payloads } = recordingTarget();
    ({ gw } = await startGateway(config(), { t: target }));
    const small = randomBytes(3000);
    const large = randomBytes(300 * 1024); // above blobThreshold: streamed to a side file
    const cases: [string, Buffer, Buffer][] = [
      ['gzip', small, gzipSync(small)],
      ['br', small, br(small)],
      ['x-gzip', small, gzipSync(small)],
      ['identity', small, small],
      ['gzip, br', small, br(gzipSync(small))],
      ['GZIP', large, gzipSync(large)],
      ['br', large, br(large)],
      ['gzip', Buffer.alloc(0), gzipSync(Buffer.alloc(0))],
      // Compressible and large once decoded, small on the wire: decoded past blobThreshold.
      ['gzip', Buffer.alloc(512 * 1024, 0x2a), gzipSync(Buffer.alloc(512 * 1024, 0x2a))],
    ];
    const ids: [string, Buffer][] = [];
    for (const [encoding, payload, body] of cases) {
      const res = await gw.app.inject({
        method: 'POST',
        url: '/v1/streams/orders/messages',
        headers: { 'content-type': 'application/octet-stream', 'content-encoding': encoding },
        payload: body,
      });
      expect(res.statusCode, `${encoding}: ${res.body}`).toBe(202);
      ids.push([res.json().id, payload]);
    }
    // Over a real socket too, chunked (no Content-Length): decoded as it streams.
    const viaFetch = await fetch(`${gw.url}/v1/streams/orders/messages`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body: new Blob([gzipSync(large)]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(viaFetch.status).toBe(202);
    ids.push([((await viaFetch.json()) as { id: string }).id, large]);
    await until(() => payloads.size === ids.length, 10_000, 'every message delivered');
    for (const [i, [id, payload]] of ids.entries()) {
      expect(payloads.get(id)?.equals(payload), `case ${i}`).toBe(true);
    }
    // The content coding is transport, not message: it is not stored as a header.
    expect(target.delivered.every((d) => d.headers['content-encoding'] === undefined)).toBe(true);
  });

  it('fingerprints a compressed publish by its decoded bytes: a retry sent uncompressed is the same request', async () => {
    ({ gw } = await startGateway(config()));
    const payload = randomBytes(1000);
    const post = (headers: Record<string, string>, body: Buffer) =>
      gw!.app.inject({
        method: 'POST',
        url: '/v1/streams/orders/messages',
        headers: { 'idempotency-key': 'k-1', ...headers },
        payload: body,
      });
    const first = await post({ 'content-encoding': 'br' }, br(payload));
    expect(first.statusCode).toBe(202);
    const retry = await post({}, payload);
    expect(retry.json().id).toBe(first.json().id);
    const other = await post({ 'content-encoding': 'gzip' }, gzipSync(randomBytes(1000)));
    expect(other.statusCode).toBe(422);
    expect(stored(gw)).toBe(1);
  });

  it('decodes gzip and br NDJSON batches, binary payloads included', async () => {
    const { target, payloads } = recordingTarget();
    ({ gw } = await startGateway(config(), { t: target }));
    const binary = randomBytes(2000);
    const ndjson = Buffer.from(
      `${JSON.stringify({ payload: 'text', key: 'k' })}\n${JSON.stringify({ payloadBase64: binary.toString('base64') })}\n`,
    );
    for (const [encoding, body] of [
      ['gzip', gzipSync(ndjson)],
      ['br', br(ndjson)],
    ] as const) {
      const res = await gw.app.inject({
        method: 'POST',
        url: '/v1/streams/orders/messages:batch',
        headers: { 'content-type': 'application/x-ndjson', 'content-encoding': encoding },
        payload: body,
      });
      expect(res.statusCode, res.body).toBe(202);
      const [a, b] = res.json().ids as string[];
      await until(() => payloads.has(a!) && payloads.has(b!), 5000, 'the batch delivered');
      expect(payloads.get(a!)?.toString()).toBe('text');
      expect(payloads.get(b!)?.equals(binary)).toBe(true);
    }
  });

  it('refuses a 16 KB gzip bomb that inflates to 10 GiB with 413 at once and stores nothing', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config({ maxBodyBytes: '8MiB', maxBatchBytes: '8MiB' })));
    const bomb = gzipBomb();
    expect(bomb.body.byteLength).toBeLessThan(20_000);
    expect(bomb.inflatesTo).toBe(10 * 1024 ** 3);
    for (const url of ['/v1/streams/orders/messages', '/v1/streams/orders/messages:batch']) {
      const started = performance.now();
      const res = await gw.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip, gzip' },
        payload: bomb.body,
      });
      const ms = performance.now() - started;
      expect(res.statusCode, res.body).toBe(413);
      expect(errorCode(res)).toBe('WS_ERR_HTTP_PAYLOAD_TOO_LARGE');
      // Inflating all 10 GiB would take well over 10 s (and stage 10 GiB on disk); stopping
      // at the 8 MiB limit, a fraction of a second (the bound leaves room for a loaded machine).
      expect(ms, url).toBeLessThan(5000);
      await expectNothingStored(gw, dir);
    }
  });

  it('refuses single-coding gzip and br bodies that inflate past the limit with 413, nothing stored', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config({ maxBodyBytes: '1MiB', maxBatchBytes: '1MiB' })));
    const gzip10MiB = gzipSync(Buffer.alloc(10 * MiB)); // about 10 KB
    expect(gzip10MiB.byteLength).toBeLessThan(12_000);
    const br64MiB = await brotliOfZeros(64 * MiB); // a few hundred bytes
    expect(br64MiB.byteLength).toBeLessThan(1000);
    for (const [encoding, body] of [
      ['gzip', gzip10MiB],
      ['br', br64MiB],
    ] as const) {
      for (const url of ['/v1/streams/orders/messages', '/v1/streams/orders/messages:batch']) {
        const res = await gw.app.inject({
          method: 'POST',
          url,
          headers: { 'content-encoding': encoding },
          payload: body,
        });
        expect(res.statusCode, `${encoding} ${url}`).toBe(413);
        expect(errorCode(res)).toBe('WS_ERR_HTTP_PAYLOAD_TOO_LARGE');
      }
    }
    await expectNothingStored(gw, dir);
    // Just under the limit once decoded still goes through.
    const ok = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      headers: { 'content-encoding': 'gzip' },
      payload: gzipSync(Buffer.alloc(MiB)),
    });
    expect(ok.statusCode).toBe(202);
  });

  it('answers corrupt or truncated gzip and br with 400 WS_ERR_HTTP_ENCODING_INVALID, nothing stored', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config()));
    const big = randomBytes(400 * 1024);
    const gz = gzipSync(big);
    const corrupt = Buffer.from(gz);
    corrupt.fill(0x55, 100, 200); // inside the deflate data
    const badCrc = Buffer.from(gzipSync(Buffer.from('hello')));
    badCrc[badCrc.length - 8]! ^= 0xff; // the trailer's CRC32
    const cases: [string, Buffer][] = [
      ['gzip', Buffer.from('this is not gzip at all')],
      ['gzip', gz.subarray(0, gz.length >> 1)], // truncated, streamed path
      ['gzip', gzipSync(Buffer.from('short')).subarray(0, 12)], // truncated, inline path
      ['gzip', corrupt],
      ['gzip', badCrc],
      ['br', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])],
      ['br', br(big).subarray(0, 1000)],
    ];
    for (const url of ['/v1/streams/orders/messages', '/v1/streams/orders/messages:batch']) {
      for (const [i, [encoding, body]] of cases.entries()) {
        const res = await gw.app.inject({
          method: 'POST',
          url,
          headers: { 'content-encoding': encoding },
          payload: body,
        });
        expect(res.statusCode, `${url} case ${i}: ${res.body}`).toBe(400);
        expect(errorCode(res)).toBe('WS_ERR_HTTP_ENCODING_INVALID');
      }
    }
    await expectNothingStored(gw, dir);
  });

  it('answers an unknown Content-Encoding with 415 WS_ERR_HTTP_ENCODING_UNSUPPORTED before reading the body', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config()));
    for (const encoding of ['deflate', 'compress', 'zstd', 'gzip, deflate', 'gzip, gzip, gzip', 'foo']) {
      for (const url of ['/v1/streams/orders/messages', '/v1/streams/orders/messages:batch']) {
        const res = await gw.app.inject({
          method: 'POST',
          url,
          headers: { 'content-encoding': encoding },
          payload: gzipSync(Buffer.from('{"payload":"x"}\n')),
        });
        expect(res.statusCode, `${encoding} ${url}`).toBe(415);
        expect(errorCode(res)).toBe('WS_ERR_HTTP_ENCODING_UNSUPPORTED');
        expect(res.json().error.message).toContain(encoding);
      }
    }
    await expectNothingStored(gw, dir);
  });

  it('still ends a compressed body that goes silent with 408 and removes its staging file', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config()));
    const gz = gzipSync(randomBytes(300 * 1024));
    const { hostname, port } = new URL(gw.url);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const closed = new Promise((r) => socket.on('close', r));
    socket.write(
      `POST /v1/streams/orders/messages HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: ${gz.length}\r\n\r\n`,
    );
    socket.write(gz.subarray(0, 200 * 1024)); // decodes past blobThreshold: a side file is staged
    await closed;
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect(text).toContain('WS_ERR_HTTP_BODY_TIMEOUT');
    await expectNothingStored(gw, dir);
  });

  it('charges the decoded bytes to http.maxStagingBytes: 503 past it, nothing stored', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config({ maxStagingBytes: '2MiB' })));
    // 20 KB on the wire, 20 MiB decoded: the staging bound sees the 20 MiB.
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      headers: { 'content-encoding': 'gzip' },
      payload: gzipSync(Buffer.alloc(20 * MiB)),
    });
    expect(res.statusCode, res.body).toBe(503);
    expect(errorCode(res)).toBe('WS_ERR_HTTP_STAGING_FULL');
    await expectNothingStored(gw, dir);
    // The budget was given back: a body within it is accepted.
    const ok = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      headers: { 'content-encoding': 'gzip' },
      payload: gzipSync(Buffer.alloc(MiB)),
    });
    expect(ok.statusCode).toBe(202);
  });

  it('decodes a large compressed upload as it streams, without holding the decoded body in memory', async () => {
    ({ gw } = await startGateway(config()));
    const size = 256 * MiB;
    // 16 gzip members of 16 MiB of zeros, concatenated (RFC 1952 §2.2): 256 KB, 256 MiB decoded.
    const member = gzipSync(Buffer.alloc(16 * MiB));
    const body = Buffer.concat(Array.from({ length: size / (16 * MiB) }, () => member));
    const base = process.memoryUsage();
    let peakRss = base.rss;
    let peakBuffers = base.arrayBuffers;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers);
    }, 5);
    try {
      const res = await fetch(`${gw.url}/v1/streams/orders/messages`, {
        method: 'POST',
        headers: { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' },
        body,
      });
      expect(res.status).toBe(202);
    } finally {
      clearInterval(sampler);
    }
    const info = gw.ws.streams().find((s) => s.name === 'orders')!;
    expect(info.messages).toBe(1);
    expect(info.bytes).toBeGreaterThanOrEqual(size);
    // Held whole, the decoded body would add 256 MiB; streamed, what grows is the garbage of
    // decoded chunks between collections.
    expect((peakBuffers - base.arrayBuffers) / MiB).toBeLessThan(96);
    expect((peakRss - base.rss) / MiB).toBeLessThan(128);
  }, 60_000);
});
