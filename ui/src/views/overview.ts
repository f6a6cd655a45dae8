import { html } from 'htm/preact';
import type { Alert } from '../alerts.js';
import { bytes, count, rate } from '../format.js';
import type { ViewProps } from './common.js';

export interface Rates {
  inPerSecond: number;
  outPerSecond: number;
}

const STATES = ['forwarding', 'storing', 'draining', 'held'] as const;

export function Overview({ view, rates, alerts }: ViewProps & { rates: Rates | undefined; alerts: Alert[] }) {
  const t = view.totals;
  // A total limit only means something when every route has one.
  const allLimited = view.routes.length > 0 && view.routes.every((r) => r.limitBytes !== undefined);
  const byState = Object.fromEntries(STATES.map((s) => [s, view.routes.filter((r) => r.state === s).length]));
  return html`<section aria-labelledby="overview-h">
    <h2 id="overview-h">Overview</h2>
    ${
      alerts.length > 0
        ? html`<div class="alerts" role="alert"><ul>${alerts.map((a) => html`<li key=${a.key}>${a.text}</li>`)}</ul></div>`
        : null
    }
    <dl class="cards">
      <div><dt>In queue</dt><dd>${count(t.inQueue)}</dd></div>
      <div><dt>In flight</dt><dd>${count(t.inFlight)}</dd></div>
      <div><dt>Used</dt><dd>${bytes(t.usedBytes)}${allLimited ? html` <small>of ${bytes(t.limitBytes)}</small>` : null}</dd></div>
      <div><dt>Dead letters</dt><dd>${count(t.deadLetters)}</dd></div>
      <div><dt>In / s</dt><dd>${rates ? rate(rates.inPerSecond) : '—'}</dd></div>
      <div><dt>Out / s</dt><dd>${rates ? rate(rates.outPerSecond) : '—'}</dd></div>
    </dl>
    <h3>Routes by state</h3>
    <ul class="states">
      ${STATES.map((s) => html`<li key=${s} class=${`state state-${s}`}>${s}: <strong>${byState[s]}</strong></li>`)}
    </ul>
  </section>`;
}
