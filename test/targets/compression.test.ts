import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import type { Delivery } from '../../src/delivery/target.js';
import { ConfigError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { Waystation } from '../../src/index.js';
import { type Compression, compressBody, compressStream } from '../../src/targets/compression.js';
import { HttpTarget } from '../../src/targets/index.js';
import { WaystationTarget } from '../../src/targets/waystation-target.js';
import { startGateway } from '../support/gateway.js';
import { type Received, Receiver } from '../support/receiver.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

function delivery(seq: number, payload: Buffer, extra: Partial<Delivery> = {}): Delivery {
  return {
    id: `abcdefghij-${seq}`,
    stream: 'orders',
    seq,
    key: 'cust-1',
    headers: { 'content-type': 'application/octet-stream' },
    timestamp: 1_700_000_000_000,
    payloadBytes: payload.byteLength,
    payload,
    openPayload: () => Readable.from([payload]),
    attempt: 1,
    ...extra,
  };
}

/** A delivery whose payload is only a stream (a side file), read in 64 KiB chunks. */
function streamedDelivery(seq: number, payload: Buffer): Delivery {
  const chunks = () => {
    const out: Buffer[] = [];
    for (let i = 0; i < payload.length; i += 65536) out.push(payload.subarray(i, i + 65536));
    return Readable.from(out);
  };
  return delivery(seq, payload, { payload: undefined, openPayload: chunks });
}

function decoded(req: Received): Buffer {
  const encoding = req.headers['content-encoding'];
  if (encoding === 'gzip') return gunzipSync(req.body);
  if (encoding === 'br') return brotliDecompressSync(req.body);
  if (encoding === undefined) return req.body;
  throw new Error(`unexpected content-encoding ${encoding}`);
}

const never = new AbortController().signal;
let receiver: Receiver | undefined;
let downstream: Gateway | undefined;
let upstream: Waystation | undefined;
const stops: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const t of stops.splice(0)) await t.stop();
  await upstream?.close();
  await downstream?.close();
  await receiver?.stop();
  receiver = downstream = upstream = undefined;
});

function httpTarget(opts: Partial<ConstructorParameters<typeof HttpTarget>[0]>): HttpTarget {
  const t = new HttpTarget({ url: receiver!.url, ...opts });
  stops.push(t);
  return t;
}

const binary = randomBytes(5000);
const text = Buffer.from('{"order":1001,"note":"ü"}');
const batch = [
  delivery(1, binary),
  delivery(2, text, { headers: { 'content-type': 'application/json' } }),
  streamedDelivery(3, randomBytes(200 * 1024)),
];

describe('compression (src/targets/compression.ts)', () => {
  it('round-trips in-memory bodies and streams through gzip and br', async () => {
    for (const c of ['gzip', 'br'] as const) {
      const { body, encoding } = await compressBody(binary, c);
      expect(encoding).toBe(c);
      expect((c === 'gzip' ? gunzipSync : brotliDecompressSync)(body as Buffer).equals(binary)).toBe(true);
      const streamed = compressStream(Readable.from([binary.subarray(0, 100), binary.subarray(100)]), c);
      const chunks: Buffer[] = [];
      for await (const chunk of streamed.body) chunks.push(chunk as Buffer);
      const bytes = Buffer.concat(chunks);
      expect((c === 'gzip' ? gunzipSync : brotliDecompressSync)(bytes).equals(binary)).toBe(true);
    }
    expect(await compressBody(binary, 'none')).toEqual({ body: binary });
  });

  it('fails the compressed stream when its source fails', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('EIO: side file unreadable'));
      },
    });
    const { body } = compressStream(failing, 'gzip');
    await expect(async () => {
      for await (const _ of body) void _;
    }).rejects.toThrow(/EIO/);
  });
});

