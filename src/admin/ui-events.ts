/**
 * The dashboard's live view (issue 11): `GET /ui/events`, one Server-Sent Events stream per tab,
 * and `GET /ui/snapshot`, the same view once (the page's polling fallback).
 *
 * - On connect the stream sends a `snapshot` event, then every `intervalMs` a `delta` event
 *   with only what changed since the previous event (ui-delta.ts), each with an `id:`; a
 *   heartbeat comment every `heartbeatMs` keeps proxies from closing a quiet stream.
 * - Resuming: a reconnect whose Last-Event-ID is one of the last two events a closed stream of
 *   the same token sent, within `resumeMs`, starts with the delta from that event; any other id
 *   (unknown, too old, another token's, from before a restart: ids carry a random per-process
 *   prefix) starts with a snapshot.
 * - Bounded: at most `maxConnections` streams at once (503 `WS_ERR_UI_TOO_MANY_STREAMS` beyond);
 *   each open stream keeps the last two views it sent, and at most `maxConnections` closed
 *   streams keep theirs for `resumeMs`: memory is a few views per allowed stream. Each stream's
 *   timers are cleared when it closes, and every stream is ended when the gateway closes.
 * - The view is what the token reaches (SPEC §8): routes whose streams are all within its globs,
 *   streams within them, and totals over those.
 * - The gateway's part of the view is computed at most once per `intervalMs / 2` for all streams;
 *   `/ui/snapshot` reads it afresh.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, WaystationError } from '../errors.js';
import { type AccessCheck, type Principal, reachesAll } from '../ingest/http/auth.js';
import type { RouteStatus, StreamInfo, Waystation } from '../waystation.js';
import { UI_CSP } from './ui-assets.js';
import { computeDelta, type UiDeltaOf } from './ui-delta.js';

export interface UiEventsOptions {
  /** Between snapshots, ms. Default 1000. */
  intervalMs?: number;
  /** Between heartbeat comments, ms. Default 15000. */
  heartbeatMs?: number;
  /** Concurrent event streams at most; beyond, 503. Default 32. */
  maxConnections?: number;
  /** How long a closed stream's last views are kept for a resume with Last-Event-ID, ms. Default 30000. */
  resumeMs?: number;
}

export interface UiRoute extends RouteStatus {
  /** Dead letters held now (not the `deadLettered` counter, which reset-counters clears). */
  deadLetters: number;
}

export interface UiSnapshot {
  /** ms since the epoch when the gateway read it. */
  at: number;
  routes: UiRoute[];
  streams: StreamInfo[];
  totals: {
    inQueue: number;
    inFlight: number;
    usedBytes: number;
    limitBytes: number;
    deadLetters: number;
    forwarded: number;
    /** The sum of the streams' last sequence numbers: its growth is messages in. */
    published: number;
  };
}

export type UiDelta = UiDeltaOf<UiRoute, StreamInfo, UiSnapshot['totals']>;

interface Gathered {
  at: number;
  routes: UiRoute[];
  streams: StreamInfo[];
}

/** The whole gateway's view, read at most once per `maxAgeMs`. */
class ViewSource {
  private cached: Promise<Gathered> | undefined;
  private cachedAt = 0;

  constructor(
    private readonly ws: Waystation,
    private readonly maxAgeMs: number,
  ) {}

  get(): Promise<Gathered> {
    const now = Date.now();
    if (!this.cached || now - this.cachedAt >= this.maxAgeMs) {
      this.cachedAt = now;
      this.cached = this.gather(now);
      this.cached.catch(() => {
        this.cached = undefined;
      });
    }
    return this.cached;
  }

  async gather(at: number): Promise<Gathered> {
    const routes = await this.ws.routes();
    return {
      at,
      routes: routes.map((r) => ({ ...r, deadLetters: this.ws.route(r.name).deadLetters.list().length })),
      streams: this.ws.streams(),
    };
  }
}

/** The view within a principal's reach, with totals over it. */
export function viewFor(g: Gathered, principal: Principal): UiSnapshot {
  const routes = g.routes.filter((r) => reachesAll(principal, r.streams));
  const names = new Set(routes.map((r) => r.name));
  const streams = g.streams
    .filter((s) => principal.reaches(s.name))
    .map((s) => (principal.unlimited ? s : { ...s, routes: s.routes.filter((r) => names.has(r)) }));
  const totals = {
    inQueue: 0,
    inFlight: 0,
    usedBytes: 0,
    limitBytes: 0,
    deadLetters: 0,
    forwarded: 0,
    published: 0,
  };
  for (const r of routes) {
    totals.inQueue += r.inQueue;
    totals.inFlight += r.inFlight;
    totals.usedBytes += r.usedBytes;
    totals.limitBytes += r.limitBytes ?? 0;
    totals.deadLetters += r.deadLetters;
    totals.forwarded += r.forwarded;
  }
  for (const s of streams) totals.published += s.lastSeq;
  return { at: g.at, routes, streams, totals };
}

