import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../support/gateway.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const LONG_STREAM = `s${'x'.repeat(127)}`; // 128 characters: the longest name SPEC §1 allows

const config = {
  storage: { blobThreshold: '64KiB' },
  http: { bodyTimeout: '300ms', maxStagingBytes: '3MiB' },
  streams: { [LONG_STREAM]: {} },
  targets: { t: { type: 'null' as const } },
  routes: { r: { streams: ['orders'], target: 't' } },
};

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

/** Sends raw bytes and reads the whole response (the server closes or answers once). */
function rawRequest(url: string, bytes: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(hostPort(url));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? Number.NaN);
      if (Buffer.byteLength(text.slice(end + 4), 'latin1') >= length) socket.destroy();
    });
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, headers: text.slice(0, end), body: text.slice(end + 4) });
    });
    socket.on('error', reject);
    socket.write(bytes);
  });
}

function expectApiError(res: RawResponse, status: number, code: RegExp | string): void {
  expect(res.status, res.headers).toBe(status);
  const body = JSON.parse(res.body) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toMatch(code);
  expect(body.error.message.length).toBeGreaterThan(0);
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function stagedFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.endsWith('.tmp')) out.push(join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

function openUpload(url: string, declared: number, send: number): Socket {
  const socket = connect(hostPort(url));
  socket.on('error', () => {});
  socket.write(
    `POST /v1/streams/orders/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`,
  );
  socket.write(Buffer.alloc(send, 7));
  return socket;
}

function responseOf(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString();
    });
    socket.on('close', () => resolve(text));
  });
}

