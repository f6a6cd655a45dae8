/**
 * One route (#/routes/<name>): its state and counters from the live view, its history over
 * 5 min / 1 h / 24 h (GET /v1/routes/{route}/history: charts, time to drain and until full), its
 * actions, and its event timeline (GET /v1/routes/{route}/timeline). History and timeline are
 * read again on a timer fitting the window, and at once after an action.
 */
import { html } from 'htm/preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, enc, request } from '../api.js';
import { Chart } from '../chart.js';
import { ago, bytes, clock, count, rate, span } from '../format.js';
import type { HistoryWindow, RouteHistory, TimelineEvent, UiRoute } from '../types.js';
import type { ViewProps } from './common.js';
import { cause, PurgeDialog } from './routes.js';

const WINDOWS: { key: HistoryWindow; label: string; refreshMs: number }[] = [
  { key: '5m', label: '5 min', refreshMs: 2_000 },
  { key: '1h', label: '1 h', refreshMs: 10_000 },
  { key: '24h', label: '24 h', refreshMs: 60_000 },
];
const TIMELINE_REFRESH_MS = 5_000;
const TIMELINE_LIMIT = 100;

const RATE_LINES = [
  { key: 'stored', label: 'stored' },
  { key: 'forwarded', label: 'forwarded' },
  { key: 'expired', label: 'expired' },
  { key: 'pruned', label: 'pruned' },
  { key: 'deadLettered', label: 'dead-lettered' },
] as const;

/** Reads `load` now, every `ms`, and whenever `key` changes; the last answer or error. */
function usePolled<T>(load: () => Promise<T>, ms: number, key: string) {
  const [value, setValue] = useState<T | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (v) => {
          if (!live) return;
          setValue(v);
          setError(undefined);
        },
        (err: unknown) => live && setError(err instanceof ApiError ? err.message : String(err)),
      );
    void run();
    const t = setInterval(run, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
    // `tick` re-reads at once after an action.
  }, [key, ms, tick]);
  return { value, error, refresh: useCallback(() => setTick((n) => n + 1), []) };
}

const ACTION_LABELS: Record<string, string> = {
  store: 'Store',
  forward: 'Forward',
  purge: 'Purge',
  'reset-counters': 'Reset counters',
  'resubmit-dead-letters': 'Resubmit dead letters',
  'delete-dead-letters': 'Delete dead letters',
};

function describe(e: TimelineEvent): string {
  switch (e.kind) {
    case 'start':
      return 'Gateway started';
    case 'stop':
      return 'Gateway stopped';
    case 'state':
      return `${e.from} → ${e.to}${e.by ? ` (${e.by})` : ''}${e.lastError ? `: ${e.lastError}` : ''}`;
    case 'action': {
      const what = ACTION_LABELS[e.action] ?? e.action;
      const n =
        e.count === undefined
          ? ''
          : `: ${count(e.count)}${e.top !== undefined ? ` (oldest ${count(e.top)})` : ''}`;
      return `${what} by ${e.by}${n}`;
    }
  }
}

function when(at: number, now: number): string {
  const sameDay = new Date(at).toDateString() === new Date(now).toDateString();
  return sameDay ? clock(at) : `${new Date(at).toLocaleDateString('en-GB')} ${clock(at)}`;
}

function Facts({ r, h, now }: { r: UiRoute; h: RouteHistory | undefined; now: number }) {
  const c = h?.current;
  const drain = h?.estimates.drainSeconds ?? null;
  const full = h?.estimates.fullSeconds ?? null;
  const rows: [string, string][] = [
    ['In queue', count(r.inQueue)],
    ['In flight', count(r.inFlight)],
    [
      'Used / limit',
      r.limitBytes === undefined ? bytes(r.usedBytes) : `${bytes(r.usedBytes)} / ${bytes(r.limitBytes)}`,
    ],
    ['Oldest pending', c?.oldestPendingAt ? `${ago(c.oldestPendingAt, now)} old` : '—'],
    ['Last delivery', c?.lastDeliveredAt ? `${ago(c.lastDeliveredAt, now)} ago` : '—'],
    ['Time to drain', drain === 0 ? 'empty' : drain === null ? 'not draining' : span(drain)],
    [
      'Time until full',
      full === null
        ? c?.limitBytes === null && c?.limitMessages === null
          ? 'no limit'
          : 'not filling'
        : span(full),
    ],
    ['Forwarded', count(r.forwarded)],
    ['Dead letters', count(r.deadLetters)],
  ];
  return html`<dl class="facts">${rows.map(
    ([k, v]) => html`<div key=${k}><dt>${k}</dt><dd data-fact=${k}>${v}</dd></div>`,
  )}</dl>`;
}

