/**
 * The HTTP API under generated requests, valid and hostile (issue 15 §6): methods, paths,
 * query strings, headers and bodies from fast-check, sent as raw bytes over real sockets to a
 * running gateway. Properties: never a 5xx other than the documented 503/507; every error in
 * the JSON shape {"error":{"code","message"}}; the gateway never crashes and keeps answering; a
 * refused request stores nothing; every id answered 202 is still readable at the end.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashToken } from '../../src/ingest/http/auth.js';
import { startGateway } from '../support/gateway.js';

const ADMIN = `admin-${'a'.repeat(30)}`;
const LIMITED = `limited-${'b'.repeat(30)}`;

interface Exchange {
  status: number;
  body: string;
}

function send(url: string, bytes: Buffer): Promise<Exchange> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`no answer within 5 s to ${JSON.stringify(bytes.subarray(0, 200).toString('latin1'))}`),
      );
    }, 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const head = text.indexOf('\r\n\r\n');
      const headers = text.slice(0, head);
      let body = head < 0 ? '' : text.slice(head + 4);
      // Only the first response counts: a body shorter than its Content-Length leaves bytes the
      // server parses as a second (refused) request.
      const length = /content-length: *(\d+)/i.exec(headers)?.[1];
      if (length !== undefined) body = Buffer.from(body).subarray(0, Number(length)).toString('utf8');
      else if (/transfer-encoding: chunked/i.test(headers)) body = dechunk(body);
      resolve({ status, body });
    });
    // Not end(): a half-closed socket makes Node drop the answer still being prepared (the
    // request is then stored unanswered: at least once, never lost, but not what is tested here).
    socket.write(bytes);
  });
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

const segment = fc.oneof(
  fc.constantFrom(
    'orders',
    'other',
    'temps',
    'r',
    'nosuch',
    'a.b',
    '..',
    '.',
    '%2e%2e',
    '%00',
    '%E0%A4%A',
    '%ZZ',
  ),
  fc.string({ minLength: 1, maxLength: 20 }).map((s) => encodeURIComponent(s)),
  fc.integer({ min: 90, max: 300 }).map((n) => 'x'.repeat(n)),
);

const path = fc.oneof(
  segment.map((s) => `/v1/streams/${s}/messages`),
  segment.map((s) => `/v1/streams/${s}/messages:batch`),
  segment.map((s) => `/v1/streams/${s}`),
  fc.constantFrom(
    '/v1/streams',
    '/v1/routes',
    '/v1/mqtt/topics',
    '/metrics',
    '/healthz',
    '/readyz',
    '/openapi.json',
    '/',
  ),
  segment.map((s) => `/v1/routes/${s}`),
  fc
    .tuple(
      segment,
      fc.constantFrom('store', 'forward', 'purge', 'reset-counters', 'dead-letters', 'dead-letters/resubmit'),
    )
    .map(([s, a]) => `/v1/routes/${s}/${a}`),
  segment.map((s) => `/v1/messages/${s}`),
  segment.map((s) => `/v1/mqtt/topics/${s}`),
  fc.string({ maxLength: 40 }).map((s) => `/${s.replace(/[\s\r\n]/g, '')}`),
);

const query = fc.oneof(
  fc.constant(''),
  fc.constantFrom(
    '?top=1',
    '?top=0',
    '?top=-1',
    '?top=abc',
    '?wait=delivered&timeout=100ms',
    '?wait=x',
    '?timeout=9999h',
    '?a=1&a=2',
  ),
  fc.string({ maxLength: 20 }).map((s) => `?${encodeURIComponent(s)}`),
);

const headerValue = fc.oneof(
  fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')),
  fc.constantFrom(
    '-1',
    '0',
    '1',
    '2',
    '0.5',
    'abc',
    '',
    '30s',
    '99999999999',
    'true',
    '\u0001',
    'x'.repeat(5000),
  ),
);

const header = fc.oneof(
  fc.tuple(
    fc.constantFrom(
      'content-type',
      'idempotency-key',
      'waystation-key',
      'waystation-ttl',
      'waystation-header-mqtt-qos',
      'waystation-header-mqtt-retain',
      'waystation-header-mqtt-topic',
      'waystation-header-x-trace',
      'authorization',
      'transfer-encoding',
      'content-encoding',
      'expect',
    ),
    headerValue,
  ),
  fc.constantFrom<[string, string]>(
    ['authorization', `Bearer ${ADMIN}`],
    ['authorization', `Bearer ${LIMITED}`],
    ['authorization', 'Bearer nope'],
    ['content-type', 'application/x-ndjson'],
    ['transfer-encoding', 'chunked'],
  ),
);

const body = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  fc
    .array(
      fc.oneof(
        fc.record({ payload: fc.string({ maxLength: 20 }) }).map((o) => JSON.stringify(o)),
        fc
          .record({
            payloadBase64: fc.oneof(fc.base64String({ maxLength: 20 }), fc.string({ maxLength: 10 })),
          })
          .map((o) => JSON.stringify(o)),
        fc
          .record(
            {
              payload: fc.string(),
              key: fc.oneof(fc.string(), fc.integer()),
              headers: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())),
            },
            { requiredKeys: ['payload'] },
          )
          .map((o) => JSON.stringify(o)),
        fc.constantFrom(
          '{',
          'null',
          '[]',
          '{"payload":1}',
          '{"ids":["x"],"all":true}',
          '{"all":true}',
          '{"topic":"q/#","stream":"qq"}',
        ),
      ),
      { maxLength: 5 },
    )
    .map((lines) => Buffer.from(`${lines.join('\n')}\n`)),
);

const request = fc.record({
  method: fc.oneof(
    fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'),
    fc.stringMatching(/^[A-Z]{1,8}$/),
  ),
  path,
  query,
  headers: fc.array(header, { maxLength: 5 }),
  body,
  // How the body is framed: a correct Content-Length, a wrong one, chunked, or none.
  framing: fc.constantFrom('length', 'length', 'length', 'short', 'long', 'chunked', 'none'),
});

type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;

function encode(r: Request): Buffer {
  const lines = [`${r.method} ${r.path}${r.query} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  let payload = r.body;
  if (r.framing === 'length') lines.push(`Content-Length: ${r.body.byteLength}`);
  else if (r.framing === 'short') lines.push(`Content-Length: ${Math.max(0, r.body.byteLength - 1)}`);
  else if (r.framing === 'long') lines.push(`Content-Length: ${r.body.byteLength + 10}`);
  else if (r.framing === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    payload = Buffer.concat([
      Buffer.from(`${r.body.byteLength.toString(16)}\r\n`),
      r.body,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    if (r.body.byteLength === 0) payload = Buffer.from('0\r\n\r\n');
  } else payload = Buffer.alloc(0);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

describe('HTTP API fuzzing', () => {
  it('answers every generated request in the documented shape, stores nothing it refuses and loses nothing it accepted', async () => {
    const { gw } = await startGateway({
      http: { bodyTimeout: '200ms' },
      streams: { orders: {}, other: {}, 'a.b': {} },
      mqtt: {
        listen: '127.0.0.1:0',
        allowAnonymous: true,
        storeAndForwardTopics: [{ topic: 'plant/+/temp', stream: 'temps' }],
      },
      auth: {
        tokens: [
          { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin'] },
          {
            name: 'producer',
            tokenHash: hashToken(LIMITED),
            scopes: ['publish', 'read'],
            streams: ['orders*'],
          },
        ],
      },
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['orders', 'other'], target: 't' } },
    });
    const total = () => gw.ws.streams().reduce((n, s) => n + s.messages, 0);
    const accepted: string[] = [];
    let previous = '(none)';
    try {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const before = total();
          const res = await send(gw.url, encode(r));
          const what = `${r.method} ${r.path}${r.query} → ${res.status} ${res.body.slice(0, 200)} (after ${previous})`;
          previous = `${JSON.stringify(encode(r).toString('latin1').slice(0, 300))} → ${res.status}`;
          expect(res.status, what).toBeGreaterThanOrEqual(200);
          expect(res.status >= 500 && res.status !== 503 && res.status !== 507, what).toBe(false);
          if (res.status >= 400 && r.method !== 'HEAD') {
            const parsed = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
            expect(Object.keys(parsed), what).toEqual(['error']);
            expect(parsed.error?.code, what).toMatch(/^WS_ERR_[A-Z_]+$/);
            expect(typeof parsed.error?.message, what).toBe('string');
          }
          let ids: string[] = [];
          if (res.status === 202) {
            const parsed = JSON.parse(res.body) as { id?: string; ids?: string[] };
            ids = parsed.ids ?? (parsed.id ? [parsed.id] : []);
            accepted.push(...ids);
          }
          // Purges and route actions do not remove stored records, so the count only grows by what was accepted.
          const grew = total() - before;
          if (res.status !== 202) expect(grew, what).toBe(0);
          else expect(grew, what).toBeLessThanOrEqual(ids.length);
        }),
        { numRuns: 1000 },
      );
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
      for (const id of new Set(accepted)) {
        const res = await fetch(`${gw.url}/v1/messages/${id}`, {
          headers: { authorization: `Bearer ${ADMIN}` },
        });
        expect(res.status, id).toBe(200);
      }
    } finally {
      await gw.close();
    }
  }, 180_000);
});