describe('HTTP hardening', () => {
  it('answers requests refused before any handler in the documented error shape', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config));
    void dir;
    const { url } = gw;
    const post = (head: string, body = '') =>
      rawRequest(url, `POST /v1/streams/orders/messages HTTP/1.1\r\nHost: x\r\n${head}\r\n${body}`);
    expectApiError(
      await post('Content-Length: 1\r\nContent-Length: 2\r\n', 'ab'),
      400,
      'WS_ERR_HTTP_BAD_REQUEST',
    );
    expectApiError(await post('Content-Length: x\r\n', 'ab'), 400, 'WS_ERR_HTTP_BAD_REQUEST');
    expectApiError(
      await post('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'),
      400,
      'WS_ERR_HTTP_BAD_REQUEST',
    );
    expectApiError(await post('Transfer-Encoding: gzip\r\n', 'abc'), 400, /^WS_ERR_HTTP_/);
    expectApiError(
      await post('Transfer-Encoding: chunked\r\n', 'zz\r\nabc\r\n0\r\n\r\n'),
      400,
      'WS_ERR_HTTP_BAD_REQUEST',
    );
    expectApiError(await post('X-Bad: a\u0001b\r\nContent-Length: 0\r\n'), 400, 'WS_ERR_HTTP_BAD_REQUEST');
    expectApiError(
      await post(`X-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 0\r\n`),
      431,
      'WS_ERR_HTTP_HEADERS_TOO_LARGE',
    );
    expectApiError(
      await rawRequest(url, 'GET /v1/streams/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n'),
      400,
      'WS_ERR_HTTP_BAD_REQUEST',
    );
    expectApiError(
      await rawRequest(url, `GET /v1/routes/${'r'.repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      414,
      'WS_ERR_HTTP_URI_TOO_LONG',
    );
    expectApiError(
      await rawRequest(url, `GET /v1/routes/${'r'.repeat(129)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      400,
      'WS_ERR_HTTP_BAD_REQUEST',
    );
    expectApiError(
      await rawRequest(url, 'PUT /v1/streams HTTP/1.1\r\nHost: x\r\n\r\n'),
      404,
      'WS_ERR_HTTP_NOT_FOUND',
    );
    // Nothing of the refused requests was stored.
    expect(gw.ws.streams().find((s) => s.name === 'orders')?.messages).toBe(0);
  });

  it('publishes to and reads a stream with a 128-character name on every endpoint', async () => {
    ({ gw } = await startGateway(config));
    const res = await fetch(`${gw.url}/v1/streams/${LONG_STREAM}/messages`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(202);
    const batch = await fetch(`${gw.url}/v1/streams/${LONG_STREAM}/messages:batch`, {
      method: 'POST',
      body: '{"payload":"y"}\n',
    });
    expect(batch.status).toBe(202);
    const info = await fetch(`${gw.url}/v1/streams/${LONG_STREAM}`);
    expect(((await info.json()) as { messages: number }).messages).toBe(2);
  });

  it('ends a body that goes silent with 408, removes its staging file and counts it', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config));
    const socket = openUpload(gw.url, 2.5 * 1024 * 1024, 1024 * 1024);
    const answer = await responseOf(socket);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(answer).toContain('WS_ERR_HTTP_BODY_TIMEOUT');
    await until(async () => (await stagedFiles(dir)).length === 0, 5000, 'the staging file to be removed');
    expect(await metric(gw.url, 'waystation_http_bodies_refused_total{reason="body-timeout"}')).toBe(1);
    expect(gw.ws.streams().find((s) => s.name === 'orders')?.messages).toBe(0);
  });

  it('closes the connection when it refuses a request whose body it did not read', async () => {
    ({ gw } = await startGateway(config));
    const socket = connect(hostPort(gw.url));
    socket.write(
      'POST /v1/streams/nosuch/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n' +
        'x'.repeat(100),
    );
    const answer = await responseOf(socket); // resolves on close: the test times out without it
    expect(answer).toMatch(/^HTTP\/1\.1 404/);
    expect(answer).toContain('WS_ERR_STREAM_UNKNOWN');
    // The refusal is the answer: no body timeout or client abort is counted for it afterwards.
    await new Promise((r) => setTimeout(r, 600));
    expect(await metric(gw.url, 'waystation_http_bodies_refused_total')).toBe(0);
  });

  it('bounds the bytes being staged at once: past http.maxStagingBytes a publish gets 503', async () => {
    ({ gw } = await startGateway({ ...config, http: { ...config.http, bodyTimeout: '30s' } }));
    const first = openUpload(gw.url, 2 * 1024 * 1024, 1024);
    const firstAnswer = responseOf(first);
    await new Promise((r) => setTimeout(r, 100));
    const second = await fetch(`${gw.url}/v1/streams/orders/messages`, {
      method: 'POST',
      body: Buffer.alloc(2 * 1024 * 1024),
    });
    expect(second.status).toBe(503);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe(
      'WS_ERR_HTTP_STAGING_FULL',
    );
    first.write(Buffer.alloc(2 * 1024 * 1024 - 1024, 1));
    expect(await firstAnswer).toMatch(/^HTTP\/1\.1 202/);
    // The room is given back once the first upload is stored.
    const third = await fetch(`${gw.url}/v1/streams/orders/messages`, {
      method: 'POST',
      body: Buffer.alloc(2 * 1024 * 1024),
    });
    expect(third.status).toBe(202);
    expect(await metric(gw.url, 'waystation_http_bodies_refused_total{reason="staging-full"}')).toBe(1);
  });

  it('counts a client hanging up mid-body as an abort, not a storage or internal error', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config));
    const errors: unknown[] = [];
    const logError = gw.logger.error.bind(gw.logger);
    gw.logger.error = ((...args: unknown[]) => {
      errors.push(args);
      return (logError as (...a: unknown[]) => void)(...args);
    }) as typeof gw.logger.error;
    for (const [declared, sent] of [
      [2.5 * 1024 * 1024, 1024 * 1024], // streamed to a side file
      [1000, 100], // read whole
    ] as const) {
      const socket = openUpload(gw.url, declared, sent);
      await new Promise((r) => setTimeout(r, 100));
      socket.destroy();
    }
    await until(
      async () =>
        (await metric(gw!.url, 'waystation_http_bodies_refused_total{reason="client-aborted"}')) === 2,
      5000,
      'two aborts counted',
    );
    expect(await stagedFiles(dir)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('refuses payloadBase64 that is not base64, storing nothing of the batch', async () => {
    ({ gw } = await startGateway(config));
    for (const bad of ['not base64 at all!', '@@@@', 'A', 'AA=A', 'A A=']) {
      const res = await fetch(`${gw.url}/v1/streams/orders/messages:batch`, {
        method: 'POST',
        body: `{"payload":"fine"}\n${JSON.stringify({ payloadBase64: bad })}\n`,
      });
      expect(res.status, bad).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('WS_ERR_HTTP_BAD_REQUEST');
      expect(body.error.message).toMatch(/line 2.*base64/);
    }
    expect(gw.ws.streams().find((s) => s.name === 'orders')?.messages).toBe(0);
    for (const good of ['', 'AA==', 'AAE=', 'AAEC', 'AA']) {
      const res = await fetch(`${gw.url}/v1/streams/orders/messages:batch`, {
        method: 'POST',
        body: `${JSON.stringify({ payloadBase64: good })}\n`,
      });
      expect(res.status, good).toBe(202);
    }
  });

  it('answers a retried request with its first answer, and refuses a different one under a used Idempotency-Key', async () => {
    ({ gw } = await startGateway(config));
    const single = (body: string, key = 'k-1') =>
      fetch(`${gw!.url}/v1/streams/orders/messages`, {
        method: 'POST',
        body,
        headers: { 'idempotency-key': key },
      });
    const batch = (body: string, key = 'k-1') =>
      fetch(`${gw!.url}/v1/streams/orders/messages:batch`, {
        method: 'POST',
        body,
        headers: { 'idempotency-key': key },
      });
    const first = (await (await single('one')).json()) as { id: string };
    const retry = (await (await single('one')).json()) as { id: string };
    expect(retry.id).toBe(first.id);
    const three = await batch('{"payload":"a"}\n{"payload":"b"}\n{"payload":"c"}\n');
    expect(three.status).toBe(422);
    expect(((await three.json()) as { error: { code: string } }).error.code).toBe(
      'WS_ERR_IDEMPOTENCY_KEY_REUSED',
    );
    expect((await single('two')).status).toBe(422);
    const ok = await batch('{"payload":"a"}\n{"payload":"b"}\n', 'k-2');
    const again = await batch('{"payload":"a"}\n{"payload":"b"}\n', 'k-2');
    expect(((await again.json()) as { ids: string[] }).ids).toEqual(
      ((await ok.json()) as { ids: string[] }).ids,
    );
    expect(gw.ws.streams().find((s) => s.name === 'orders')?.messages).toBe(3);
  });

  it('keeps the fingerprint of an idempotent publish across a restart', async () => {
    const { restartGateway } = await import('../support/gateway.js');
    let dir: string;
    ({ gw, dir } = await startGateway(config));
    const post = (body: string) =>
      fetch(`${gw!.url}/v1/streams/orders/messages`, {
        method: 'POST',
        body,
        headers: { 'idempotency-key': 'k' },
      });
    const first = (await (await post('one')).json()) as { id: string };
    await gw.close();
    gw = await restartGateway(dir);
    expect(((await (await post('one')).json()) as { id: string }).id).toBe(first.id);
    expect((await post('other')).status).toBe(422);
  });
});

