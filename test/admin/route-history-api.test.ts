/**
 * The route detail's API through the gateway: history, timeline and activity, their bounds, the
 * token's reach (a narrow token must not see a route outside its globs), actions in the timeline
 * with the token's name, and both kept across a restart.
 */
import { readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import { restartGateway, startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';

const ADMIN = 'history-admin-token-0123456789';
const READER = 'history-read-token-0123456789';
const NARROW = 'history-narrow-token-0123456789';

const config = {
  auth: {
    tokens: [
      { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin' as const] },
      { name: 'viewer', tokenHash: hashToken(READER), scopes: ['read' as const] },
      { name: 'partner', tokenHash: hashToken(NARROW), scopes: ['admin' as const], streams: ['public-*'] },
    ],
  },
  targets: { t: { type: 'null' as const }, p: { type: 'null' as const } },
  routes: {
    secret: { streams: ['orders'], target: 't', probeInterval: '100ms', retention: { maxBytes: '1MiB' } },
    pub: { streams: ['public-events'], target: 'p' },
  },
};

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

function as(token: string) {
  return { authorization: `Bearer ${token}` };
}

async function get(url: string, token = READER) {
  return gw!.app.inject({ url, headers: as(token) });
}

async function until(ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('route history API', () => {
  it('answers a window of history with the current values and estimates', async () => {
    const target = new ScriptedTarget();
    ({ gw } = await startGateway(config, { t: target }));
    target.behaviour = 'down';
    await gw.ws.route('secret').store();
    for (let i = 0; i < 3; i++) await gw.ws.publish('orders', `m${i}`);
    await until(async () => (await get('/v1/routes/secret/history')).json().inQueue.includes(3));
    const res = await get('/v1/routes/secret/history?window=5m');
    expect(res.statusCode).toBe(200);
    const h = res.json();
    expect(h).toMatchObject({ route: 'secret', window: '5m', stepMs: 1000 });
    expect(h.t).toHaveLength(300);
    expect(Object.keys(h.rates).sort()).toEqual(['deadLettered', 'expired', 'forwarded', 'pruned', 'stored']);
    expect(h.current).toMatchObject({ inQueue: 3, limitBytes: 1024 * 1024, lastDeliveredAt: null });
    expect(h.current.oldestPendingAt).toBeGreaterThan(Date.now() - 60_000);
    expect(h.estimates).toHaveProperty('drainSeconds');
    for (const window of ['1h', '24h']) {
      const w = (await get(`/v1/routes/secret/history?window=${window}`)).json();
      expect(w.t).toHaveLength(window === '1h' ? 360 : 1440);
    }
  });

  it('refuses a window or limit outside its bounds with 400', async () => {
    ({ gw } = await startGateway(config));
    for (const url of [
      '/v1/routes/secret/history?window=7d',
      '/v1/routes/secret/timeline?limit=0',
      '/v1/routes/secret/timeline?limit=201',
      '/v1/routes/secret/timeline?limit=ten',
    ]) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error.code).toBe('WS_ERR_HTTP_BAD_REQUEST');
    }
    expect((await get('/v1/routes/nope/history')).statusCode).toBe(404);
    expect((await get('/v1/routes/nope/timeline')).statusCode).toBe(404);
  });

  it('needs a token, and a narrow token sees nothing of a route outside its globs', async () => {
    ({ gw } = await startGateway(config));
    expect((await gw.app.inject({ url: '/v1/routes/secret/history' })).statusCode).toBe(401);
    expect((await gw.app.inject({ url: '/v1/routes:activity' })).statusCode).toBe(401);
    for (const url of ['/v1/routes/secret/history', '/v1/routes/secret/timeline']) {
      const res = await get(url, NARROW);
      expect(res.statusCode, url).toBe(404);
      // Answered exactly as a route that does not exist: no name to probe for.
      expect(res.json()).toEqual({
        error: { code: 'WS_ERR_ROUTE_UNKNOWN', message: expect.stringContaining('secret') },
      });
      expect((await get(url.replace('secret', 'no-such-route'), NARROW)).json().error.code).toBe(
        'WS_ERR_ROUTE_UNKNOWN',
      );
    }
    expect((await get('/v1/routes/pub/history', NARROW)).statusCode).toBe(200);
    const activity = (await get('/v1/routes:activity', NARROW)).json();
    expect(activity.routes.map((r: { name: string }) => r.name)).toEqual(['pub']);
    const all = (await get('/v1/routes:activity')).json();
    expect(all.routes.map((r: { name: string }) => r.name).sort()).toEqual(['pub', 'secret']);
    expect(all.routes[0].inQueue).toHaveLength(30);
    // The narrow token's actions on a route out of reach are refused and not in its timeline.
    expect(
      (await gw.app.inject({ method: 'POST', url: '/v1/routes/secret/store', headers: as(NARROW) }))
        .statusCode,
    ).toBe(404);
    const events = (await get('/v1/routes/secret/timeline')).json().events;
    expect(events.filter((e: { kind: string }) => e.kind === 'action')).toEqual([]);
  });

  it('puts actions in the timeline with the token name and the counts, and state changes with who set them', async () => {
    const target = new ScriptedTarget();
    ({ gw } = await startGateway(config, { t: target }));
    const post = (url: string, token = ADMIN) => gw!.app.inject({ method: 'POST', url, headers: as(token) });
    expect((await post('/v1/routes/secret/store')).statusCode).toBe(200);
    for (let i = 0; i < 4; i++) await gw.ws.publish('orders', `m${i}`);
    expect((await post('/v1/routes/secret/purge?top=3')).json()).toEqual({ purged: 3 });
    expect((await post('/v1/routes/secret/reset-counters')).statusCode).toBe(200);
    expect((await post('/v1/routes/secret/forward', READER)).statusCode).toBe(403);
    expect((await post('/v1/routes/secret/forward')).statusCode).toBe(200);
    const events = (await get('/v1/routes/secret/timeline?limit=200')).json().events.reverse();
    const summary = events.map((e: Record<string, unknown>) =>
      e.kind === 'action'
        ? `${e.action} by ${e.by}${e.count !== undefined ? ` count ${e.count}` : ''}${e.top !== undefined ? ` top ${e.top}` : ''}`
        : e.kind === 'state'
          ? `${e.from} -> ${e.to}${e.by ? ` (${e.by})` : ''}`
          : e.kind,
    );
    expect(summary).toEqual([
      'start',
      'forwarding -> held (operator)',
      'store by ops',
      'purge by ops count 3 top 3',
      'reset-counters by ops',
      'held -> draining',
      'forward by ops',
      ...summary.slice(7),
    ]);
    for (const e of events) expect(e.at).toBeGreaterThan(Date.now() - 60_000);
    expect((await get('/v1/routes/secret/timeline?limit=2')).json().events).toHaveLength(2);
  });

  it('records a route storing on its own failures', async () => {
    const target = new ScriptedTarget();
    target.behaviour = 'down';
    ({ gw } = await startGateway(config, { t: target }));
    await gw.ws.publish('orders', 'x');
    await until(async () =>
      (await get('/v1/routes/secret/timeline'))
        .json()
        .events.some((e: { to?: string }) => e.to === 'storing'),
    );
    const storing = (await get('/v1/routes/secret/timeline'))
      .json()
      .events.find((e: { to?: string }) => e.to === 'storing');
    expect(storing).toMatchObject({ kind: 'state', from: 'forwarding', by: 'its own failures' });
    expect(storing.lastError).toContain('connection refused');
  });

  it('keeps the timeline and history across a restart, with a stop and a start between', async () => {
    const target = new ScriptedTarget();
    let dir: string;
    ({ gw, dir } = await startGateway(config, { t: target }));
    await gw.ws.publish('orders', 'x');
    await until(async () => (await get('/v1/routes/secret/history')).json().current.lastDeliveredAt !== null);
    const delivered = (await get('/v1/routes/secret/history')).json().current.lastDeliveredAt;
    await gw.close();
    gw = await restartGateway(dir, { t: target });
    const kinds = (await get('/v1/routes/secret/timeline'))
      .json()
      .events.map((e: { kind: string }) => e.kind);
    expect(kinds.slice(0, 2)).toEqual(['start', 'stop']);
    expect(kinds.at(-1)).toBe('start');
    const h = (await get('/v1/routes/secret/history')).json();
    expect(h.current.lastDeliveredAt).toBe(delivered);
    expect(h.inQueue.filter((v: number | null) => v !== null).length).toBeGreaterThan(1);
  });

  it('starts with empty history and timeline when both files are damaged', async () => {
    let dir: string;
    ({ gw, dir } = await startGateway(config));
    await gw.close();
    const dashboard = join(dir, 'data', 'dashboard');
    await writeFile(join(dashboard, 'route-history.state'), 'WSA1 and then nothing sensible');
    await truncate(join(dashboard, 'route-timeline.state'), 10);
    gw = await restartGateway(dir);
    expect((await get('/v1/routes/secret/history')).statusCode).toBe(200);
    expect(
      (await get('/v1/routes/secret/timeline')).json().events.map((e: { kind: string }) => e.kind),
    ).toEqual(['start']);
    expect(await readdir(dashboard)).toEqual(
      expect.arrayContaining(['route-history.state.damaged', 'route-timeline.state.damaged']),
    );
  });
});
