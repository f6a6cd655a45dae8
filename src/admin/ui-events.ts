/**
 * The dashboard's live view (issue 11): `GET /ui/events`, one Server-Sent Events stream per tab,
 * and `GET /ui/snapshot`, the same view once (the page's polling fallback).
 *
 * - On connect (and on a reconnect with Last-Event-ID: a snapshot is the resume answer) the
 *   stream sends a `snapshot` event, then another every `intervalMs`, each with an `id:`; a
 *   heartbeat comment every `heartbeatMs` keeps proxies from closing a quiet stream.
 * - Bounded: at most `maxConnections` streams at once (503 beyond); each stream's timers are
 *   cleared when it closes, and every stream is ended when the gateway closes.
 * - The view is what the token reaches (SPEC §8): routes whose streams are all within its globs,
 *   streams within them, and totals over those.
 * - The gateway's part of the view is computed at most once per `intervalMs / 2` for all streams;
 *   `/ui/snapshot` reads it afresh.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, WaystationError } from '../errors.js';
import { type AccessCheck, type Principal, reachesAll } from '../ingest/http/auth.js';
import type { RouteStatus, StreamInfo, Waystation } from '../waystation.js';
import { UI_CSP } from './ui-assets.js';

export interface UiEventsOptions {
  /** Between snapshots, ms. Default 1000. */
  intervalMs?: number;
  /** Between heartbeat comments, ms. Default 15000. */
  heartbeatMs?: number;
  /** Concurrent event streams at most; beyond, 503. Default 32. */
  maxConnections?: number;
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

export async function uiEventsRoutes(app: FastifyInstance, opts: UiEventsRoutesOptions): Promise<void> {
  const intervalMs = opts.intervalMs ?? 1000;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxConnections = opts.maxConnections ?? 32;
  const source = new ViewSource(opts.ws, Math.max(1, Math.floor(intervalMs / 2)));
  const open = new Set<ServerResponse>();
  let nextId = 1;

  app.addHook('preClose', (done) => {
    for (const res of open) res.end();
    open.clear();
    done();
  });

  // Read fresh, not from the streams' shared view: the page asks right after an action.
  app.get('/ui/snapshot', { schema: { hide: true } }, async (req) => {
    const principal = opts.access(req, 'read');
    return viewFor(await source.gather(Date.now()), principal);
  });

  app.get('/ui/events', { schema: { hide: true } }, async (req, reply) => {
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
    // A snapshot answers a resume (Last-Event-ID) as well as a first connect.
    res.write('retry: 2000\n\n');
    let sending = false;
    const send = async (): Promise<void> => {
      if (sending || res.writableEnded) return;
      sending = true;
      try {
        const view = viewFor(await source.get(), principal);
        if (!res.writableEnded)
          res.write(`id: ${nextId++}\nevent: snapshot\ndata: ${JSON.stringify(view)}\n\n`);
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
      open.delete(res);
    });
    await send();
  });
}