export interface UiEventsRoutesOptions extends UiEventsOptions {
  ws: Waystation;
  access: AccessCheck;
}

/** The last events a stream sent: what a resume can start from. */
interface Sent {
  /** The token's name: a resume continues only the same token's view. */
  principal: string;
  views: { id: string; view: UiSnapshot }[];
}

/** Closed streams' last views by event id, at most `max`, each for `keepMs`. */
class Resumable {
  private readonly byId = new Map<string, { sent: Sent; until: number }>();

  constructor(
    private readonly max: number,
    private readonly keepMs: number,
  ) {}

  keep(sent: Sent, now: number): void {
    for (const [id, e] of this.byId) if (e.until <= now) this.byId.delete(id);
    const entry = { sent, until: now + this.keepMs };
    for (const { id } of sent.views) this.byId.set(id, entry);
    // Oldest first in insertion order; a stream's views count once.
    while (new Set(this.byId.values()).size > this.max) {
      const oldest = this.byId.values().next().value!;
      for (const [id, e] of this.byId) if (e === oldest) this.byId.delete(id);
    }
  }

  /** The view sent as event `id` to a stream of `principal`, if still kept. */
  take(id: string, principal: string, now: number): UiSnapshot | undefined {
    const e = this.byId.get(id);
    if (!e || e.until <= now || e.sent.principal !== principal) return undefined;
    return e.sent.views.find((v) => v.id === id)?.view;
  }

  clear(): void {
    this.byId.clear();
  }
}

export async function uiEventsRoutes(app: FastifyInstance, opts: UiEventsRoutesOptions): Promise<void> {
  const intervalMs = opts.intervalMs ?? 1000;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxConnections = opts.maxConnections ?? 32;
  const resumable = new Resumable(maxConnections, opts.resumeMs ?? 30_000);
  const source = new ViewSource(opts.ws, Math.max(1, Math.floor(intervalMs / 2)));
  const open = new Set<ServerResponse>();
  // Ids from an earlier process never match this one's.
  const idPrefix = randomBytes(6).toString('base64url');
  let nextId = 1;

  app.addHook('preClose', (done) => {
    for (const res of open) res.end();
    open.clear();
    resumable.clear();
    done();
  });

  // Read fresh, not from the streams' shared view: the page asks right after an action.
  app.get('/ui/snapshot', { schema: { hide: true } }, async (req) => {
    const principal = opts.access(req, 'read');
    return viewFor(await source.gather(Date.now()), principal);
  });

  app.get<{ Headers: { 'last-event-id'?: string } }>(
    '/ui/events',
    { schema: { hide: true } },
    async (req, reply) => {
      const principal = opts.access(req, 'read');
      if (open.size >= maxConnections)
        throw new WaystationError(
          ErrorCodes.UiTooManyStreams,
          `The dashboard has ${maxConnections} live views open, its limit; close a tab or poll GET /ui/snapshot.`,
          { httpStatus: 503 },
        );
      reply.hijack();
      const res = reply.raw;
      open.add(res);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': UI_CSP,
        'x-content-type-options': 'nosniff',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      res.write('retry: 2000\n\n');
      const sent: Sent = { principal: principal.name, views: [] };
      const lastEventId = req.headers['last-event-id'];
      const resumedFrom = lastEventId ? resumable.take(lastEventId, principal.name, Date.now()) : undefined;
      if (resumedFrom && lastEventId) sent.views.push({ id: lastEventId, view: resumedFrom });
      let sending = false;
      const send = async (): Promise<void> => {
        if (sending || res.writableEnded) return;
        sending = true;
        try {
          const view = viewFor(await source.get(), principal);
          if (res.writableEnded) return;
          const id = `${idPrefix}-${nextId++}`;
          const previous = sent.views.at(-1);
          const event = previous
            ? `event: delta\ndata: ${JSON.stringify(computeDelta(previous.view, view, previous.id))}`
            : `event: snapshot\ndata: ${JSON.stringify(view)}`;
          res.write(`id: ${id}\n${event}\n\n`);
          // The last two: the client may not have received the latest when the connection dropped.
          sent.views = [...sent.views.slice(-1), { id, view }];
        } catch (err) {
          req.log.warn({ err }, 'dashboard snapshot failed');
        } finally {
          sending = false;
        }
      };
      const tick = setInterval(() => void send(), intervalMs);
      const heartbeat = setInterval(() => {
        if (!res.writableEnded) res.write(': heartbeat\n\n');
      }, heartbeatMs);
      res.on('close', () => {
        clearInterval(tick);
        clearInterval(heartbeat);
        if (open.delete(res) && sent.views.length > 0) resumable.keep(sent, Date.now());
      });
      await send();
    },
  );
}
