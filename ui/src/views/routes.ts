import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { enc, request } from '../api.js';
import { Sparkline } from '../chart.js';
import { ago, bytes, count } from '../format.js';
import type { RouteActivity, UiRoute } from '../types.js';
import { Dialog, type ViewProps } from './common.js';

type Activity = RouteActivity['routes'][number];

type Column = {
  key: string;
  label: string;
  num?: boolean;
  value: (r: UiRoute, a: Activity | undefined) => string | number;
};

/** How often the table reads the routes' activity (oldest pending, last delivery, sparkline), ms. */
const ACTIVITY_REFRESH_MS = 5_000;

const COLUMNS: Column[] = [
  { key: 'name', label: 'Name', value: (r) => r.name },
  { key: 'target', label: 'Target', value: (r) => r.target },
  { key: 'streams', label: 'Streams', value: (r) => r.streams.join(', ') },
  { key: 'state', label: 'State', value: (r) => r.state },
  { key: 'inQueue', label: 'In queue', num: true, value: (r) => r.inQueue },
  {
    key: 'trend',
    label: 'Last 5 min',
    value: (_r, a) => Math.max(0, ...(a?.inQueue ?? []).map((v) => v ?? 0)),
  },
  { key: 'inFlight', label: 'In flight', num: true, value: (r) => r.inFlight },
  { key: 'forwarded', label: 'Forwarded', num: true, value: (r) => r.forwarded },
  { key: 'expired', label: 'Expired', num: true, value: (r) => r.expired },
  { key: 'pruned', label: 'Pruned', num: true, value: (r) => r.pruned },
  { key: 'purged', label: 'Purged', num: true, value: (r) => r.purged },
  { key: 'deadLettered', label: 'Dead-lettered', num: true, value: (r) => r.deadLettered },
  { key: 'usedBytes', label: 'Used / limit', num: true, value: (r) => r.usedBytes },
  // Oldest first when ascending: the largest age at the top.
  {
    key: 'oldest',
    label: 'Oldest pending',
    num: true,
    value: (_r, a) => a?.oldestPendingAt ?? Number.MAX_VALUE,
  },
  { key: 'lastDelivery', label: 'Last delivery', num: true, value: (_r, a) => -(a?.lastDeliveredAt ?? 0) },

  { key: 'lastError', label: 'Last error', value: (r) => r.lastError ?? '' },
];

/** Who set a storing or held state: the operator or its own failures, or a group peer. */
export function cause(r: UiRoute): string {
  if (r.state === 'held') return r.cause === 'group' ? 'group peer' : 'operator';
  if (r.state === 'storing') return r.cause === 'group' ? 'group peer' : 'its own failures';
  return '';
}

function Used({ r }: { r: UiRoute }) {
  if (r.limitBytes === undefined) return html`${bytes(r.usedBytes)}`;
  return html`<span class="used">${bytes(r.usedBytes)} / ${bytes(r.limitBytes)}
    <meter min="0" max=${r.limitBytes} low=${0.6 * r.limitBytes} high=${0.8 * r.limitBytes} optimum="0" value=${r.usedBytes}
      aria-label=${`${r.name} used bytes`}></meter></span>`;
}

function oldestAge(a: Activity | undefined, now: number): string {
  return a?.oldestPendingAt ? ago(a.oldestPendingAt, now) : '—';
}

function lastDelivery(a: Activity | undefined, now: number): string {
  return a?.lastDeliveredAt ? `${ago(a.lastDeliveredAt, now)} ago` : '—';
}

/** The inQueue sparkline of one row: the last 5 minutes. */
function Trend({ r, a }: { r: UiRoute; a: Activity | undefined }) {
  if (!a) return html`<td></td>`;
  const peak = Math.max(0, ...a.inQueue.map((v) => v ?? 0));
  return html`<td><${Sparkline} values=${a.inQueue} label=${`${r.name} in queue over the last 5 minutes, peak ${count(peak)}`} /></td>`;
}