describe('http target with compression', () => {
  it('sends batch NDJSON with Content-Encoding gzip and br; the receiver decodes the same lines as uncompressed', async () => {
    receiver = await new Receiver().start();
    for (const compression of ['none', 'gzip', 'br'] as const)
      expect(await httpTarget({ mode: 'batch', compression }).deliver(batch, never)).toEqual([
        { kind: 'ack' },
        { kind: 'ack' },
        { kind: 'ack' },
      ]);
    const [none, gzip, br] = receiver.requests;
    expect(none!.headers['content-encoding']).toBeUndefined();
    expect(gzip!.headers['content-encoding']).toBe('gzip');
    expect(br!.headers['content-encoding']).toBe('br');
    for (const req of [gzip!, br!]) {
      expect(req.headers['content-type']).toBe('application/x-ndjson');
      expect(Number(req.headers['content-length'])).toBe(req.body.byteLength);
      expect(decoded(req).equals(none!.body)).toBe(true);
    }
    const lines = decoded(br!)
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; payload?: string; payloadBase64?: string });
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(Buffer.from(lines[0]!.payloadBase64!, 'base64').equals(binary)).toBe(true);
    expect(lines[1]!.payload).toBe(text.toString());
    // Random payloads (base64 in JSON) still shrink; the ratio is in docs/benchmarks.md.
    expect(gzip!.body.byteLength).toBeLessThan(none!.body.byteLength);
  });

  it('compresses each payload in single mode, in memory or streamed chunked from a side file', async () => {
    receiver = await new Receiver().start();
    const own = delivery(4, text, { headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' } });
    for (const compression of ['gzip', 'br'] as const) {
      receiver.requests.length = 0;
      expect(await httpTarget({ compression }).deliver([...batch, own], never)).toHaveLength(4);
      const [a, b, c, d] = receiver.requests;
      expect(decoded(a!).equals(binary)).toBe(true);
      expect(Number(a!.headers['content-length'])).toBe(a!.body.byteLength);
      expect(decoded(b!).equals(text)).toBe(true);
      expect(c!.headers['transfer-encoding']).toBe('chunked');
      expect(c!.headers['content-length']).toBeUndefined();
      const streamedBytes: Buffer[] = [];
      for await (const chunk of batch[2]!.openPayload()) streamedBytes.push(chunk as Buffer);
      expect(decoded(c!).equals(Buffer.concat(streamedBytes))).toBe(true);
      expect(a!.headers).toMatchObject({ 'idempotency-key': 'abcdefghij-1', 'waystation-seq': '1' });
      // A payload stored with its own coding keeps it, listed first (applied first).
      expect(d!.headers['content-encoding']).toBe(`gzip, ${compression}`);
    }
  });

  it('nacks a streamed payload whose side file fails while it is compressed', async () => {
    receiver = await new Receiver().start();
    const failing = delivery(9, binary, {
      payload: undefined,
      openPayload: () =>
        new Readable({
          read() {
            this.destroy(new Error('EIO: side file unreadable'));
          },
        }),
    });
    const [outcome] = await httpTarget({ compression: 'gzip', timeoutMs: 2000 }).deliver([failing], never);
    expect(outcome?.kind).toBe('nack');
  });

  it('takes compression from the config: an http batch route sends gzip', async () => {
    receiver = await new Receiver().start();
    upstream = await Waystation.open(
      {
        dataDir: await tempDir(),
        targets: { rx: { type: 'http', url: receiver.url, mode: 'batch', compression: 'gzip' } },
        routes: { r: { streams: ['s'], target: 'rx', batch: { maxMessages: 10, maxWait: '50ms' } } },
      },
      { logger: pino({ level: 'silent' }) },
    );
    await upstream.publishBatch(
      's',
      Array.from({ length: 5 }, (_, i) => ({ payload: Buffer.from(`m${i}`) })),
    );
    await until(() => receiver!.requests.length > 0, 5000, 'a batch at the receiver');
    const req = receiver.requests[0]!;
    expect(req.headers['content-encoding']).toBe('gzip');
    expect(decoded(req).toString()).toContain('"stream":"s"');
  });

  it('validates compression: none, gzip or br on http and waystation targets, default none', () => {
    const cfg = (compression: unknown) => ({
      targets: {
        h: { type: 'http', url: 'http://127.0.0.1:9/in', compression },
        w: { type: 'waystation', url: 'http://127.0.0.1:9', compression },
      },
    });
    for (const c of ['none', 'gzip', 'br']) {
      const parsed = parseConfig(cfg(c));
      expect(parsed.config.targets.h).toMatchObject({ compression: c });
      expect(parsed.config.targets.w).toMatchObject({ compression: c });
    }
    expect(parseConfig(cfg(undefined)).config.targets.h).toMatchObject({ compression: 'none' });
    expect(() => parseConfig(cfg('deflate'))).toThrow(ConfigError);
  });
});

