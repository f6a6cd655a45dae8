import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const config = {
  targets: { t: { type: 'null' as const } },
  routes: { r: { streams: ['orders'], target: 't', probeInterval: '100ms' } },
};

describe('HTTP API', () => {
  it('publishes a message with its headers and answers 202 with its id once durable', async () => {
    const target = new ScriptedTarget();
    ({ gw } = await startGateway(config, { t: target }));
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      payload: '{"n":1}',
      headers: {
        'content-type': 'application/json',
        'waystation-key': 'cust-1',
        'waystation-header-x-trace': 'abc',
        'waystation-ttl': '60',
      },
    });
    expect(res.statusCode).toBe(202);
    const { id, stream, seq } = res.json();
    expect({ stream, seq }).toEqual({ stream: 'orders', seq: 1 });
    const status = await gw.app.inject({ url: `/v1/messages/${id}?wait=delivered&timeout=5s` });
    expect(status.json()).toMatchObject({
      id,
      stream: 'orders',
      seq: 1,
      routes: { r: 'delivered' },
      settled: true,
    });
    const d = target.delivered[0]!;
    expect(d.payload?.toString()).toBe('{"n":1}');
    expect(d.key).toBe('cust-1');
    expect(d.headers).toEqual({ 'content-type': 'application/json', 'x-trace': 'abc' });
  });

  it('decodes the fields Waystation-Encoded-Headers lists, and refuses one that does not decode, storing nothing', async () => {
    const target = new ScriptedTarget();
    ({ gw } = await startGateway(config, { t: target }));
    const ok = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      payload: 'x',
      headers: {
        'content-type': 'text/plain; x=%E2%82%AC',
        'waystation-key': 'k%0A1',
        'waystation-header-my%20prop': '50%25',
        'waystation-header-as-is': '50%25',
        'waystation-encoded-headers': 'content-type, waystation-key,waystation-header-my%20prop',
      },
    });
    expect(ok.statusCode).toBe(202);
    await until(() => target.delivered.length === 1, 5000, 'the delivery');
    expect(target.delivered[0]!.key).toBe('k\n1');
    expect(target.delivered[0]!.headers).toEqual({
      'content-type': 'text/plain; x=€',
      'my prop': '50%',
      'as-is': '50%25',
    });
    const bad = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      payload: 'y',
      headers: { 'waystation-header-x': '%ZZ', 'waystation-encoded-headers': 'waystation-header-x' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/waystation-header-x is listed in Waystation-Encoded-Headers/);
    expect(gw.ws.streamBounds('orders').lastSeq).toBe(1);
  });

  it('publishes NDJSON batches all-or-nothing and rejects a bad line with its number', async () => {
    ({ gw } = await startGateway(config));
    const ok = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages:batch',
      headers: { 'content-type': 'application/x-ndjson' },
      payload: '{"payload":"a","key":"k"}\n{"payloadBase64":"AAE="}\n',
    });
    expect(ok.statusCode).toBe(202);
    expect(ok.json().ids).toHaveLength(2);
    const bad = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages:batch',
      payload: '{"payload":"a"}\nnot json\n',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({
      code: 'WS_ERR_HTTP_BAD_REQUEST',
      message: expect.stringMatching(/line 2/),
    });
    const streams = await gw.app.inject({ url: '/v1/streams/orders' });
    expect(streams.json()).toMatchObject({ name: 'orders', lastSeq: 2 });
  });

  it('refuses bodies over http.maxBodyBytes with 413 and stores nothing', async () => {
    ({ gw } = await startGateway({ ...config, http: { maxBodyBytes: 1000 } }));
    const declared = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      payload: 'x'.repeat(2000),
    });
    expect(declared.statusCode).toBe(413);
    expect(declared.json().error.code).toBe('WS_ERR_HTTP_PAYLOAD_TOO_LARGE');
    const ok = await gw.app.inject({
      method: 'POST',
      url: '/v1/streams/orders/messages',
      payload: 'x'.repeat(1000),
    });
    expect(ok.statusCode).toBe(202);
    expect((await gw.app.inject({ url: '/v1/streams/orders' })).json().lastSeq).toBe(1);
  });

  it('dedupes a retried publish with the same Idempotency-Key', async () => {
    ({ gw } = await startGateway(config));
    const send = () =>
      gw!.app.inject({
        method: 'POST',
        url: '/v1/streams/orders/messages',
        payload: 'x',
        headers: { 'idempotency-key': 'k1' },
      });
    const a = (await send()).json();
    const b = (await send()).json();
    expect(b.id).toBe(a.id);
    expect((await gw.app.inject({ url: '/v1/streams/orders' })).json().lastSeq).toBe(1);
  });

  it('answers errors as JSON with a code: unknown stream, unknown route, bad id, bad query', async () => {
    ({ gw } = await startGateway(config));
    const cases = [
      [
        { method: 'POST' as const, url: '/v1/streams/nope/messages', payload: 'x' },
        404,
        'WS_ERR_STREAM_UNKNOWN',
      ],
      [{ method: 'GET' as const, url: '/v1/routes/nope' }, 404, 'WS_ERR_ROUTE_UNKNOWN'],
      [{ method: 'GET' as const, url: '/v1/messages/garbage' }, 404, 'WS_ERR_MESSAGE_UNKNOWN'],
      [{ method: 'POST' as const, url: '/v1/routes/r/purge?top=0' }, 400, 'WS_ERR_HTTP_BAD_REQUEST'],
      [{ method: 'GET' as const, url: '/v2/nothing' }, 404, 'WS_ERR_HTTP_NOT_FOUND'],
    ] as const;
    for (const [req, status, code] of cases) {
      const res = await gw.app.inject(req);
      expect(res.statusCode, req.url).toBe(status);
      expect(res.json().error.code, req.url).toBe(code);
    }
  });

  it('lets an operator hold, purge, forward and reset a route, and manage dead letters', async () => {
    const target = new ScriptedTarget();
    target.behaviour = (d) =>
      d.payload?.toString() === 'bad' ? { kind: 'error', reason: 'rejected' } : { kind: 'ack' };
    ({ gw } = await startGateway(config, { t: target }));
    const post = (url: string, payload?: object | string) => gw!.app.inject({ method: 'POST', url, payload });
    expect((await post('/v1/routes/r/store')).json().state).toBe('held');
    for (const p of ['first', 'a', 'b', 'bad'])
      expect((await post('/v1/streams/orders/messages', p)).statusCode).toBe(202);
    expect((await post('/v1/routes/r/purge?top=1')).json()).toEqual({ purged: 1 });
    expect((await post('/v1/routes/r/forward')).json().state).toBe('draining');
    await new Promise((r) => setTimeout(r, 200));
    const dead = (await gw.app.inject({ url: '/v1/routes/r/dead-letters' })).json().deadLetters;
    expect(dead).toHaveLength(1);
    expect((await post('/v1/routes/r/dead-letters/resubmit', {})).statusCode).toBe(400);
    const del = await gw.app.inject({
      method: 'DELETE',
      url: '/v1/routes/r/dead-letters',
      payload: { ids: [dead[0].id] },
    });
    expect(del.json()).toEqual({ deleted: 1 });
    const route = (await gw.app.inject({ url: '/v1/routes/r' })).json();
    expect(route).toMatchObject({ name: 'r', purged: 1, deadLettered: 1, forwarded: 2, inQueue: 0 });
    expect((await post('/v1/routes/r/reset-counters')).json()).toMatchObject({ forwarded: 0, purged: 0 });
  });

  it('serves health, readiness, Prometheus metrics and the OpenAPI document', async () => {
    ({ gw } = await startGateway(config));
    await gw.app.inject({ method: 'POST', url: '/v1/streams/orders/messages', payload: 'x' });
    expect((await gw.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await gw.app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
    const metrics = (await gw.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/waystation_route_state\{route="r",state="forwarding"\} 1/);
    expect(metrics).toMatch(/waystation_stream_messages\{stream="orders"\} 1/);
    expect(metrics).toMatch(/waystation_log_write_fsync_seconds_count \d+/);
    const openapi = (await gw.app.inject({ url: '/openapi.json' })).json();
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining([
        '/v1/streams/{stream}/messages',
        '/v1/messages/{id}',
        '/v1/routes/{route}/purge',
      ]),
    );
  });
});
