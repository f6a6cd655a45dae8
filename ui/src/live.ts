/**
 * The live view's connection: one EventSource on /ui/events (a snapshot on connect, then a delta
 * a second, applied to the view held; the browser's reconnect sends Last-Event-ID and the
 * gateway answers a delta or a snapshot); when the stream cannot be had (refused, too many tabs,
 * a proxy that buffers), polling GET /ui/snapshot every 2 s, trying the stream again every 15 s.
 * Pause closes both.
 */
import { ApiError, request } from './api.js';
import { applyDelta } from './delta.js';
import type { UiDelta, UiSnapshot } from './types.js';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'paused';

export interface LiveHandlers {
  snapshot(view: UiSnapshot): void;
  status(status: LiveStatus): void;
  /** The session is gone (401): the page asks for sign-in again. */
  unauthorized(): void;
}

const POLL_MS = 2000;
const RETRY_STREAM_MS = 15_000;

export class Live {
  private source: EventSource | undefined;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  /** The view the stream's events built, and the id of the last one applied. */
  private view: UiSnapshot | undefined;
  private lastId: string | undefined;

  constructor(private readonly on: LiveHandlers) {}

  start(): void {
    this.stop();
    this.stopped = false;
    this.on.status('connecting');
    this.openStream();
  }

  pause(): void {
    this.stop();
    this.on.status('paused');
  }

  stop(): void {
    this.stopped = true;
    this.source?.close();
    this.source = undefined;
    this.view = undefined;
    this.lastId = undefined;
    clearTimeout(this.pollTimer);
    clearTimeout(this.retryTimer);
  }

  private openStream(): void {
    if (typeof EventSource === 'undefined') {
      this.startPolling();
      return;
    }
    const source = new EventSource('/ui/events');
    this.source = source;
    source.addEventListener('snapshot', (e) => {
      const m = e as MessageEvent<string>;
      this.show(JSON.parse(m.data) as UiSnapshot, m.lastEventId);
    });
    source.addEventListener('delta', (e) => {
      const m = e as MessageEvent<string>;
      const delta = JSON.parse(m.data) as UiDelta;
      if (!this.view || delta.base !== this.lastId) {
        // Not the view this delta was computed from: start over with a snapshot.
        this.reopen();
        return;
      }
      this.show(applyDelta(this.view, delta), m.lastEventId);
    });
    source.onerror = () => {
      if (this.stopped || this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused outright (401, 503, not an event stream): poll, and try the stream later.
        this.source = undefined;
        this.startPolling();
      } else {
        this.on.status('reconnecting');
      }
    };
  }

  private show(view: UiSnapshot, id: string): void {
    clearTimeout(this.pollTimer);
    this.view = view;
    this.lastId = id;
    this.on.snapshot(view);
    this.on.status('live');
  }

  /** A new EventSource sends no Last-Event-ID: the gateway starts it with a snapshot. */
  private reopen(): void {
    this.source?.close();
    this.source = undefined;
    this.view = undefined;
    this.lastId = undefined;
    this.openStream();
  }

  private startPolling(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped) return;
      clearTimeout(this.pollTimer);
      this.openStream();
    }, RETRY_STREAM_MS);
    void this.poll();
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.source) return;
    try {
      this.on.snapshot(await request<UiSnapshot>('GET', '/ui/snapshot'));
      this.on.status('polling');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.stop();
        this.on.unauthorized();
        return;
      }
      this.on.status('reconnecting');
    }
    if (!this.stopped && !this.source) this.pollTimer = setTimeout(() => void this.poll(), POLL_MS);
  }
}