/** Purge with the route's name typed to confirm (the routes table and the route detail). */
export function PurgeDialog({
  route,
  onClose,
  act,
}: {
  route: UiRoute;
  onClose: () => void;
  act: ViewProps['act'];
}) {
  const [typed, setTyped] = useState('');
  const [top, setTop] = useState('');
  const topN = top.trim() === '' ? undefined : Number(top);
  const valid = typed === route.name && (topN === undefined || (Number.isInteger(topN) && topN >= 1));
  const purge = async (e: Event) => {
    e.preventDefault();
    if (!valid) return;
    const q = topN === undefined ? '' : `?top=${topN}`;
    await act<{ purged: number }>(
      'POST',
      `/v1/routes/${enc(route.name)}/purge${q}`,
      undefined,
      (a) => `Purged ${a.purged} message${a.purged === 1 ? '' : 's'} from route ${route.name}.`,
    );
    onClose();
  };
  return html`<${Dialog} title=${`Purge route ${route.name}`} onClose=${onClose}>
    <form onSubmit=${purge}>
      <p>Purging drops <strong>${count(route.inQueue)}</strong> waiting messages (${bytes(route.usedBytes)}) of
        route <strong>${route.name}</strong>, or only the oldest N; they are counted as purged and never sent.
        Type the route's name to confirm.</p>
      <label for="purge-name">Route name</label>
      <input id="purge-name" autocomplete="off" value=${typed} onInput=${(e: Event) => setTyped((e.target as HTMLInputElement).value)} />
      <label for="purge-top">Only the oldest N (empty: all)</label>
      <input id="purge-top" type="number" min="1" inputmode="numeric" value=${top} onInput=${(e: Event) => setTop((e.target as HTMLInputElement).value)} />
      <div class="buttons">
        <button type="submit" class="danger" disabled=${!valid}>Purge</button>
        <button type="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

export function Routes({ view, canAct, act, now }: ViewProps) {
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<{ key: string; dir: 1 | -1 }>({ key: 'name', dir: 1 });
  const [purging, setPurging] = useState<string | undefined>();
  const [activity, setActivity] = useState<Map<string, Activity>>(new Map());
  useEffect(() => {
    let live = true;
    const load = () =>
      request<RouteActivity>('GET', '/v1/routes:activity').then(
        (a) => live && setActivity(new Map(a.routes.map((x) => [x.name, x]))),
        // The table still shows the live view; the next read tries again.
        () => {},
      );
    void load();
    const t = setInterval(load, ACTIVITY_REFRESH_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);
  const column = COLUMNS.find((c) => c.key === sort.key) ?? COLUMNS[0]!;
  const f = filter.trim().toLowerCase();
  const rows = view.routes
    .filter((r) => !f || [r.name, r.target, r.state, ...r.streams].some((s) => s.toLowerCase().includes(f)))
    .sort((a, b) => {
      const x = column.value(a, activity.get(a.name));
      const y = column.value(b, activity.get(b.name));
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
    });
  const purgeRoute = view.routes.find((r) => r.name === purging);
  const base = (r: UiRoute) => `/v1/routes/${enc(r.name)}`;
  return html`<section aria-labelledby="routes-h">
    <h2 id="routes-h">Routes</h2>
    <div class="toolbar">
      <label for="route-filter">Filter</label>
      <input id="route-filter" type="search" placeholder="name, target, stream or state" value=${filter}
        onInput=${(e: Event) => setFilter((e.target as HTMLInputElement).value)} />
      <span>${rows.length} of ${view.routes.length}</span>
    </div>
    <div class="scroll"><table class="routes">
      <thead><tr>
        ${COLUMNS.map(
          (c) => html`<th key=${c.key} class=${c.num ? 'num' : ''}
            aria-sort=${sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
            <button type="button" class="sort" onClick=${() => setSort({ key: c.key, dir: sort.key === c.key ? (-sort.dir as 1 | -1) : 1 })}>
              ${c.label}</button></th>`,
        )}
        ${canAct ? html`<th>Actions</th>` : null}
      </tr></thead>
      <tbody>${rows.map(
        (r) => html`<tr key=${r.name} data-route=${r.name}>
          <td><a href=${`#/routes/${enc(r.name)}`}><strong>${r.name}</strong></a><br /><a class="small" href=${`#/dead-letters/${enc(r.name)}`}>dead letters: ${count(r.deadLetters)}</a></td>
          <td>${r.target}</td>
          <td>${r.streams.join(', ')}</td>
          <td><span class=${`state state-${r.state}`}>${r.state}</span>${cause(r) ? html`<small class="cause"> (${cause(r)})</small>` : null}</td>
          <td class="num">${count(r.inQueue)}</td>
          <${Trend} r=${r} a=${activity.get(r.name)} />
          <td class="num">${count(r.inFlight)}</td>
          <td class="num">${count(r.forwarded)}</td>
          <td class="num">${count(r.expired)}</td>
          <td class="num">${count(r.pruned)}</td>
          <td class="num">${count(r.purged)}</td>
          <td class="num">${count(r.deadLettered)}</td>
          <td class="num"><${Used} r=${r} /></td>
          <td class="num">${oldestAge(activity.get(r.name), now)}</td>
          <td class="num">${lastDelivery(activity.get(r.name), now)}</td>
          <td class="error-text">${r.lastError ?? ''}</td>
          ${
            canAct
              ? html`<td><div class="actions">
              <button type="button" onClick=${() => act('POST', `${base(r)}/store`, undefined, () => `Route ${r.name} is held: nothing is sent until Forward.`)}>Store</button>
              <button type="button" onClick=${() => act('POST', `${base(r)}/forward`, undefined, (a: UiRoute) => `Route ${r.name} forwards again (now ${a.state}).`)}>Forward</button>
              <button type="button" class="danger" onClick=${() => setPurging(r.name)}>Purge</button>
              <button type="button" onClick=${() => act('POST', `${base(r)}/reset-counters`, undefined, () => `Counters of route ${r.name} reset.`)}>Reset counters</button>
            </div></td>`
              : null
          }
        </tr>`,
      )}</tbody>
    </table></div>
    ${view.routes.length === 0 ? html`<p>No routes within this token's reach.</p>` : null}
    ${purgeRoute ? html`<${PurgeDialog} route=${purgeRoute} act=${act} onClose=${() => setPurging(undefined)} />` : null}
  </section>`;
}
