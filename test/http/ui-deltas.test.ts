/**
 * The live stream over a socket (issue 11): a snapshot on connect, then deltas with only what
 * changed; a reconnect with a recent Last-Event-ID resumes with a delta from it, and one that
 * is unknown, expired or another token's gets a snapshot.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { uiEventsRoutes } from '../../src/admin/ui-events.js';
import type { WaystationError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import { OPEN_ACCESS, type Principal } from '../../src/ingest/http/auth.js';
import { applyDelta } from '../../ui/src/delta.js';
import type { UiDelta, UiSnapshot } from '../../ui/src/types.js';
import { startGateway } from '../support/gateway.js';

let gw: Gateway | undefined;
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  await gw?.close();
  app = undefined;
  gw = undefined;
});

const other: Principal = { ...OPEN_ACCESS, name: 'other' };

interface Event {
  id: string;
  type: string;
  data: unknown;
}

/** The events of one stream, read as they arrive. */
async function events(port: number, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/ui/events`, { headers, signal: ac.signal });
  const reader = res.body!.getReader();
  let buffer = '';
  const next = async (): Promise<Event> => {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(block)?.[1];
        const type = field('event');
        if (type) return { id: field('id')!, type, data: JSON.parse(field('data')!) };
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buffer += new TextDecoder().decode(value);
    }
  };
  return { next, close: () => ac.abort() };
}

async function serve(resumeMs = 30_000, maxConnections = 32): Promise<number> {
  ({ gw } = await startGateway({
    targets: { t: { type: 'null' } },
    routes: { r: { streams: ['orders'], target: 't' }, q: { streams: ['other'], target: 't' } },
  }));
  app = Fastify();
  // The gateway's error shape, reduced to what these tests read.
  app.setErrorHandler((err: WaystationError, _req, reply) =>
    reply.code(err.httpStatus).send({ error: { code: err.code, message: err.message } }),
  );
  await app.register(uiEventsRoutes, {
    ws: gw.ws,
    access: (req) => (req.headers['x-who'] === 'other' ? other : OPEN_ACCESS),
    intervalMs: 50,
    resumeMs,
    maxConnections,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

describe('the live stream', () => {
  it('sends a snapshot, then deltas holding only what changed', async () => {
    const port = await serve();
    const s = await events(port);
    const first = await s.next();
    expect(first.type).toBe('snapshot');
    let view = first.data as UiSnapshot;
    let last = first.id;
    await gw!.ws.publish('orders', 'x');
    let delta: UiDelta | undefined;
    while (!delta?.totals?.published) {
      const e = await s.next();
      expect(e.type).toBe('delta');
      delta = e.data as UiDelta;
      expect(delta.base).toBe(last);
      view = applyDelta(view, delta);
      last = e.id;
    }
    expect(delta.routes?.set?.every((r) => r.name === 'r')).toBe(true);
    expect(delta.streams?.set?.map((x) => x.name)).toEqual(['orders']);
    expect(view.totals.published).toBe(1);
    s.close();
  });

  it('resumes with a delta from a recent Last-Event-ID, and with a snapshot otherwise', async () => {
    const port = await serve();
    const s = await events(port);
    await s.next();
    const second = await s.next();
    s.close();
    await new Promise((r) => setTimeout(r, 100));
    await gw!.ws.publish('orders', 'while away');

    const resumed = await events(port, { 'last-event-id': second.id });
    const e = await resumed.next();
    expect(e.type).toBe('delta');
    expect((e.data as UiDelta).base).toBe(second.id);
    resumed.close();

    const unknown = await events(port, { 'last-event-id': 'nope-1' });
    expect((await unknown.next()).type).toBe('snapshot');
    unknown.close();
    // Another token's stream never continues this one's view.
    const theirs = await events(port, { 'last-event-id': second.id, 'x-who': 'other' });
    expect((await theirs.next()).type).toBe('snapshot');
    theirs.close();
  });

  it('forgets a closed stream after resumeMs', async () => {
    const port = await serve(50);
    const s = await events(port);
    const first = await s.next();
    s.close();
    await new Promise((r) => setTimeout(r, 150));
    const late = await events(port, { 'last-event-id': first.id });
    expect((await late.next()).type).toBe('snapshot');
    late.close();
  });

  it('refuses a stream beyond the limit with its own error code', async () => {
    const port = await serve(30_000, 1);
    const s = await events(port);
    await s.next();
    const res = await fetch(`http://127.0.0.1:${port}/ui/events`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('WS_ERR_UI_TOO_MANY_STREAMS');
    s.close();
  });
});