export function RouteDetail(props: ViewProps & { route: string }) {
  const { view, route } = props;
  const r = view.routes.find((x) => x.name === route);
  // Out of reach reads as absent (SPEC §8): nothing of it is asked for.
  if (!r)
    return html`<section><h2>Route ${route}</h2><p>No route ${route} within this token's reach.</p>
      <p><a href="#/routes">All routes</a></p></section>`;
  return html`<${Detail} ...${props} r=${r} />`;
}

function Detail({ canAct, act, now, route, r }: ViewProps & { route: string; r: UiRoute }) {
  const [win, setWin] = useState<HistoryWindow>('5m');
  const [purging, setPurging] = useState(false);
  const base = `/v1/routes/${enc(route)}`;
  const w = WINDOWS.find((x) => x.key === win)!;
  const history = usePolled(
    () => request<RouteHistory>('GET', `${base}/history?window=${win}`),
    w.refreshMs,
    `${route} ${win}`,
  );
  const timeline = usePolled(
    () => request<{ events: TimelineEvent[] }>('GET', `${base}/timeline?limit=${TIMELINE_LIMIT}`),
    TIMELINE_REFRESH_MS,
    route,
  );
  const refreshed =
    <T>(done: (a: T) => string) =>
    (a: T) => {
      history.refresh();
      timeline.refresh();
      return done(a);
    };
  const h = history.value?.window === win ? history.value : undefined;
  const setBy = cause(r);
  return html`<section aria-labelledby="route-h" class="route-detail">
    <p class="crumbs"><a href="#/routes">Routes</a> / ${route}</p>
    <h2 id="route-h">Route ${route}</h2>
    <p class="summary">
      <span class=${`state state-${r.state}`}>${r.state}</span>${setBy ? html`<small class="cause">${` (${setBy})`}</small>` : null}${` since ${when(r.since, now)} · target ${r.target} · streams ${r.streams.join(', ')} · `}<a href=${`#/dead-letters/${enc(route)}`}>dead letters: ${count(r.deadLetters)}</a>
    </p>
    ${r.lastError ? html`<p class="error-text">Last error: ${r.lastError}</p>` : null}
    ${
      canAct
        ? html`<div class="detail-actions">
        <button type="button" onClick=${() =>
          act(
            'POST',
            `${base}/store`,
            undefined,
            refreshed(() => `Route ${route} is held: nothing is sent until Forward.`),
          )}>Store</button>
        <button type="button" onClick=${() =>
          act(
            'POST',
            `${base}/forward`,
            undefined,
            refreshed((a: UiRoute) => `Route ${route} forwards again (now ${a.state}).`),
          )}>Forward</button>
        <button type="button" class="danger" onClick=${() => setPurging(true)}>Purge</button>
        <button type="button" onClick=${() =>
          act(
            'POST',
            `${base}/reset-counters`,
            undefined,
            refreshed(() => `Counters of route ${route} reset.`),
          )}>Reset counters</button>
      </div>`
        : null
    }
    <${Facts} r=${r} h=${h} now=${now} />
    <div class="toolbar" role="group" aria-label="History window">
      <span>History:</span>
      ${WINDOWS.map(
        (x) =>
          html`<button key=${x.key} type="button" aria-pressed=${x.key === win} onClick=${() => setWin(x.key)}>${x.label}</button>`,
      )}
      ${history.error ? html`<span class="error-text">${history.error}</span>` : null}
    </div>
    ${
      h
        ? html`<div class="charts">
        <${Chart} title="In queue" t=${h.t} stepMs=${h.stepMs} format=${count}
          lines=${[{ label: 'in queue', kind: 'inQueue', values: h.inQueue }]}
          limit=${h.current.limitMessages} />
        <${Chart} title="Used bytes" t=${h.t} stepMs=${h.stepMs} format=${bytes}
          lines=${[{ label: 'used bytes', kind: 'usedBytes', values: h.usedBytes }]}
          limit=${h.current.limitBytes} />
        <${Chart} title="Messages per second" t=${h.t} stepMs=${h.stepMs} format=${rate}
          lines=${RATE_LINES.map((l) => ({ label: l.label, kind: l.key, values: h.rates[l.key] }))} />
      </div>`
        : html`<p>Loading the history…</p>`
    }
    <h3 id="timeline-h">Timeline</h3>
    ${timeline.error ? html`<p class="error-text">${timeline.error}</p>` : null}
    <ol class="timeline" aria-labelledby="timeline-h">${(timeline.value?.events ?? []).map(
      (e, i) => html`<li key=${`${e.at}-${i}`} class=${`event event-${e.kind}`}>
        <time datetime=${new Date(e.at).toISOString()}>${when(e.at, now)}</time> ${describe(e)}</li>`,
    )}</ol>
    ${timeline.value && timeline.value.events.length === 0 ? html`<p>No events yet.</p>` : null}
    ${
      purging
        ? html`<${PurgeDialog} route=${r} onClose=${() => setPurging(false)}
          act=${(m: string, p: string, b: unknown, done: (a: never) => string) => act(m, p, b, refreshed(done))} />`
        : null
    }
  </section>`;
}