describe('library publish arguments', () => {
  it('accepts strings, byte types, Blobs and streams; a wrong type is an argument error naming the parameter', async () => {
    ({ gw } = await startGateway(config));
    const { ws } = gw;
    const text = (s: string) => new TextEncoder().encode(s);
    const inputs: unknown[] = [
      'hello',
      text('bytes'),
      text('buffer').buffer,
      new DataView(text('view').buffer),
      new Uint16Array([0x6968]),
      new Blob(['blob']),
      Readable.from(['str', 'eam']),
      (() => {
        const r = Readable.from([Buffer.from('encoded')]);
        r.setEncoding('utf8');
        return r;
      })(),
    ];
    const ids: string[] = [];
    for (const input of inputs) ids.push((await ws.publish('orders', input as string)).id);
    const stored = await ws.readMessages('orders', { fromSeq: 1 });
    expect(stored.map((m) => m.payload?.toString())).toEqual([
      'hello',
      'bytes',
      'buffer',
      'view',
      'hi',
      'blob',
      'stream',
      'encoded',
    ]);
    for (const [bad, name] of [
      [42, /^payload must be/],
      [null, /^payload must be/],
      [{ a: 1 }, /^payload must be/],
      [['a'], /^payload must be/],
    ] as const) {
      await expect(ws.publish('orders', bad as unknown as string)).rejects.toMatchObject({
        code: 'WS_ERR_ARGUMENT_INVALID',
        message: expect.stringMatching(name),
      });
    }
    await expect(ws.publish('orders', 'x', { key: 7 as unknown as string })).rejects.toMatchObject({
      code: 'WS_ERR_ARGUMENT_INVALID',
      message: expect.stringMatching(/options\.key/),
    });
    await expect(
      ws.publishBatch('orders', [{ payload: 'a' }, { payload: 5 as unknown as string }]),
    ).rejects.toMatchObject({
      code: 'WS_ERR_ARGUMENT_INVALID',
      message: expect.stringMatching(/messages\[1\]\.payload/),
    });
    await expect(ws.publish('orders', Readable.from([{ n: 1 }]) as unknown as string)).rejects.toMatchObject({
      code: 'WS_ERR_ARGUMENT_INVALID',
    });
    expect((await ws.readMessages('orders', { fromSeq: 1 })).length).toBe(ids.length);
  });
});