describe('waystation target with compression', () => {
  it('sends each message compressed to a receiver', async () => {
    receiver = await new Receiver().start();
    receiver.respond = (_req, res) => res.writeHead(202).end('{}');
    for (const compression of ['gzip', 'br'] as Compression[]) {
      receiver.requests.length = 0;
      const t = new WaystationTarget({ url: `http://127.0.0.1:${receiver.port}`, compression });
      stops.push(t);
      expect(await t.deliver(batch, never)).toEqual([{ kind: 'ack' }, { kind: 'ack' }, { kind: 'ack' }]);
      const [a, , c] = receiver.requests;
      expect(a!.headers['content-encoding']).toBe(compression);
      expect(a!.headers['idempotency-key']).toBe('abcdefghij-1');
      expect(decoded(a!).equals(binary)).toBe(true);
      expect(c!.headers['transfer-encoding']).toBe('chunked');
    }
  });

  it('forwards gzip and br to a downstream gateway, which stores the payloads byte for byte', async () => {
    const collected = new ScriptedTarget();
    const received = new Map<string, Buffer>();
    collected.behaviour = async (d) => {
      const chunks: Buffer[] = [];
      if (d.payload) chunks.push(d.payload);
      else for await (const c of d.openPayload()) chunks.push(c as Buffer);
      received.set(d.headers['x-n'] ?? '', Buffer.concat(chunks));
      return { kind: 'ack' };
    };
    ({ gw: downstream } = await startGateway(
      {
        storage: { blobThreshold: '64KiB' },
        streams: { hub: {} },
        targets: { c: { type: 'null' } },
        routes: { r: { streams: ['hub'], target: 'c' } },
      },
      { c: collected },
    ));
    upstream = await Waystation.open(
      {
        dataDir: await tempDir(),
        storage: { blobThreshold: '64KiB' },
        targets: {
          gz: { type: 'waystation', url: downstream.url, stream: 'hub', compression: 'gzip' },
          br: { type: 'waystation', url: downstream.url, stream: 'hub', compression: 'br' },
        },
        routes: {
          viaGzip: { streams: ['a'], target: 'gz' },
          viaBr: { streams: ['b'], target: 'br' },
        },
      },
      { logger: pino({ level: 'silent' }) },
    );
    const payloads = new Map<string, Buffer>();
    for (const stream of ['a', 'b']) {
      // Small (inline upstream and downstream), large random (side files on both sides),
      // compressible past the downstream's blobThreshold once decoded.
      for (const [n, payload] of [
        [`${stream}-small`, randomBytes(700)],
        [`${stream}-large`, randomBytes(300 * 1024)],
        [`${stream}-zeros`, Buffer.alloc(1024 * 1024)],
      ] as const) {
        payloads.set(n, payload);
        await upstream.publish(stream, payload, { headers: { 'x-n': n } });
      }
    }
    await until(() => received.size === payloads.size, 15_000, 'every message downstream');
    for (const [n, payload] of payloads) expect(received.get(n)?.equals(payload), n).toBe(true);
  });
});
